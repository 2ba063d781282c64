"""The whole experiment in Python (issue 80): labelemb.demo, compare, train, evaluate and summarize
do what the commands do. The commands call them, so the tables are the same bytes: checked over the
same run folders (a table holds training seconds, which no two trainings share)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import labelemb
from labelemb.cli import main
from labelemb.experiment import Comparison, Demo, Judged, Training, Tuning
from labelemb.experiment.setting import keyword_overrides, seed_numbers

QUICK = ["train.epochs=2", "model.hidden=[32]"]


def test_the_demo_in_python_prints_what_the_command_prints(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["demo", "--seeds", "0", "--epochs", "2", "--output-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    shown = labelemb.demo([0], epochs=2, output_dir=str(out), progress=False)
    assert (
        capsys.readouterr().out == "training onehot on the bundled digits, seed 0 ...\n"
        "training label_embedding on the bundled digits, seed 0 ...\n"
    )
    assert printed.endswith(shown.to_text() + "\n")
    assert "| onehot |" in shown.knowing_table and shown.heatmap.is_file()
    assert shown.experiment_dir == out / "demo-digits-mlp"


def test_a_compare_in_python_writes_the_command_s_tables_byte_for_byte(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["compare", "--methods", "onehot,label_smoothing", "--seeds", "0,1", "--output-dir", str(out)]
    assert main([*argv, "--no-progress", *QUICK]) == 0, capsys.readouterr().err
    terminal = capsys.readouterr().out
    folder = out / "demo-digits-mlp"
    written = {name: (folder / name).read_bytes() for name in ("comparison.md", "comparison.csv")}

    result = labelemb.compare(
        methods="onehot, label_smoothing",  # a list, or a text as the command line takes it
        seeds="0-1",  # a list, one seed, or a text as the command line takes it
        output_dir=str(out),
        train={"epochs": 2},
        model={"hidden": [32]},
        progress=False,
    )
    assert isinstance(result, Comparison) and result.ok
    # progress=False: nothing on stderr, not even the evaluation's lines (issue 99).
    assert "evaluating the selected weights" not in capsys.readouterr().err
    # A shell's repr: one short line, not the dataclass's dump of every row (issue 99).
    assert len(repr(result)) < 250 and f"experiment_dir={str(folder)!r}" in repr(result)
    assert {name: (folder / name).read_bytes() for name in written} == written
    assert (result.to_markdown() + "\n").encode() == written["comparison.md"]
    assert result.to_csv().encode() == written["comparison.csv"]
    assert terminal.startswith(result.short)
    assert [row["method"] for row in result.rows] == ["onehot", "label_smoothing"]
    assert result.runs == {
        m: [folder / m / "seed0", folder / m / "seed1"] for m in ("onehot", "label_smoothing")
    }
    assert {"curves.png", "curves-seconds.png", "ranks.png"} <= set(result.figures)
    assert all(path.is_file() for path in result.figures.values())
    # Read again without training: the same tables.
    assert labelemb.summarize(folder).to_markdown() == result.to_markdown()


def test_train_and_evaluate_in_python(tmp_path):
    out = tmp_path / "runs"
    trained = labelemb.train(
        seeds=0, output_dir=str(out), train={"epochs": 2}, model={"hidden": [32]}, progress=False
    )
    run_dir = out / "demo-digits-mlp" / "label_embedding" / "seed0"  # the config's method
    assert trained.run_dirs == [run_dir] and trained.summaries[0]["seed"] == 0 and not trained.lacking
    assert trained.lines()[0].startswith("label_embedding seed 0: selected test error ")
    judged = labelemb.evaluate(run_dir, progress=False)
    assert judged.folders == [run_dir] and judged.comparison is None
    assert "OOD patches: AUROC" in judged.lines()[0]
    assert judged.records[0]["test"]["selective_msp_aurc"] > 0


def test_seeds_are_a_list_one_seed_or_the_command_line_s_text():
    assert (
        seed_numbers("0-2,7") == [0, 1, 2, 7] and seed_numbers(3) == [3] and seed_numbers(range(2)) == [0, 1]
    )
    with pytest.raises(ValueError, match="seed range '4-1' is reversed"):
        seed_numbers("4-1")
    with pytest.raises(ValueError, match="must look like 3, 0-19 or 0,2,5"):
        labelemb.compare(methods="onehot", seeds="first")


def test_keywords_are_overrides_a_section_a_mapping():
    assert keyword_overrides({"train": {"epochs": 3, "device": "cpu"}, "tau": 4, "ood": []}) == [
        "train.epochs=3",
        'train.device="cpu"',
        "tau=4",
        "ood=[]",
    ]


def test_a_mapping_config_and_its_mistakes(tmp_path):
    with pytest.raises(ValueError, match="compare needs methods"):
        labelemb.compare(methods=[])
    with pytest.raises(labelemb.training.ConfigError, match="epochz"):
        labelemb.train({"data": {"name": "digits"}, "train": {"epochz": 1}}, output_dir=str(tmp_path))
    assert not list(Path(tmp_path).iterdir())


# --------------------------------------------------------------------------- issue 99: a notebook
def test_import_labelemb_alone_reaches_the_subpackages_and_what_the_calls_return_and_stays_light():
    script = (
        "import json, pydoc, sys\n"
        "import labelemb\n"
        "light = [name for name in ('torch', 'sklearn') if name in sys.modules]\n"
        "page = pydoc.render_doc(labelemb.experiment.Comparison)\n"  # what help() shows
        "served = {name: getattr(labelemb, name) is getattr(labelemb.experiment, name)\n"
        "          for name in ('Comparison', 'Training', 'Tuning', 'Judged', 'Demo', 'Statistic')}\n"
        "served['Predictor'] = labelemb.Predictor is labelemb.predict.Predictor\n"
        "print(json.dumps([light, 'to_dataframe' in page, served, labelemb.training.ConfigError.__name__,\n"
        "                  {'experiment', 'Comparison'} <= set(dir(labelemb))]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    light, documented, served, error, listed = json.loads(done.stdout.strip().splitlines()[-1])
    assert light == [] and documented and all(served.values()) and error == "ConfigError" and listed, served
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        labelemb.nothing_here  # noqa: B018


def comparison_by_hand() -> Comparison:
    """A comparison of two methods over seeds 0-2 with its rows as the table writes them."""
    folder = Path("runs/exp")
    rows = [
        {"method": "onehot", "seeds": 3, "selected_mean": 2.5, "selected_std": 0.25, "p_value": None},
        {"method": "ols", "seeds": 3, "selected_mean": 2.0, "selected_std": 0.5, "p_value": 0.04},
    ]
    for row in rows:
        row.update({"ece_mean": 1.5, "ece_std": 0.1, "ece_p_value": None, "seconds_per_epoch": 3.0})
        row.update({f"beyond_coverage_at_{k}_mean": 90.0 for k in range(150)})  # a real row's width
    runs = {m: [folder / m / f"seed{s}" for s in range(3)] for m in ("onehot", "ols")}
    return Comparison(folder, rows, "| method |", "method\n", "short", runs)


def test_a_comparison_s_repr_is_one_short_line_of_methods_seeds_folder_and_table_size():
    result = comparison_by_hand()
    assert repr(result) == (
        "Comparison(methods=['onehot', 'ols'], seeds=[0, 1, 2], experiment_dir='runs/exp', "
        "rows='2 methods x 159 columns')"
    )
    assert str(result) == "short" and result._repr_markdown_() == "| method |"


def test_a_method_s_statistic_of_a_figure_and_the_mistakes_named():
    result = comparison_by_hand()
    error = result.figure("selected", "ols")
    assert (error.mean, error.std, error.p_value, error.seeds) == (2.0, 0.5, 0.04, (0, 1, 2))
    ece = result.figure("ece", "onehot")
    assert (ece.mean, ece.std, ece.p_value, ece.unit) == (1.5, 0.1, None, "percent")
    assert result.figure("seconds_per_epoch", "ols").mean == 3.0
    with pytest.raises(KeyError, match=r"no method 'OLS' in this comparison \(its methods: onehot, ols\)"):
        result.figure("ece", "OLS")
    with pytest.raises(KeyError, match="no figure 'eec': did you mean ece"):
        result.figure("eec", "ols")


def test_the_rows_as_a_dataframe_and_without_pandas_a_line_saying_how_to_get_it(monkeypatch):
    import pandas

    frame = comparison_by_hand().to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and list(frame.index) == ["onehot", "ols"]
    assert frame.loc["ols", "selected_mean"] == 2.0
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails as if not installed
    with pytest.raises(ImportError, match=r"to_dataframe needs pandas: pip install pandas \(result.rows"):
        comparison_by_hand().to_dataframe()


def test_the_pictures_are_files_and_their_docstring_says_so(tmp_path):
    (tmp_path / "curves.png").write_bytes(b"\x89PNG")
    result = Comparison(tmp_path, [], "", "", "", {})
    assert result.figures == {"curves.png": tmp_path / "curves.png"}
    assert "Path" in Comparison.figures.__doc__ and "IPython.display.Image" in Comparison.figures.__doc__


def test_what_train_tune_evaluate_and_demo_return_shows_as_one_short_line(tmp_path):
    run = tmp_path / "exp" / "onehot" / "seed0"
    summaries = [{"method": "onehot", "seed": 0, "selected_test_error": 2.0, "notes": "x" * 5000}]
    assert repr(Training(summaries, [run])) == (
        f"Training(methods=['onehot'], seeds=[0], experiment_dir={str(tmp_path / 'exp')!r})"
    )
    record = {"methods": {"ols": {"trials": [{"value": 1.0}] * 500}}, "trials": 20, "seeds": [1, 2]}
    assert repr(Tuning("table", record, tmp_path)) == (
        f"Tuning(methods=['ols'], trials=20, seeds=[1, 2], experiment_dir={str(tmp_path)!r})"
    )
    judged = Judged([run], [{"test": {"x": 1.0}}], None, str)
    assert repr(judged) == f"Judged(kind='evaluation', runs=1, folder={str(run)!r})"
    shown = Demo("t" * 3000, "k", "s", tmp_path / "heat.png", tmp_path, 0)
    assert repr(shown) == (
        f"Demo(methods=['onehot', 'label_embedding'], experiment_dir={str(tmp_path)!r}, "
        f"heatmap={str(tmp_path / 'heat.png')!r})"
    )
