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
from labelemb.config import OodSetConfig, RunConfig
from labelemb.predict import PredictError


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


def test_tune_and_evaluate_call_the_api(monkeypatch, tmp_path, capsys):
    tune = Recorder(SimpleNamespace(table="| method |", experiment_dir=tmp_path, failed=[], lacking=[]))
    monkeypatch.setattr("labelemb.cli.tune.tune", tune)
    argv = ["tune", "--methods", "onehot,label_smoothing", "--seeds", "1-2", "--trials", "3"]
    assert main([*argv, "--output-dir", str(tmp_path), "--no-progress", "train.epochs=2", "epsilon=0.2"]) == 0
    (config,), given = tune.calls[0]
    assert config is None and given["methods"] == ["onehot", "label_smoothing"] and given["seeds"] == [1, 2]
    assert given["trials"] == 3 and given["overrides"] == {
        "train.epochs": 2,
        "epsilon": 0.2,
        "output_dir": str(tmp_path),
        "train.progress": False,
    }
    evaluate = Recorder(SimpleNamespace(lines=lambda: ["run: AURC (MSP) 1.00 %"], comparison=None))
    monkeypatch.setattr("labelemb.cli.evaluate.evaluate", evaluate)
    assert main(["evaluate", str(tmp_path), "--ood", "mnist", "--ood", "x.npz", "--refresh"]) == 0
    given = {"data_dir": None, "refresh": True, "device": "cpu", "progress": True}
    assert evaluate.calls == [((tmp_path, ["mnist", "x.npz"]), given)]
    wrote = f"wrote tuning.md, tuning.json and tuning-history.png in {tmp_path}"
    assert capsys.readouterr().out == f"| method |\n\n{wrote}\nrun: AURC (MSP) 1.00 %\n"


def test_predict_and_export_call_the_api(monkeypatch, tmp_path, capsys):
    predict = Recorder(SimpleNamespace(notes=["predicted 3 input(s)", "probabilities: softmax"]))
    monkeypatch.setattr("labelemb.cli.predict.write_predictions", predict)
    output = tmp_path / "p.csv"
    argv = ["predict", str(tmp_path), "--split", "test", "--output", str(output), "--top-k", "2"]
    assert main([*argv, "--sets", "0.9"]) == 0
    loading = {"overwrite": False, "checkpoint": "selected", "device": None, "trust_factory": None}
    asked = {"inputs": None, "split": "test", "data_dir": None, "top_k": 2, "threshold": None, "sets": 0.9}
    assert predict.calls == [((tmp_path, output), {**asked, "set_method": None, **loading, "progress": True})]
    folder = tmp_path / "b"
    export = Recorder([folder / "model.onnx", folder / "preprocessing.json"])
    monkeypatch.setattr("labelemb.cli.predict.export", export)
    assert main(["export", str(tmp_path), "--format", "onnx", "--output", str(folder), "--overwrite"]) == 0
    given = {"overwrite": True, "checkpoint": "selected", "trust_factory": None}
    assert export.calls == [((tmp_path, "onnx", folder), given)]
    files = f"{folder / 'model.onnx'}, {folder / 'preprocessing.json'}"
    said = f"predicted 3 input(s)\nprobabilities: softmax\nexported {tmp_path} (onnx) -> {files}\n"
    assert capsys.readouterr().err.endswith(said)


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


def test_predictions_in_python_write_and_say_what_the_command_does(experiment, tmp_path, capsys):
    run = experiment / "label_embedding" / "seed0"
    argv = ["predict", str(run), "--split", "test", "--top-k", "2", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "command.csv")]) == 0
    said = capsys.readouterr().err
    predicted = labelemb.write_predictions(run, tmp_path / "call.csv", split="test", top_k=2, progress=False)
    assert predicted.output.read_bytes() == (tmp_path / "command.csv").read_bytes()
    assert said.endswith("".join(f"{note}\n" for note in predicted.notes).replace("call.csv", "command.csv"))
    assert predicted.notes[-1].startswith("error on the inputs' own labels: ")
    shown = str(tmp_path / "call.csv")
    assert repr(predicted) == f"Predicted(rows={len(predicted.records)}, output={shown!r})"
    # A Predictor loaded already writes the same rows (JSON lines here); its loading options are its own.
    predictor = labelemb.load(run)
    again = labelemb.write_predictions(predictor, tmp_path / "again.jsonl", split="test", top_k=2)
    assert again.records == predicted.records
    assert again.output.read_text().startswith('{"row": "1", "label": ')
    with pytest.raises(PredictError, match="checkpoint: a Predictor is loaded already; give them to"):
        labelemb.write_predictions(predictor, tmp_path / "last.csv", split="test", checkpoint="last")
    with pytest.raises(PredictError, match="call.csv exists; choose another --output, or pass --overwrite"):
        labelemb.write_predictions(run, tmp_path / "call.csv", split="test")


def test_export_in_python_writes_the_command_s_files(experiment, tmp_path, capsys):
    run = experiment / "onehot" / "seed0"
    assert main(["export", str(run), "--output", str(tmp_path / "command")]) == 0
    written = labelemb.export(run, "bundle", tmp_path / "call")
    assert sorted(p.name for p in written) == sorted(p.name for p in (tmp_path / "command").iterdir())
    for path in written:
        assert path.read_bytes() == (tmp_path / "command" / path.name).read_bytes(), path.name
    with pytest.raises(PredictError, match="call exists; choose another --output, or pass --overwrite"):
        labelemb.export(run, "bundle", tmp_path / "call")
    # A Predictor loaded already (a bundle read back, here) exports the same weights.
    again = labelemb.export(labelemb.load(tmp_path / "call"), "bundle", tmp_path / "call", overwrite=True)
    assert again == written


def test_evaluate_takes_one_ood_set_a_mapping_or_the_typed_entry(experiment, tmp_path, capsys):
    run = experiment / "onehot" / "seed0"
    assert main(["evaluate", str(run), "--ood", "patches", "--no-progress"]) == 0
    judged = labelemb.evaluate(run, ood="patches", progress=False)  # one set, not its letters
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in judged.lines())
    assert list(judged.records[0]["ood"]) == ["patches"]
    for same in ({"data": "patches"}, [OodSetConfig(data="patches")], (Path("patches"),)):
        assert labelemb.evaluate(run, ood=same, progress=False).records == judged.records
    # A mistake in the sets is one line, before any run is read.
    with pytest.raises(ValueError, match=r"ood set \{'dat': 'patches'\}: dat: Extra inputs are not"):
        labelemb.evaluate(tmp_path / "no-run", ood={"dat": "patches"})
    with pytest.raises(ValueError, match="names a data set .data: mnist. or a file .path: ....: one of them"):
        labelemb.evaluate(tmp_path / "no-run", ood=[{"data": "mnist", "path": "x.npz"}])
    with pytest.raises(ValueError, match=r"ood set 3 \(a int\): give a data set's name, a file's path"):
        labelemb.evaluate(tmp_path / "no-run", ood=[3])
