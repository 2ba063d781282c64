"""What a person watching a run sees: a progress bar on a terminal, a line per evaluation elsewhere."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from ..progress import draws_bar


class ProgressDisplay:
    """A progress bar on a terminal; elsewhere (a log file, CI) one line per evaluation instead."""

    def __init__(
        self, description: str, *, total_steps: int, num_train: int, epochs: int, initial: int, enabled: bool
    ) -> None:
        self.description, self.enabled = description, enabled
        self.total_steps, self.num_train, self.epochs = total_steps, num_train, epochs
        self.terminal = draws_bar(enabled)
        self.bar = tqdm(
            total=total_steps,
            initial=initial,
            desc=description,
            disable=not self.terminal,
            dynamic_ncols=True,
            leave=False,
        )

    def step(self) -> None:
        self.bar.update(1)

    def evaluated(self, step: int, examples: int, metrics: dict[str, float]) -> None:
        if self.terminal:
            self.bar.set_postfix({name: f"{value:.2f}" for name, value in metrics.items()})
        elif self.enabled:
            shown = ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
            print(
                f"{self.description}: step {step}/{self.total_steps}, "
                f"epoch {examples / self.num_train:.2f}/{self.epochs}: {shown}",
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
