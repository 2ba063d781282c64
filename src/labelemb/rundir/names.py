"""The run folder's file names and format constants (what each file holds: :mod:`labelemb.rundir`)."""

from __future__ import annotations

from typing import Any

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
#: The weights at the selected check, with its step (:meth:`~labelemb.rundir.RunDir.write_selected_weights`).
SELECTED_MODEL_FILE = "model.selected.pt"
TENSORS_FILE = "label_representation.safetensors"
SUMMARY_FILE = "summary.json"
#: A digest of the content of the files a run trains on (a user's own data), compared on resume.
DATA_FILE = "data.json"
#: What a run knows of its data when it starts: its class names, what its network reads, and
#: where its files were looked for, so a prediction needs neither the summary nor the data to find them.
START_FILE = "start.json"
#: A finished run judged once on its selected weights (selective classification, conformal sets,
#: out-of-distribution detection), with what it was computed from: labelemb.evaluation.run.
EVALUATION_FILE = "evaluation.json"
#: A finished run scored on corrupted copies of its test split, per corruption and severity, with what
#: it was computed from: labelemb.evaluation.shift.
SHIFT_FILE = "shift.json"
#: The dev split's conformal scores of the selected check, sorted, one tensor per score, and what
#: they were computed from: the calibration of ``labelemb predict --sets`` (labelemb.predict.sets).
CONFORMAL_FILE = "conformal.safetensors"
#: A run trained on noisy labels: which training (and dev) examples carry a wrong label, their
#: clean and noisy labels, and the transition matrices (asked for, realised): labelemb.data.label_noise.
NOISE_FILE = "label_noise.safetensors"
LOCK_FILE = ".lock"
#: Where a run keeps what each evaluation produced besides its metrics (decoded output).
OUTPUTS_DIR = "outputs"
#: A text run's source and target vocabularies.
VOCABULARY_FILES = ("vocabulary.source.txt", "vocabulary.target.txt")
#: A text-classification run's vocabulary, one token per line in id order.
VOCABULARY_FILE = "vocabulary.txt"
#: Up to this many labels a finished run saves an (m x m) label representation.
MAX_SAVED_REPRESENTATION = 4096
CHECKPOINT_FORMAT = 1
#: What every ``summary.json`` holds, whatever the task.
SUMMARY_KEYS = ("method", "seed")
#: What every line of ``metrics.jsonl`` holds, whatever the task.
RECORD_KEYS = ("step", "epoch")
TMP_SUFFIX = ".tmp"

#: Config keys added after run folders were first written, with the value those older runs had:
#: a config.yaml without the key was trained that way, whatever today's default is.
LEGACY_VALUES: dict[tuple[str, ...], Any] = {("train", "adam"): "classic", ("noise",): None}
