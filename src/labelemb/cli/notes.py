"""The library's log notes on stderr, above any progress bar; an error's message on one line."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


class _TqdmHandler(logging.Handler):
    """Log records as lines above any progress bar (tqdm.write keeps the bar intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def show_library_notes() -> None:
    """The library's notes (reusing a finished run, waiting for another process, a fallback) on stderr."""
    logger = logging.getLogger("labelemb")
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
