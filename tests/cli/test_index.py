"""The command line's light index agrees with the registries, refuses what it can in the full checks'
own words, and its help, version and one-line mistakes import neither torch nor scikit-learn."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from labelemb.cli import build_parser, main
from labelemb.cli.index import INDEX_FILE, build_index, check_against_index, check_command_line, read_index


def test_the_index_file_agrees_with_the_registries():
    assert read_index() == build_index(), (
        f"{INDEX_FILE} is out of date: write it again with "
        "python -c 'from labelemb.cli.index import write_index; write_index()'"
    )


MISTAKES = [
    ["train", "--method", "label_embeding"],
    ["train", "method.name=label_embeding"],
    ["train", "--method", "onehot", "tua=3"],
    ["train", "--method", "onehot", "epochs=3"],
    ["train", "tua=3"],
    ["train", "--method", "onehot", "train.epoch=3"],
    ["train", "data.augment.flp=true"],
    ["train", "trian.epochs=3"],
    ["train", "data.fils.format=csv"],
    ["train", "data.files.formt=csv"],
    ["train", "decode.bem=3"],
    ["train", "model.name=mpl"],
    ["compare", "--methods", "onehot,lwr2"],
    ["compare", "--methods", "onehot", "trian.x=1"],
]


def parsed(argv: list[str]) -> argparse.Namespace:
    args, extra = build_parser().parse_known_args(argv)
    args.overrides += extra
    return args


@pytest.mark.parametrize("argv", MISTAKES, ids=" ".join)
def test_a_mistake_gets_the_full_checks_own_line_from_the_index(argv, capsys):
    with pytest.raises(ValueError) as early:
        check_against_index(parsed(argv), read_index())
    # The registries are loaded in this process: main asks them, as the full checks do.
    assert main([*argv, "--output-dir", "never-written"]) == 2
    assert capsys.readouterr().err == f"labelemb {argv[0]}: error: {early.value}\n"


def test_with_the_registries_loaded_an_extensions_names_are_left_to_them():
    import labelemb.methods  # noqa: F401  (what importing an extension's module does)

    args = parsed(["train", "--method", "my_method"])  # registered by the extension, say
    check_command_line(args)
    with pytest.raises(ValueError, match="unknown method 'my_method'"):
        check_against_index(args, read_index())


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--method", "label_embedding", "tau=3", "train.epochs=1", "seed=2", "model.hidden=[3]"],
        ["train", "data.files.format=csv", "train.adam=fused", "ood=[{data: patches}]", "methods.onehot.x=1"],
        ["train", "--config", "configs/mnist-mlp.yaml", "anything=1", "model.name=cnn"],
        ["compare", "--methods", "onehot,lwr", "beta=0.8", "train.early_stopping.patience=3"],
        ["train", "method.name=onehot", "train.max_steps=3", "decode.beam=2"],
    ],
    ids=" ".join,
)
def test_what_exists_passes_the_index(argv):
    check_against_index(parsed(argv), read_index())


def test_help_version_and_mistakes_import_neither_torch_nor_scikit_learn():
    calls = [["--help"], ["train", "--help"], ["predict", "--help"], ["--version"], *MISTAKES[:4]]
    script = (
        "import json, sys\n"
        "from labelemb.cli import main\n"
        f"for argv in {calls!r}:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'torch._dynamo', 'sklearn', 'pydantic')\n"
        "print(json.dumps([name for name in heavy if name in sys.modules]), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert json.loads(done.stderr.strip().splitlines()[-1]) == [], done.stderr
