"""The commands parse their arguments into the Python API's typed ones and call it (issue 102,
part 3): compare and train read their ``key=value`` texts into settings, report, ranks and analyze
call labelemb.report, ranks and analyze; the call and the command write the same files and say the
same lines."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from helpers.report_checks import METHODS, SMALL

import labelemb
from labelemb.cli import main
from labelemb.config import RunConfig


class Recorder:
    """Stands in for an API call: keeps what it was handed, returns ``returned``."""

    def __init__(self, returned: Any):
        self.returned = returned
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.returned


def test_compare_and_train_hand_over_their_texts_read_once_as_settings(monkeypatch, tmp_path):
    done = SimpleNamespace(short="table", failed=[], lacking=[], planned=2)
    compare = Recorder(done)
    monkeypatch.setattr("labelemb.cli.run.compare", compare)
    argv = ["compare", "--methods", "onehot,ols", "--seeds", "0-1", "--output-dir", str(tmp_path)]
    assert main([*argv, "--no-progress", "train.epochs=2", "model.hidden=[32]", "tau=4"]) == 0
    (config,), given = compare.calls[0]
    assert config is None and given["methods"] == ["onehot", "ols"] and given["seeds"] == [0, 1]
    assert given["overrides"] == {
        "train.epochs": 2,
        "model.hidden": [32],
        "tau": 4,
        "output_dir": str(tmp_path),
        "train.progress": False,
    }
    train = Recorder(SimpleNamespace(lines=list, summaries=[], lacking=[]))
    monkeypatch.setattr("labelemb.cli.run.train", train)
    assert main(["train", "--device", "cpu", "--log-to", "tensorboard", "train.lr=1e-3"]) == 0
    assert train.calls[0][1]["overrides"] == {
        "train.lr": 0.001,
        "train.device": "cpu",
        "train.log_to": ["tensorboard"],
    }


def test_report_ranks_and_analyze_call_the_api(monkeypatch, tmp_path, capsys):
    report = Recorder(tmp_path / "report.html")
    monkeypatch.setattr("labelemb.cli.inspect.report", report)
    assert main(["report", str(tmp_path), "--top", "2", "--no-analysis"]) == 0
    assert report.calls == [((tmp_path, None), {"top": 2, "data_dir": None, "analyze_runs": False})]
    ranked = SimpleNamespace(to_markdown=lambda: "| method |", picture=tmp_path / "r.svg")
    ranks = Recorder(ranked)
    monkeypatch.setattr("labelemb.cli.inspect.ranks", ranks)
    assert main(["ranks", str(tmp_path), "--methods", "onehot,ols", "--title", "t"]) == 0
    assert ranks.calls == [(([tmp_path],), {"methods": ["onehot", "ols"], "output": None, "title": "t"})]
    analyze = Recorder(SimpleNamespace(lines=lambda: ["one", "two"]))
    monkeypatch.setattr("labelemb.cli.inspect.analyze", analyze)
    assert main(["analyze", str(tmp_path), "--format", "svg", "--classes", "a,b"]) == 0
    assert analyze.calls[0][1] == {
        "output_dir": None,
        "classes": ["a", "b"],
        "top": 5,
        "fmt": "svg",
        "data_dir": None,
    }
    assert (
        capsys.readouterr().out
        == f"{tmp_path / 'report.html'}\n| method |\n\nwrote {tmp_path / 'r.svg'}\none\ntwo\n"
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A comparison made by the command: 2 methods x 1 seed on digits, on one thread."""
    root = tmp_path_factory.mktemp("typed")
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["compare", "--config", str(config), "--methods", ",".join(METHODS), "--seeds", "0"]
        assert main([*argv, "--output-dir", str(root), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / SMALL["experiment"]


def test_a_typed_config_compares_the_command_s_runs_to_the_same_table(experiment):
    written = (experiment / "comparison.md").read_bytes()
    typed = RunConfig(**SMALL)
    # The same config, typed: the finished runs are read back, not trained again (nor refused).
    result = labelemb.compare(
        typed,
        methods=list(METHODS),
        seeds=range(1),
        overrides={"output_dir": str(experiment.parent)},
        progress=False,
    )
    assert result.ok and (result.to_markdown() + "\n").encode() == written
    assert (experiment / "comparison.md").read_bytes() == written


def test_ranks_in_python_draws_and_says_what_the_command_does(experiment, tmp_path, capsys):
    assert main(["ranks", str(experiment), "--output", str(tmp_path / "command.png")]) == 0
    printed = capsys.readouterr().out
    ranked = labelemb.ranks(experiment, output=tmp_path / "call.png")
    assert printed == f"{ranked.to_markdown()}\n\nwrote {tmp_path / 'command.png'}\n"
    assert ranked.picture.read_bytes() == (tmp_path / "command.png").read_bytes()
    assert sorted(ranked.table.methods) == sorted(METHODS) and ranked.table.heads[0] == "test error %"
    assert repr(ranked).startswith("Ranks(methods=[") and ranked._repr_markdown_() == ranked.to_markdown()
    with pytest.raises(ValueError, match="holds runs of one method"):
        labelemb.ranks([experiment], methods="onehot")


def test_analyze_in_python_writes_and_says_what_the_command_does(experiment, tmp_path, capsys):
    run = experiment / "label_embedding" / "seed0"
    assert main(["analyze", str(run), "--top", "2", "--output-dir", str(tmp_path / "command")]) == 0
    printed = capsys.readouterr().out
    analysis = labelemb.analyze(run, top=2, output_dir=tmp_path / "call")
    assert printed.replace("command", "call") == "\n".join(analysis.lines()) + "\n"
    for name in ("analysis.md", "analysis.json", "label_embedding-seed0/similar.md"):
        assert (tmp_path / "call" / name).read_bytes() == (tmp_path / "command" / name).read_bytes()
    assert analysis.to_markdown() == (tmp_path / "command" / "analysis.md").read_text()
    assert analysis.summary["runs"][0]["method"] == "label_embedding"
    # The default folder is the run's own, as the command's.
    assert labelemb.analyze([run], top=1).output_dir == run / "analysis"


def test_report_in_python_writes_the_command_s_page(experiment, tmp_path):
    assert main(["report", str(experiment), "--top", "2", "--output", str(tmp_path / "page.html")]) == 0
    by_command = (tmp_path / "page.html").read_text()
    page = labelemb.report(experiment, tmp_path / "page.html", top=2)
    assert page == tmp_path / "page.html"

    def undated(text: str) -> str:
        return re.sub(r"</code> on [0-9T:+-]+ by labelemb", "</code> on DATE by labelemb", text)

    assert undated(page.read_text()) == undated(by_command)
