"""Every file training writes into its runs' folders, behind one door: :class:`Saver`, the
trainer's checkpoint and result I/O (as Lightning keeps its ``CheckpointIO`` out of the loop);
and what a run records when it starts (:func:`start_record`, its ``start.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..data.base import as_float_images
from ..data.registry import DataRequest
from ..data.text.sequences import TextDataset
from ..rundir import NOISE_FILE, START_FILE, save_safetensors
from .seed_run import SeedRun


class Saver:
    """What training writes into each run's folder (:class:`~labelemb.rundir.RunDir`), in one
    place: when the runs start (their config and the start files), at each check (the task's
    decoded output, the metrics, the checkpoint, and the weights of the check the run reports so
    far: what ``labelemb predict`` reads) and when a run is finished (its weights, the method's
    tensors, the summary). Under torchrun only the main process writes: a saver that does not
    ``write`` writes nothing."""

    def __init__(self, writes: bool = True) -> None:
        self.writes = writes

    def start(
        self, runs: list[SeedRun], files: dict[str, str], request: DataRequest, dataset: Dataset | TextDataset
    ) -> None:
        """The runs' folders started with their config, ``files`` (name -> text) written, and their
        start record (``start.json``: :func:`start_record` of the data ``request`` and ``dataset``)."""
        if not self.writes:
            return
        start = json.dumps(start_record(request, dataset), indent=2) + "\n"
        noise = getattr(dataset, "noise", None)
        for run in runs:
            run.folder.start(run.config)
            for name, text in {**files, START_FILE: start}.items():
                run.folder.write_text_file(name, text)
            if noise is not None:
                save_safetensors(run.folder.file(NOISE_FILE), noise.tensors(dataset))

    def check(
        self, run: SeedRun, files: dict[str, str], checkpoint: Callable[[], dict[str, Any]], selected: bool
    ) -> None:
        """``run``'s last check: its evaluation's ``files`` in the record's ``outputs`` folder, the
        metrics, the checkpoint (``checkpoint()``: the layout's state of the run, with its
        progress) and, when the check is ``selected`` (the one the run reports so far:
        :func:`~labelemb.training.results.last_is_selected`), its weights."""
        if not self.writes:
            return
        folder, progress = run.folder, run.progress
        record = progress.records[-1]
        for name, text in files.items():
            folder.write_text_file(f"{record['outputs']}/{name}", text)
        folder.write_metrics(progress.records)
        state = checkpoint()
        folder.write_checkpoint({**state, "progress": asdict(progress)})
        if selected:
            # What `labelemb predict` reads: the weights the summary's selected check measured.
            folder.write_selected_weights(state["network"], progress.step)

    def results(self, run: SeedRun, tensors: dict[str, Any], summary: dict[str, Any]) -> None:
        """A finished run's results: its weights, the method's ``tensors`` and its summary."""
        if self.writes:
            run.folder.write_results(run.network.state_dict(), tensors, summary)
            if not run.config.train.keep_checkpoint:
                run.folder.drop_checkpoint(selected_weights=False)


def start_record(request: DataRequest, dataset: Dataset | TextDataset) -> dict[str, Any]:
    """What a run records when it starts (``start.json``): its class names and what its network
    (and a frozen backbone) reads, as the summary will, and the folders its data files were looked
    for in, made absolute: a prediction reads the data where the run found it, from any folder."""
    record: dict[str, Any] = {
        "class_names": list(dataset.class_names),
        "input_shape": list(dataset.input_shape),
    }
    frozen = getattr(dataset, "details", {}).get("frozen")
    if frozen:
        record["data"] = {"frozen": {"input_shape": frozen["input_shape"]}}
    # The request's order: the config file's folder, then data.dir (relative to where it ran).
    given_dir = request.dir
    record["data_folders"] = {
        "config_folder": next(iter(request.search), None),
        "dir": None if given_dir is None else str(Path(given_dir).expanduser().resolve()),
    }
    inputs = input_record(dataset)
    if inputs is not None:
        record["inputs"] = inputs
    return record


#: How many training images an input record is measured on (the first ones): enough for a range.
RANGE_SAMPLE = 2000


def input_record(dataset: Dataset | TextDataset) -> dict[str, float] | None:
    """The training images' range and mean as the network reads them (floats in [0, 1]) and the
    largest stored pixel value the data set divided them by, or the training texts' mean number of
    tokens: what ``labelemb predict`` measures new inputs against. None for a frozen backbone's
    features and for token pairs."""
    if getattr(dataset, "yields", None) == "texts" and not dataset.details.get("frozen"):
        # What the network read of each text: its tokens, as the run's tokenizer and cut made them.
        return {"mean_tokens": float(dataset.train.lengths.double().mean())}
    if getattr(dataset, "yields", None) != "images" or dataset.details.get("frozen"):
        return None
    sample = as_float_images(dataset.train.inputs[:RANGE_SAMPLE])
    return {
        "low": float(sample.min()),
        "high": float(sample.max()),
        "mean": float(sample.mean()),
        "pixel_scale": float(dataset.pixel_scale),
    }
