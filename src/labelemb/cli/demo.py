"""`labelemb demo`: the offline demo on scikit-learn's bundled digits (:func:`labelemb.demo`)."""

from __future__ import annotations

import argparse

from ..experiment import demo


def cmd_demo(args: argparse.Namespace) -> int:
    shown = demo(args.seeds, epochs=args.epochs, output_dir=args.output_dir, progress=not args.no_progress)
    print(shown.to_text())
    return 0
