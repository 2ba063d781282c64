"""The ``labelemb`` command: train, compare, tune, demo, evaluate, shift, analyze, similar,
report, ranks, predict, export.

One module per job: :mod:`.parser` (every command and its options, light), and the commands'
modules, each imported only when its command runs (a parser names its command's function as
``"module:function"``): :mod:`.run` (train and compare), :mod:`.tune`, :mod:`.demo`,
:mod:`.evaluate` (evaluate and shift), each a thin layer over :mod:`labelemb.experiment`;
:mod:`.inspect` (analyze, similar, report, ranks), :mod:`.predict` (predict, export);
:mod:`.notes` (log lines).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from .index import check_command_line
from .notes import show_library_notes
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else list(argv)):
        parser.print_help()  # bare `labelemb`: what it can do, not an error
        return 0
    # Overrides may come before or after options (argparse alone takes them on one side only).
    args, extra = parser.parse_known_args(argv)
    if extra:
        misplaced = [item for item in extra if item.startswith("-") or "=" not in item]
        if args.command not in ("train", "compare", "tune", "label-issues") or misplaced:
            print(
                f"labelemb {args.command}: error: unrecognized arguments: {' '.join(misplaced or extra)} "
                f"(see labelemb {args.command} --help)",
                file=sys.stderr,
            )
            return 2
        args.overrides += extra
    if args.command == "train" and args.single_seed is not None:
        args.overrides.append(f"seed={args.single_seed}")
    if args.command in ("train", "compare", "tune", "label-issues"):
        try:
            # What the command line names, checked against the index before torch is imported.
            check_command_line(args)
        except ValueError as error:
            print(f"labelemb {args.command}: error: {error}", file=sys.stderr)
            return 2
    from ..progress import as_command  # lazy: tqdm, once the command runs

    with as_command():  # its after-training lines are said even with --no-progress
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The parsed command, run: one line and exit code 2 for what the user can mend."""
    from ..data import DataError  # lazy: loaded when this command runs
    from ..training import (  # lazy: loaded when this command runs
        ConfigError,
        RunDirError,
        init_from_environment,
        same_numbers_at_any_thread_count,
        shutdown,
    )

    # The command line picks its threads by how busy the cores are: its numbers must not follow.
    same_numbers_at_any_thread_count()
    processes = init_from_environment()  # joins torchrun's process group when there is one
    show_library_notes()
    if args.command in ("train", "compare", "tune", "demo", "label-issues") and processes.world_size == 1:
        from ..training import use_free_cores_when_training  # lazy: loaded when this command runs

        use_free_cores_when_training()
    try:
        code = command_function(args.func)(args)
    except (ConfigError, RunDirError, DataError, FileNotFoundError, ValueError) as error:
        print(f"labelemb {args.command}: error: {error}", file=sys.stderr)
        code = 2
    except OSError as error:  # a file or folder the command cannot read or write
        print(f"labelemb {args.command}: error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        from ..rundir import remove_interrupted_writes  # lazy: loaded when this command runs

        remove_interrupted_writes()  # a checkpoint or weights file half-written when Ctrl-C came
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        code = 130
    finally:
        shutdown()
    if processes.world_size > 1:
        # gloo's threads can abort a process during interpreter teardown after the group is gone,
        # which torchrun would report as a failed run: everything is written, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def command_function(func: str | Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command's function: ``"module:function"`` of this package, imported now that the command
    runs (so that ``labelemb --help`` imports none of the work), or the function itself."""
    if callable(func):
        return func
    module, _, name = func.partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
