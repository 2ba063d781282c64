"""Search: ``labelemb tune``'s Optuna studies (:mod:`.study`), what a tuning request is and the
configs of its trials and tuned runs (:mod:`.setting`), and one trial's run in a worker (:mod:`.trial`).

Above :mod:`labelemb.sweep`: trials go to the grid's executors as plain units of work.
"""

from .setting import (
    JOURNAL_FILE,
    OBJECTIVES,
    TUNED_FOLDER,
    TUNING_FOLDER,
    TuneSetting,
    check_setting,
    setting_record,
    trial_config,
    tuned_config,
)
from .study import STARTUP_TRIALS, Tuner, run_number, sampler_seed, study_record
from .trial import TrialJob, TuneError, open_storage

__all__ = [
    "JOURNAL_FILE",
    "OBJECTIVES",
    "STARTUP_TRIALS",
    "TUNED_FOLDER",
    "TUNING_FOLDER",
    "TrialJob",
    "TuneError",
    "TuneSetting",
    "Tuner",
    "check_setting",
    "open_storage",
    "run_number",
    "sampler_seed",
    "setting_record",
    "study_record",
    "trial_config",
    "tuned_config",
]
