"""TensorBoard: event files written by torch's ``SummaryWriter``, read by ``tensorboard``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import RunConfig
from .base import EVALUATION_TENSORBOARD, TABLES, TENSORBOARD_DIR, TRACKERS, Tracker, summary_values


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """Event files in ``<run>/tensorboard/`` (torch's SummaryWriter). Each opening purges what
    earlier writers logged (``purge_step=0``) and logs the run's records again: a resumed run's
    series hold every step once, whatever the killed writer had flushed."""

    name = "tensorboard"
    package = "tensorboard"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: the tensorboard extra

        self.writer = SummaryWriter(str(folder / TENSORBOARD_DIR), purge_step=0)

    def log_params(self, params: dict[str, str | int | float | bool]) -> None:
        from torch.utils.tensorboard.summary import hparams  # lazy: the tensorboard extra

        # The HParams dashboard reads the session-start summary from the run's own event file
        # (add_hparams would write a second run in a subfolder).
        # torch files a bool under number_value (it tests int first): booleans go in as text.
        values = {k: str(v) if isinstance(v, bool) else v for k, v in params.items()}
        for summary in hparams(values, {}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def log_series(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # each check on disk as it happens, for a TensorBoard watching the run

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        self.log_series(step, summary_values(summary))
        self.writer.add_text("summary", "    " + json.dumps(summary, indent=2).replace("\n", "\n    "), step)

    def close(self, failed: bool) -> None:
        self.writer.close()

    @staticmethod
    def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: the tensorboard extra

        table = (experiment_dir / TABLES[kind][0]).read_text()
        # A folder of its own: purging what an earlier compare (or tune) wrote leaves the other's text.
        with SummaryWriter(str(experiment_dir / TENSORBOARD_DIR / kind), purge_step=0) as writer:
            writer.add_text(kind, table, 0)

    @staticmethod
    def log_evaluation(config: RunConfig, folder: Path, values: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: the tensorboard extra

        # A folder of its own, purged at each opening: a run evaluated anew holds each figure once,
        # and the run's own series (which a resumed run purges) are left alone.
        with SummaryWriter(str(folder / TENSORBOARD_DIR / EVALUATION_TENSORBOARD), purge_step=0) as writer:
            for key, value in values.items():
                writer.add_scalar(key, value, step)
