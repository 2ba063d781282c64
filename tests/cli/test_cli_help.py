"""What the command line says before it does anything: bare `labelemb`, a mistyped command, each
command's description."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labelemb.cli import build_parser, main


def test_bare_labelemb_shows_its_help_and_succeeds(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: labelemb") and "compare" in out


def test_bare_labelemb_from_the_shell_succeeds():
    done = subprocess.run([sys.executable, "-m", "labelemb"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: labelemb" in done.stdout and not done.stderr


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [(["trian"], "did you mean 'train'?"), (["compare", "--executor", "rey"], "did you mean 'ray'?")],
)
def test_a_near_miss_gets_a_did_you_mean_in_its_one_line(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert suggestion in err and len(err.strip().splitlines()) == 1


def test_a_choice_far_from_any_gets_no_suggestion(capsys):
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "did you mean" not in capsys.readouterr().err


def test_every_command_has_a_description_and_predict_speaks_of_no_evaluation():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, command in commands.items():
        assert command.description, f"labelemb {name} --help has no description"
    predict = commands["predict"]
    progress = next(a for a in predict._actions if a.dest == "no_progress")
    assert "evaluation" not in progress.help


def test_demo_seeds_are_written_as_everywhere_else():
    demo = next(a for a in build_parser()._actions if a.dest == "command").choices["demo"]
    assert demo.parse_args(["--seeds", "0-1"]).seeds == [0, 1]
    assert demo.parse_args(["--seeds", "3"]).seeds == [3]


def test_the_cli_references_table_names_every_command():
    # docs/cli.md's first table is where a reader looks for what the commands are (issue 99 found
    # evaluate, shift and ranks missing from it).
    from helpers.repo_paths import DOCS

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    table = page.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    listed = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    commands = set(next(a for a in build_parser()._actions if a.dest == "command").choices)
    assert commands <= listed, sorted(commands - listed)
