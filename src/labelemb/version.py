"""The version of labelemb, on the ground floor so that any module may record it."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """What a run records as the code that made its numbers: :data:`__version__`, and where this
    package runs from a git checkout of its own source, the commit (``0.1.0+g1a2b3c4d5e6f``) and
    ``.dirty`` where the package's tracked files differ from it."""
    return source_version(Path(__file__).resolve().parent)


def source_version(folder: Path) -> str:
    """:data:`__version__` with the commit of the git checkout that tracks ``folder``'s
    ``version.py`` (``.dirty`` where a tracked file under ``folder`` is modified); the bare version
    where there is none (an installed wheel, a package inside somebody else's repository)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):  # no git, or it hangs
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # Only a checkout that tracks this very file is this package's source.
    if git("ls-files", "--error-unmatch", "version.py") is None:
        return __version__
    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return __version__
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{__version__}+g{commit}" + (".dirty" if changes else "")
