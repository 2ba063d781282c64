"""``labelemb.write_predictions``: a trained run's predictions on new inputs (or on a split of its
own data) written to a file, one row per input, as ``labelemb predict`` writes them (the command
parses its options and calls it): a classifier's class and probability (its best ``top_k``, its
conformal set), a multi-label run's tags, a sequence-to-sequence run's output lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assembly import resolve_device
from ..rundir import write_text
from .loading import load
from .predictor import Predictor
from .reading import read_rows, split_rows
from .sets import SET_METHOD, calibration_for, check_request, read_sets, set_coverage, set_note
from .source import Checkpoint, PredictError
from .tags import TagPrediction, agreement, tag_decision


@dataclass(repr=False)
class Predicted:
    """What :func:`write_predictions` wrote: the file, each input's row as written there (a set or
    tags joined in a CSV's cell, lists in JSON lines), and the lines ``labelemb predict`` says after
    it (what was written, how the probabilities or tags were made, the error on the inputs' own
    labels where they have them). A shell shows it as one line."""

    output: Path
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short: the dataclass's own repr printed every row.
        return f"Predicted(rows={len(self.records)}, output={str(self.output)!r})"


@dataclass
class Request:
    """What a prediction was asked for, as ``labelemb predict``'s options say it."""

    run: str
    output: Path
    inputs: Path | None
    split: str | None
    data_dir: str | None
    sets: float | None
    set_method: str | None
    threshold: float | None
    top_k: int | None


def write_predictions(
    run: str | Path | Predictor,
    output: str | Path,
    *,
    inputs: str | Path | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    sets: float | None = None,
    set_method: str | None = None,
    overwrite: bool = False,
    checkpoint: Checkpoint = "selected",
    device: str | None = None,
    trust_factory: str | None = None,
    progress: bool = True,
) -> Predicted:
    """Predict every input of the file or folder ``inputs`` (or of the run's own ``split``) with
    ``run`` (a run folder, an exported bundle, or a :class:`Predictor` already loaded) and write one
    row per input to ``output`` (CSV, or JSON lines for a name ending in .jsonl or .json), as
    ``labelemb predict`` does: ``top_k`` adds the best classes (a multi-label run: its tags are the
    ``top_k`` most probable, else those reaching ``threshold``, by default the run's own); ``sets``
    (a coverage such as 0.9) adds each input's conformal set (``set_method``: thr, the default, aps or raps).
    ``checkpoint``, ``device`` and ``trust_factory`` load a path as :func:`labelemb.load` does.
    Every refusal (an existing ``output`` unless ``overwrite``, a wrong option) comes before any
    input is read."""
    output = Path(output)
    refuse_existing(output, overwrite)
    if (inputs is None) == (split is None):
        raise PredictError("give the inputs: --input PATH, or --split test (the run's own data)")
    if set_method is not None and sets is None:
        raise PredictError("--set-method needs --sets LEVEL, the target coverage of the sets (such as 0.9)")
    request = Request(
        str(run.trained.origin if isinstance(run, Predictor) else run),
        output,
        None if inputs is None else Path(inputs),
        split,
        data_dir,
        sets,
        set_method,
        threshold,
        top_k,
    )
    predictor = loaded(run, checkpoint, device, trust_factory)
    shown = predictor.progress
    predictor.progress = progress
    try:
        return predicted(predictor, request)
    finally:
        predictor.progress = shown  # a Predictor handed in is left as it was


def loaded(
    run: str | Path | Predictor, checkpoint: Checkpoint, device: str | None, trust_factory: str | None
) -> Predictor:
    """``run`` loaded as ``labelemb predict`` loads it (on the CPU unless ``device`` names another),
    or the Predictor handed in, for which the loading options are refused: it is loaded already."""
    if isinstance(run, Predictor):
        given = [name for name, value in (("device", device), ("trust_factory", trust_factory)) if value]
        given += ["checkpoint"] if checkpoint != "selected" else []
        if given:
            raise PredictError(
                f"{', '.join(given)}: a Predictor is loaded already; give them to labelemb.load, or "
                "hand over the run's folder instead"
            )
        return run
    # A device this machine lacks is one line (resolve_device's), before anything is read.
    return load(
        run,
        checkpoint=checkpoint,
        device=resolve_device(device) if device else "cpu",
        trust_factory=trust_factory,
    )


def predicted(predictor: Predictor, request: Request) -> Predicted:
    """The prediction ``request`` asks of ``predictor``, written; every refusal of ``sets``,
    ``threshold`` and ``top_k`` before the inputs are read."""
    trained = predictor.trained
    calibration = None if request.sets is None else set_calibration(predictor, request)
    threshold, top_k = tag_decision(trained, request.threshold, request.top_k)
    if predictor.multi_label:
        refuse_spaced_tags(predictor.classes, request.output)
    if request.split:
        rows = split_rows(trained, request.split, request.data_dir)
    else:
        rows = read_rows(request.inputs, trained)
    if predictor.reads == "token_pairs":
        return decoded(predictor, rows, request)
    logits = predictor.logits(rows.items, rows.places or rows.names)
    if predictor.multi_label:
        return tagged(predictor, rows, predictor.read_tags(logits, threshold, top_k), threshold, request)
    predictions = predictor.read_predictions(logits, top_k or 1)
    method = request.set_method or SET_METHOD
    chosen = None if calibration is None else read_sets(logits, calibration, request.sets, method, trained)
    records = prediction_records(rows, predictions, predictor.temperature, request.output, chosen)
    columns = list(records[0]) if records else [rows.name_column, "prediction", "probability", "temperature"]
    write_text(request.output, table_text(records, columns, request.output))
    notes = written_notes(predictor, len(predictions), temperature_note(trained), request)
    if calibration is not None:
        notes.append(set_note(calibration, request.sets, method))
    if rows.labels is not None:
        wrong = sum(p.label != label for p, label in zip(predictions, rows.labels))
        notes.append(f"error on the inputs' own labels: {100.0 * wrong / max(len(predictions), 1):.2f} %")
        if chosen is not None:
            notes.append(set_coverage(chosen, rows.labels))
    return Predicted(request.output, records, notes)


def set_calibration(predictor: Predictor, request: Request) -> Any:
    """The run's calibration for ``sets`` (and ``set_method``), or a one-line refusal."""
    check_request(request.sets, request.set_method or SET_METHOD)
    calibration = calibration_for(predictor, request.data_dir)
    names = [name for name in predictor.classes if "|" in name]
    if names and not json_lines(request.output):
        raise PredictError(
            f"class {names[0]!r} holds '|', which joins a set's classes in a CSV; write JSON lines "
            "(--output ending in .jsonl), where a set is a list"
        )
    return calibration


def tagged(
    predictor: Predictor,
    rows: Any,
    predictions: list[TagPrediction],
    threshold: float | None,
    request: Request,
) -> Predicted:
    """A multi-label run's output: each input's tags and their probabilities, one row each;
    ``threshold`` the one taken (None with ``top_k``)."""
    records = tag_records(rows, predictions, threshold, predictor.classes, request.output)
    columns = list(records[0]) if records else [rows.name_column, "prediction", "probabilities", "threshold"]
    write_text(request.output, table_text(records, columns, request.output))
    notes = written_notes(
        predictor, len(predictions), tags_note(predictor.trained, threshold, request), request
    )
    if rows.tags is not None:
        notes.append(agreement(predictions, rows.tags, predictor.classes))
    return Predicted(request.output, records, notes)


def written_notes(predictor: Predictor, count: int, how: str, request: Request) -> list[str]:
    """The lines every prediction ends with: what was written, how the probabilities (or tags)
    were made, and a warning where the inputs lie far from the training inputs."""
    trained = predictor.trained
    check = f"{trained.checkpoint} check, step {trained.step}"
    notes = [f"predicted {count} input(s) with {request.run} ({check}) -> {request.output}", how]
    note = predictor.range_note(str(request.inputs or f"the {request.split} split"))
    if note is not None and request.inputs is not None:
        notes.append(note)
    return notes


def decoded(predictor: Predictor, rows: Any, request: Request) -> Predicted:
    """A sequence-to-sequence run's output line for each source line, one row each."""
    outputs = predictor.translate(rows.items)
    records = []
    for i, line in enumerate(outputs):
        record = rows.record(i)
        if rows.labels is not None:
            record["reference"] = rows.labels[i]
        records.append({**record, "output": line})
    columns = list(records[0]) if records else ["line", "output"]
    write_text(request.output, table_text(records, columns, request.output))
    trained = predictor.trained
    decoding = trained.config.model_extra.get("decode")
    beam = decoding.beam if decoding is not None else 1
    note = (
        f"decoded {len(outputs)} line(s) with {request.run} ({trained.checkpoint} check, step "
        f"{trained.step}; beam {beam}) -> {request.output}"
    )
    return Predicted(request.output, records, [note])


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


def prediction_records(
    rows: Any,
    predictions: list[Any],
    temperature: float | None,
    output: Path,
    sets: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """The output file's rows; with ``sets``, each row's set (a list in JSON, the classes joined by
    ``|`` in a CSV) and its size."""
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
    return records


def tags_note(trained: Any, threshold: float | None, request: Request) -> str:
    """One line saying how each input's tags were chosen: ``threshold`` (None: ``top_k``)."""
    if threshold is None:
        return f"tags: the {request.top_k} most probable of each input (sigmoid of each tag's score), --top-k"
    taken = (
        "--threshold"
        if request.threshold is not None
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


def tag_records(
    rows: Any, predictions: list[TagPrediction], threshold: float | None, tags: list[str], output: Path
) -> list[dict[str, Any]]:
    """A multi-label run's output rows: each input's tags most probable first, their probabilities,
    its own tags where the input gives them (lists in JSON lines, joined by spaces in a CSV), and the
    threshold taken on every row (empty with ``top_k``)."""
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
    return records


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
