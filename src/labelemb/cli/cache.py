"""``labelemb cache``: what labelemb keeps on disk (:mod:`labelemb.data.caches`), listed kind by
kind with its folder, file count and size, and cleared, a kind or all, deleting only what labelemb
made. Its parser is light (the kinds' names come from the index); the work is imported when it runs.
"""

from __future__ import annotations

import argparse
import sys
import typing

from ..registry import unknown_name_message
from .index import read_index


def add_cache(commands: typing.Any) -> None:
    """The ``cache`` command's parser: ``labelemb cache [list]`` and ``labelemb cache clear``."""
    kinds = ", ".join(read_index()["cache_kinds"])
    cache = commands.add_parser(
        "cache",
        help="list what labelemb keeps on disk (corrupted copies, features, decoded images, downloads) "
        "and clear it",
        description="Lists each kind of cache (its folder, files, size and what makes it again); "
        f"`labelemb cache clear KIND` deletes only the files labelemb made there. Kinds: {kinds}.",
    )
    # type(cache): the command line's own parser class, whose one-line mistakes say "did you mean".
    actions = cache.add_subparsers(
        dest="action", metavar="{list,clear}", parser_class=type(cache), help="list (the default) or clear"
    )
    cache.set_defaults(func="cache:cmd_cache", action="list", kinds=[], all=False, dry_run=False, yes=False)
    _add_cache_dir(cache)
    listing = actions.add_parser(
        "list",
        help="each kind: its folder, files, size and what makes it again (the default)",
        description="Each kind of cache: its folder, files, size and what makes it again.",
    )
    _add_cache_dir(listing)
    clear = actions.add_parser(
        "clear",
        help="delete the files labelemb made in the kinds named (or --all), nothing else",
        description="Deletes the files labelemb made in each kind named (or every kind with --all); "
        "other files in those folders are left alone. Asks first on a terminal; elsewhere give --yes.",
    )
    clear.add_argument("kinds", nargs="*", type=_kind, metavar="KIND", help=f"kinds to clear: {kinds}")
    clear.add_argument(
        "--all", action="store_true", help="every kind (downloads come back only with the network)"
    )
    clear.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    clear.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    _add_cache_dir(clear)


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the cache root a config's data.files.cache_dir names (default $LABELEMB_CACHE, else "
        "~/.cache/labelemb)",
    )


def _kind(text: str) -> str:
    known = read_index()["cache_kinds"]
    if text not in known:
        raise argparse.ArgumentTypeError(unknown_name_message("cache kind", text, known))
    return text


def cmd_cache(args: argparse.Namespace) -> int:
    """List the caches, or clear the kinds asked after saying what goes (and asking, on a terminal)."""
    from ..data.caches import cache_usage, clear_cache, format_size  # lazy: loaded when this command runs

    cache_dir = getattr(args, "cache_dir", None)
    if args.action == "list":
        return _list(cache_usage(None, cache_dir))
    if not args.kinds and not args.all:
        raise ValueError("name the kinds to clear (labelemb cache clear corrupted) or give --all")
    kinds = None if args.all else args.kinds
    uses = [use for use in cache_usage(kinds, cache_dir) if use.entries]
    files, size = sum(use.files for use in uses), sum(use.size for use in uses)
    if not uses:
        print("nothing to delete: " + "; ".join(use.line() for use in cache_usage(kinds, cache_dir)))
        return 0
    if not (args.dry_run or args.yes or sys.stdin.isatty()):
        raise ValueError(
            "deleting needs a yes: give --yes (no terminal to ask on), or --dry-run to see what goes"
        )
    verb = "would delete" if args.dry_run else "deleting" if args.yes else "to delete"
    for use in uses:
        print(f"{verb} {use.line()}")
    if args.dry_run:
        print(f"{files} file(s), {format_size(size)} in all; nothing was deleted (--dry-run)")
        return 0
    if not args.yes and not _agreed(f"delete {files} file(s), {format_size(size)}? [y/N] "):
        print("nothing was deleted")
        return 1
    clear_cache([use.kind.name for use in uses], cache_dir)
    print(f"deleted {files} file(s), {format_size(size)}")
    return 0


def _list(uses: list[typing.Any]) -> int:
    """A line per kind (name, files, size, folder) and beneath it what it is and what makes it again."""
    from ..data.caches import format_size  # lazy: loaded when this command runs

    for use in uses:
        print(use.line())
        print(f"    {use.kind.what}; {use.kind.remade}")
    files, size = sum(use.files for use in uses), sum(use.size for use in uses)
    print(f"in all: {files} file(s), {format_size(size)}; delete a kind with: labelemb cache clear KIND")
    return 0


def _agreed(question: str) -> bool:
    """The user's yes, asked on the terminal."""
    return input(question).strip().lower() in ("y", "yes")
