"""``labelemb predict`` and ``labelemb export``: the options parsed into what
:func:`labelemb.write_predictions` and :func:`labelemb.export` take, and what they did said on
stderr (the predictions go to ``--output``)."""

from __future__ import annotations

import argparse
import sys

from ..predict.export import export
from ..predict.outputs import write_predictions


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict every input of ``--input`` (or the run's ``--split``) and write one row per input."""
    predicted = write_predictions(
        args.run_dir,
        args.output,
        inputs=args.input,
        split=args.split,
        data_dir=args.data_dir,
        top_k=args.top_k,
        threshold=args.threshold,
        sets=args.sets,
        set_method=args.set_method,
        overwrite=args.overwrite,
        checkpoint=args.checkpoint,
        device=args.device,
        trust_factory=args.trust_factory,
        progress=not args.no_progress,
    )
    for note in predicted.notes:
        print(note, file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run as a bundle, TorchScript or ONNX into ``--output``."""
    written = export(
        args.run_dir,
        args.format,
        args.output,
        overwrite=args.overwrite,
        checkpoint=args.checkpoint,
        trust_factory=args.trust_factory,
    )
    print(f"exported {args.run_dir} ({args.format}) -> {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
