"""``labelemb predict`` and ``labelemb export``: use a trained run on new data, or write it out."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..assembly import resolve_device
from ..predict import load
from ..predict.export import export
from ..predict.reading import read_rows, split_rows
from ..predict.sets import SET_METHOD, calibration_for, check_request, read_sets, set_coverage, set_note
from ..predict.source import PredictError
from ..predict.tags import TagPrediction, agreement, tag_decision
from ..rundir import write_text


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict every input of ``--input`` (or the run's ``--split``) and write one row per input."""

    output: Path = args.output
    refuse_existing(output, args.overwrite)
    if (args.input is None) == (args.split is None):
        raise PredictError("give the inputs: --input PATH, or --split test (the run's own data)")
    if args.set_method is not None and args.sets is None:
        raise PredictError("--set-method needs --sets LEVEL, the target coverage of the sets (such as 0.9)")

    # A device this machine lacks is one line (resolve_device's), before anything is read.
    device = resolve_device(args.device) if args.device else "cpu"
    predictor = load(
        args.run_dir, checkpoint=args.checkpoint, device=device, trust_factory=args.trust_factory
    )
    predictor.progress = not args.no_progress
    trained = predictor.trained
    # Every refusal of --sets, --threshold and --top-k comes before the inputs are read.
    calibration = None if args.sets is None else _calibration(predictor, args)
    threshold, top_k = tag_decision(trained, args.threshold, args.top_k)
    if predictor.multi_label:
        refuse_spaced_tags(predictor.classes, output)
    rows = split_rows(trained, args.split, args.data_dir) if args.split else read_rows(args.input, trained)
    if predictor.reads == "token_pairs":
        return _decoded(predictor, rows, args)
    logits = predictor.logits(rows.items, rows.places or rows.names)
    if predictor.multi_label:
        return _tagged(predictor, rows, predictor.read_tags(logits, threshold, top_k), threshold, args)
    predictions = predictor.read_predictions(logits, top_k or 1)
    sets = None
    if calibration is not None:
        sets = read_sets(logits, calibration, args.sets, args.set_method or SET_METHOD, trained)
    write_text(output, prediction_table(rows, predictions, predictor.temperature, output, sets))
    _predicted(predictor, len(predictions), temperature_note(trained), args)
    if calibration is not None:
        print(set_note(calibration, args.sets, args.set_method or SET_METHOD), file=sys.stderr)
    if rows.labels is not None:
        wrong = sum(p.label != label for p, label in zip(predictions, rows.labels))
        print(
            f"error on the inputs' own labels: {100.0 * wrong / max(len(predictions), 1):.2f} %",
            file=sys.stderr,
        )
        if sets is not None:
            print(set_coverage(sets, rows.labels), file=sys.stderr)
    return 0


def _calibration(predictor: Any, args: argparse.Namespace) -> Any:
    """The run's calibration for ``--sets`` (and ``--set-method``), or a one-line refusal."""

    check_request(args.sets, args.set_method or SET_METHOD)
    calibration = calibration_for(predictor, args.data_dir)
    names = [name for name in predictor.classes if "|" in name]
    if names and not json_lines(args.output):
        raise PredictError(
            f"class {names[0]!r} holds '|', which joins a set's classes in a CSV; write JSON lines "
            "(--output ending in .jsonl), where a set is a list"
        )
    return calibration


def _tagged(
    predictor: Any,
    rows: Any,
    predictions: list[TagPrediction],
    threshold: float | None,
    args: argparse.Namespace,
) -> int:
    """A multi-label run's output: each input's tags and their probabilities, one row each;
    ``threshold`` the one taken (None with --top-k)."""

    write_text(args.output, tag_table(rows, predictions, threshold, predictor.classes, args.output))
    _predicted(predictor, len(predictions), tags_note(predictor.trained, threshold, args), args)
    if rows.tags is not None:
        print(agreement(predictions, rows.tags, predictor.classes), file=sys.stderr)
    return 0


def _predicted(predictor: Any, count: int, how: str, args: argparse.Namespace) -> None:
    """The lines every prediction ends with: what was written, how the probabilities (or tags)
    were made, and a warning where the inputs lie far from the training inputs."""

    trained = predictor.trained
    check = f"{trained.checkpoint} check, step {trained.step}"
    print(f"predicted {count} input(s) with {args.run_dir} ({check}) -> {args.output}", file=sys.stderr)
    print(how, file=sys.stderr)
    note = predictor.range_note(str(args.input or f"the {args.split} split"))
    if note is not None and args.input is not None:
        print(note, file=sys.stderr)


def _decoded(predictor: Any, rows: Any, args: argparse.Namespace) -> int:
    """A sequence-to-sequence run's output line for each source line, one row each."""

    outputs = predictor.translate(rows.items)
    records = []
    for i, line in enumerate(outputs):
        record = rows.record(i)
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
    rows: Any,
    predictions: list[Any],
    temperature: float | None,
    output: Path,
    sets: list[Any] | None = None,
) -> str:
    """The output file's text: CSV, or JSON lines for an output ending in .jsonl or .json; with
    ``sets``, each row's set (a list in JSON, the classes joined by ``|`` in a CSV) and its size."""
    as_list = json_lines(output)
    records = []
    for i, prediction in enumerate(predictions):
        record: dict[str, Any] = rows.record(i)
        if rows.labels is not None:
            record["label"] = rows.labels[i]
        record["prediction"] = prediction.label
        record["probability"] = round(prediction.probability, 6)
        for k, (name, probability) in enumerate(prediction.top, start=1):
            record[f"class_{k}"] = name
            record[f"probability_{k}"] = round(probability, 6)
        if sets is not None:
            record["set"] = list(sets[i].classes) if as_list else "|".join(sets[i].classes)
            record["set_size"] = len(sets[i].classes)
        # Whether (and which) temperature made the probabilities, on every row.
        record["temperature"] = "" if temperature is None else round(temperature, 6)
        records.append(record)
    columns = list(records[0]) if records else [rows.name_column, "prediction", "probability", "temperature"]
    return table_text(records, columns, output)


def tags_note(trained: Any, threshold: float | None, args: argparse.Namespace) -> str:
    """One line saying how each input's tags were chosen: ``threshold`` (None: --top-k)."""
    if threshold is None:
        return f"tags: the {args.top_k} most probable of each input (sigmoid of each tag's score), --top-k"
    taken = (
        "--threshold"
        if args.threshold is not None
        else f"the threshold the run's decisions took at the {trained.checkpoint} check (step {trained.step})"
    )
    return f"tags: each whose probability (sigmoid of its score) reaches {threshold:g}, {taken}"


def refuse_spaced_tags(tags: list[str], output: Path) -> None:
    """Refuse a CSV output where a tag holds a space, which joins an input's tags in a CSV cell."""
    spaced = [tag for tag in tags if " " in tag]
    if spaced and not json_lines(output):
        raise PredictError(
            f"tag {spaced[0]!r} holds a space, which joins an input's tags in a CSV; write JSON lines "
            "(--output ending in .jsonl), where the tags are a list"
        )


def tag_table(
    rows: Any, predictions: list[TagPrediction], threshold: float | None, tags: list[str], output: Path
) -> str:
    """A multi-label run's output file: each input's tags most probable first, their probabilities,
    its own tags where the input gives them (lists in JSON lines, joined by spaces in a CSV), and the
    threshold taken on every row (empty with --top-k)."""
    as_list = json_lines(output)

    def cell(values: Sequence[Any]) -> Any:
        return list(values) if as_list else " ".join(map(str, values))

    records = []
    for i, prediction in enumerate(predictions):
        record: dict[str, Any] = rows.record(i)
        if rows.tags is not None:
            record["label"] = cell([tags[k] for k in rows.tags[i].nonzero().flatten().tolist()])
        record["prediction"] = cell(prediction.tags)
        record["probabilities"] = cell([round(p, 6) for p in prediction.probabilities])
        record["threshold"] = "" if threshold is None else threshold
        records.append(record)
    columns = list(records[0]) if records else [rows.name_column, "prediction", "probabilities", "threshold"]
    return table_text(records, columns, output)


def json_lines(output: Path) -> bool:
    """Whether ``output`` is written as JSON lines (a name ending in .jsonl or .json), else CSV."""
    return output.suffix.lower() in (".jsonl", ".json")


def table_text(records: list[dict[str, Any]], columns: list[str], output: Path) -> str:
    """``records`` as CSV, or JSON lines for an output ending in .jsonl or .json."""
    if json_lines(output):
        return "".join(json.dumps(record) + "\n" for record in records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run as a bundle, TorchScript or ONNX into ``--output``."""

    output: Path = args.output
    if output.exists() and any(output.iterdir() if output.is_dir() else [output]) and not args.overwrite:
        raise PredictError(f"{output} exists; choose another --output, or pass --overwrite to replace it")
    predictor = load(args.run_dir, checkpoint=args.checkpoint, trust_factory=args.trust_factory)
    written = export(predictor, args.format, output)
    print(f"exported {args.run_dir} ({args.format}) -> {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
