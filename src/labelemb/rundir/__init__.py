"""The run folder: its file names, and every read and write of them.

A run of one (method, seed) lives in ``<output_dir>/<experiment>/<method>/seed<N>/``:

- ``config.yaml``: the resolved config, written once when the run starts;
- ``metrics.jsonl``: one line per evaluation (step, epoch, examples, seconds, metrics, loss terms);
- ``checkpoint.pt``: everything a killed run needs to resume, rewritten at every evaluation;
- ``model.pt``: the final weights (backbone ``model.*`` and method ``method.*``);
- ``model.selected.pt``: the weights at the check the run reports (its best dev check so far),
  with that check's step, rewritten whenever a check becomes the best: what a prediction reads;
- ``label_representation.safetensors``: the tensors the method hands over (``representation``,
  and for label_embedding the raw ``embedding``);
- ``summary.json``: the result; written last, so its presence marks a finished run;
- ``.lock``: held by the process that trains the run (:meth:`RunDir.claim`), so that two
  processes started on the same output folder never train, or clean up after, the same run;
- ``outputs/step<N>/``: what the check at step N produced besides its metrics (a text run's
  decoded ``dev.txt`` and ``test.txt``);
- ``vocabulary.source.txt``, ``vocabulary.target.txt``: a text run's vocabularies, one token per
  line in id order, so that its ids can be read without the corpus (``vocabulary.txt``, one, for
  text classification);
- ``data.json``: a digest of the content of the files a run of your own data trains on, so that it
  never resumes on other content under the same names;
- ``evaluation.json``: the finished run judged on its selected weights beyond its error
  (selective classification, conformal sets, out-of-distribution detection), with what it was
  computed from;
- ``conformal.safetensors``: the dev split's conformal scores of the selected check (one sorted
  float64 tensor per score: ``thr``, ``aps``, ``raps``), with what they were computed from, so that
  ``labelemb predict --sets`` calibrates prediction sets at any level without the data;
- ``start.json``: written when the run starts: its class names, the shape its network reads, and
  the folders (absolute) its data files were looked for in, for a prediction (``labelemb predict``).

Every file is written atomically (a temporary file renamed over the old one), so a crash leaves
the old file or the new one, never a torn one. Everything that reads or writes a run goes
through :class:`RunDir`; the rest of the library never spells a file name.

``names`` holds the file names, ``folder`` the :class:`RunDir`, ``files`` the atomic writes.
"""

from __future__ import annotations

from .files import (
    atomic_write,
    differing_keys,
    first_missing,
    load_safetensors,
    remove_empty_folders,
    remove_interrupted_writes,
    save_safetensors,
    save_torch,
    write_text,
    yaml_problem,
)
from .folder import Config, RunDir, RunDirError, outputs_folder, run_dirs
from .names import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    CONFORMAL_FILE,
    DATA_FILE,
    EVALUATION_FILE,
    LEGACY_VALUES,
    LOCK_FILE,
    MAX_SAVED_REPRESENTATION,
    METRICS_FILE,
    MODEL_FILE,
    NOISE_FILE,
    OUTPUTS_DIR,
    RECORD_KEYS,
    SELECTED_MODEL_FILE,
    SHIFT_FILE,
    START_FILE,
    SUMMARY_FILE,
    SUMMARY_KEYS,
    TENSORS_FILE,
    TMP_SUFFIX,
    VOCABULARY_FILE,
    VOCABULARY_FILES,
)
from .turns import Claim, claim_alone, in_turns

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "CONFORMAL_FILE",
    "NOISE_FILE",
    "Claim",
    "Config",
    "DATA_FILE",
    "EVALUATION_FILE",
    "SHIFT_FILE",
    "LEGACY_VALUES",
    "LOCK_FILE",
    "MAX_SAVED_REPRESENTATION",
    "METRICS_FILE",
    "MODEL_FILE",
    "OUTPUTS_DIR",
    "RECORD_KEYS",
    "RunDir",
    "RunDirError",
    "SELECTED_MODEL_FILE",
    "START_FILE",
    "SUMMARY_FILE",
    "SUMMARY_KEYS",
    "TENSORS_FILE",
    "TMP_SUFFIX",
    "VOCABULARY_FILE",
    "VOCABULARY_FILES",
    "atomic_write",
    "claim_alone",
    "differing_keys",
    "first_missing",
    "in_turns",
    "load_safetensors",
    "outputs_folder",
    "remove_empty_folders",
    "remove_interrupted_writes",
    "run_dirs",
    "save_safetensors",
    "save_torch",
    "write_text",
    "yaml_problem",
]
