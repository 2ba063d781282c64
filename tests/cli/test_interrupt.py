"""Ctrl-C leaves no temporary file: an interrupt landing on any line of the selected-weights write
(between two lines as well as inside the write) is cleaned up by the command, which exits 130."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from labelemb.cli import main
from labelemb.rundir import RunDir, files

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = ["model.hidden=[16]", "train.epochs=1", "train.eval_every=600", "experiment=exp", "--no-progress"]


class InterruptAtLine:
    """A tracer raising KeyboardInterrupt, as SIGINT would, at the ``at``-th line run in
    :mod:`labelemb.rundir.files` (the atomic write) while it is set."""

    def __init__(self, at: int) -> None:
        self.at, self.lines, self.fired = at, 0, False

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        return self.line if frame.f_code.co_filename == files.__file__ else None

    def line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not self.fired:
            self.lines += 1
            if self.lines == self.at:
                self.fired = True
                raise KeyboardInterrupt
        return self.line


def traced_while_writing_selected_weights(monkeypatch: pytest.MonkeyPatch, tracer: InterruptAtLine) -> None:
    """Set ``tracer`` only while a run writes its selected weights (the rest runs at full speed)."""
    original = getattr(RunDir.write_selected_weights, "untraced", RunDir.write_selected_weights)

    def write(self: RunDir, *args: Any, **kwargs: Any) -> None:
        sys.settrace(tracer)
        try:
            original(self, *args, **kwargs)
        finally:
            sys.settrace(None)

    write.untraced = original  # type: ignore[attr-defined]
    monkeypatch.setattr(RunDir, "write_selected_weights", write)


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def test_ctrl_c_at_every_line_of_the_selected_weights_write_leaves_no_temporary_file(
    tmp_path, capsys, monkeypatch
):
    fired_at = []
    for at in range(1, 40):
        out = tmp_path / f"at{at}"
        tracer = InterruptAtLine(at)
        traced_while_writing_selected_weights(monkeypatch, tracer)
        code = main(["train", "--method", "onehot", "--output-dir", str(out), *QUICK])
        err = capsys.readouterr().err
        if not tracer.fired:  # past the write's last line: the run finished
            assert code == 0, err
            break
        fired_at.append(at)
        assert code == 130 and "interrupted" in err, err
        assert leftovers(out) == [], f"interrupt at line {at} of the write left {leftovers(out)}"
    # The write was interrupted at each of its lines, the first ones before the file exists included.
    assert len(fired_at) >= 8, fired_at
    assert files._PENDING == set()
