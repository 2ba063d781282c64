"""``labelemb predict`` and ``labelemb export``: use a trained run on new data, or write it out."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ..rundir import write_text


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict every input of ``--input`` (or the run's ``--split``) and write one row per input."""
    from ..predict import load
    from ..predict.reading import read_rows, split_rows
    from ..predict.source import PredictError

    output: Path = args.output
    refuse_existing(output, args.overwrite)
    if (args.input is None) == (args.split is None):
        raise PredictError("give the inputs: --input PATH, or --split test (the run's own data)")
    from ..train.build import resolve_device

    # A device this machine lacks is one line (resolve_device's), before anything is read.
    device = resolve_device(args.device) if args.device else "cpu"
    predictor = load(
        args.run_dir, checkpoint=args.checkpoint, device=device, trust_factory=args.trust_factory
    )
    predictor.progress = not args.no_progress
    trained = predictor.trained
    rows = split_rows(trained, args.split, args.data_dir) if args.split else read_rows(args.input, trained)
    if predictor.reads == "token_pairs":
        return _decoded(predictor, rows, args)
    logits = predictor.logits(rows.items, rows.names)
    predictions = predictor.read_predictions(logits, args.top_k)
    text = prediction_table(rows, predictions, args.top_k, predictor.temperature, output)
    write_text(output, text)
    check = f"{trained.checkpoint} check, step {trained.step}"
    print(f"predicted {len(predictions)} input(s) with {args.run_dir} ({check}) -> {output}", file=sys.stderr)
    print(temperature_note(trained), file=sys.stderr)
    if rows.labels is not None:
        wrong = sum(p.label != label for p, label in zip(predictions, rows.labels))
        print(
            f"error on the inputs' own labels: {100.0 * wrong / max(len(predictions), 1):.2f} %",
            file=sys.stderr,
        )
    return 0


def _decoded(predictor: Any, rows: Any, args: argparse.Namespace) -> int:
    """A sequence-to-sequence run's output line for each source line, one row each."""
    outputs = predictor.translate(rows.items)
    records = []
    for i, line in enumerate(outputs):
        record = {rows.name_column: rows.names[i]}
        if rows.labels is not None:
            record["reference"] = rows.labels[i]
        records.append({**record, "output": line})
    write_text(
        args.output, table_text(records, list(records[0]) if records else ["line", "output"], args.output)
    )
    trained = predictor.trained
    decoding = trained.config.model_extra.get("decode")
    beam = decoding.beam if decoding is not None else 1
    print(
        f"decoded {len(outputs)} line(s) with {args.run_dir} ({trained.checkpoint} check, step "
        f"{trained.step}; beam {beam}) -> {args.output}",
        file=sys.stderr,
    )
    return 0


def refuse_existing(output: Path, overwrite: bool) -> None:
    """Refuse an output that is a folder, or that exists unless ``overwrite`` (checked before
    anything is read)."""
    from ..predict.source import PredictError

    if output.is_dir():
        raise PredictError(
            f"--output {output} is a folder; give the file to write, such as {output / 'predictions.csv'}"
        )
    if output.exists() and not overwrite:
        raise PredictError(f"{output} exists; choose another --output, or pass --overwrite to replace it")


def temperature_note(trained: Any) -> str:
    """One line saying how the probabilities were made: with which temperature, or why none."""
    if trained.temperature is None:
        return f"probabilities: softmax of the scores (no temperature: {trained.no_temperature})"
    return (
        "probabilities: softmax of the scores divided by the run's temperature "
        f"T = {trained.temperature:.4g} (fit on its dev split at the {trained.checkpoint} check, "
        f"step {trained.step})"
    )


def prediction_table(
    rows: Any, predictions: list[Any], top_k: int, temperature: float | None, output: Path
) -> str:
    """The output file's text: CSV, or JSON lines for an output ending in .jsonl or .json."""
    records = []
    for i, prediction in enumerate(predictions):
        record: dict[str, Any] = {rows.name_column: rows.names[i]}
        if rows.labels is not None:
            record["label"] = rows.labels[i]
        record["prediction"] = prediction.label
        record["probability"] = round(prediction.probability, 6)
        for k, (name, probability) in enumerate(prediction.top, start=1):
            record[f"class_{k}"] = name
            record[f"probability_{k}"] = round(probability, 6)
        # Whether (and which) temperature made the probabilities, on every row.
        record["temperature"] = "" if temperature is None else round(temperature, 6)
        records.append(record)
    columns = list(records[0]) if records else [rows.name_column, "prediction", "probability", "temperature"]
    return table_text(records, columns, output)


def table_text(records: list[dict[str, Any]], columns: list[str], output: Path) -> str:
    """``records`` as CSV, or JSON lines for an output ending in .jsonl or .json."""
    if output.suffix.lower() in (".jsonl", ".json"):
        return "".join(json.dumps(record) + "\n" for record in records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run as a bundle, TorchScript or ONNX into ``--output``."""
    from ..predict import load
    from ..predict.export import export

    output: Path = args.output
    if output.exists() and any(output.iterdir() if output.is_dir() else [output]) and not args.overwrite:
        from ..predict.source import PredictError

        raise PredictError(f"{output} exists; choose another --output, or pass --overwrite to replace it")
    predictor = load(args.run_dir, checkpoint=args.checkpoint, trust_factory=args.trust_factory)
    written = export(predictor, args.format, output)
    print(f"exported {args.run_dir} ({args.format}) -> {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
