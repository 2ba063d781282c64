"""When a progress bar is drawn: one rule for every bar of the library and the command line.

A bar redraws itself with carriage returns, which a terminal (or a notebook's widget) turns into
one line that moves; a log file or CI keeps every redraw. So a bar is drawn only where progress is
wanted (``--no-progress`` / ``train.progress: false`` turn it off) and stderr is a terminal or a
notebook; elsewhere each caller says what it has to say in plain lines, or nothing.
"""

from __future__ import annotations

import sys


def draws_bar(enabled: bool) -> bool:
    """Whether a progress bar is drawn: ``enabled`` and stderr is a terminal or a notebook."""
    # A notebook's stderr is no terminal, but tqdm draws a widget (or a line it rewrites) there.
    return enabled and (sys.stderr.isatty() or "ipykernel" in sys.modules)
