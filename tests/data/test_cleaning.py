"""Clean, then train (issue 101, part 6): ``data.clean`` trains on the training split cleaned by a
list that ``labelemb label-issues`` wrote, after the run's noise; rows are matched by their place in
their file, never by position; a list made for other data, another split or other labels is refused
in one line; the run records what was removed and the list's digest, so a finished run is never
read back for a list that has changed."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from labelemb.assembly import data_of
from labelemb.config import ConfigError
from labelemb.config.schema import config_keys
from labelemb.data import DataError, Dataset, Split
from labelemb.data.cleaning import training_places
from labelemb.label_issues.folds import training_origins
from labelemb.label_issues.listing import LabelIssues, write_listing
from labelemb.training import build_config, train

NOISE = {"kind": "symmetric", "rate": 0.4}


def raw_config(tmp_path: Path, clean: dict | None = None, noise: dict | None = None, **data) -> dict:
    """A small digits run with 40 % of its training labels flipped, cleaned by ``clean``."""
    return {
        "experiment": "cleaned",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "digits", **data, **({"clean": clean} if clean else {})},
        "noise": noise or NOISE,
        "model": {"name": "mlp", "hidden": [16]},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 100, "progress": False},
    }


def noisy_digits(tmp_path: Path, noise: dict | None = None, **data):
    return data_of(build_config(raw_config(tmp_path, noise=noise, **data))).load()


def write_list(folder: Path, dataset, flagged: np.ndarray, suggested: np.ndarray, order=None) -> Path:
    """The list ``labelemb label-issues`` would write for ``dataset`` (its own writer), with its rows
    in ``order`` (a ranking: not the split's order)."""
    origins = training_origins(dataset)
    names = dataset.class_names
    labels = dataset.train.labels.numpy()
    order = np.arange(len(labels)) if order is None else order
    rows = [
        {
            "rank": rank,
            "file": origins.file(int(i)),
            "row": origins.row(int(i)),
            "given_label": names[int(labels[i])],
            "suggested_label": names[int(suggested[i])],
            "score": 0.5,
            "flagged": bool(flagged[i]),
            "fold": 1,
        }
        for rank, i in enumerate(order, start=1)
    ]
    issues = LabelIssues(rows, int(flagged.sum()), int(flagged.sum()), np.eye(len(names)), names, folder)
    write_listing(issues, np.zeros((len(labels), len(names))), labels, np.zeros(len(labels), dtype=int))
    return folder / "label_issues.csv"


def truth_list(tmp_path: Path, dataset, name: str = "list") -> Path:
    """A list that flags exactly the wrong rows and suggests their true labels, rows shuffled."""
    clean = dataset.noise.clean["train"].numpy()
    wrong = clean != dataset.train.labels.numpy()
    order = np.random.default_rng(1).permutation(len(clean))
    return write_list(tmp_path / name, dataset, wrong, clean, order)


def test_remove_drops_exactly_the_flagged_rows_after_the_noise(tmp_path):
    noisy = noisy_digits(tmp_path)
    wrong = (noisy.noise.clean["train"] != noisy.train.labels).numpy()
    listed = truth_list(tmp_path, noisy)
    cleaned = data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()
    assert len(cleaned.train) == int((~wrong).sum()) < len(noisy.train)
    assert torch.equal(cleaned.train.inputs, noisy.train.inputs[torch.from_numpy(~wrong)])
    assert torch.equal(cleaned.train.labels, noisy.noise.clean["train"][torch.from_numpy(~wrong)])
    # each kept row still named by its place, as the list named it
    kept_places = [training_places(noisy).place(int(i)) for i in np.flatnonzero(~wrong)]
    assert [training_origins(cleaned).place(i) for i in range(len(cleaned.train))] == kept_places
    assert torch.equal(cleaned.dev.labels, noisy.dev.labels) and torch.equal(
        cleaned.test.labels, noisy.test.labels
    )
    record = cleaned.details["clean"]
    assert record["action"] == "remove" and record["removed"] == record["flagged"] == int(wrong.sum())
    assert record["wrong_before"] == int(wrong.sum()) and record["wrong_after"] == 0
    assert cleaned.noise.rate("train", cleaned.train.labels) == 0.0


def test_relabel_gives_the_flagged_rows_their_suggested_labels(tmp_path):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    config = raw_config(tmp_path, {"issues": str(listed), "action": "relabel"})
    cleaned = data_of(build_config(config)).load()
    assert torch.equal(cleaned.train.inputs, noisy.train.inputs)
    assert torch.equal(cleaned.train.labels, noisy.noise.clean["train"])
    record = cleaned.details["clean"]
    assert record["removed"] == 0 and record["relabelled"] == record["wrong_before"] > 0
    assert record["wrong_after"] == 0


def test_only_flagged_rows_change_and_the_list_order_does_not_matter(tmp_path):
    noisy = noisy_digits(tmp_path)
    labels = noisy.train.labels.numpy()
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[[3, 10, 500]] = True
    suggested = (labels + 1) % 10  # every row suggested another class: only the flagged may take it
    listed = write_list(tmp_path / "list", noisy, flagged, suggested, order=np.arange(len(labels))[::-1])
    cleaned = data_of(build_config(raw_config(tmp_path, {"issues": str(listed), "action": "relabel"}))).load()
    changed = np.flatnonzero(cleaned.train.labels.numpy() != labels)
    assert changed.tolist() == [3, 10, 500]
    assert (cleaned.train.labels.numpy()[changed] == suggested[changed]).all()


def test_a_list_made_on_other_labels_is_refused(tmp_path):
    other = noisy_digits(tmp_path, noise={**NOISE, "seed": 1})  # another noise seed: other wrong labels
    listed = truth_list(tmp_path, other)
    with pytest.raises(DataError, match=r"made on other labels.*labelemb label-issues") as error:
        data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()
    assert "\n" not in str(error.value)


def test_a_list_made_for_another_split_is_refused(tmp_path):
    shorter = noisy_digits(tmp_path, max_train_pairs=1000)
    listed = truth_list(tmp_path, shorter)
    with pytest.raises(DataError, match=r"lists 1000 distinct rows of 1000.*has 1197.*another split"):
        data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()


def test_a_list_made_for_another_data_set_is_refused(tmp_path):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    text = listed.read_text().replace("digits [train]", "mnist training file")
    listed.write_text(text)
    with pytest.raises(DataError, match=r"lists mnist training file, row \d+, not a training row of digits"):
        data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()
    names = noisy_digits(tmp_path).class_names
    renamed = truth_list(tmp_path, noisy, "renamed")
    renamed.write_text(renamed.read_text().replace(f",{names[3]},", ",Dress,"))
    with pytest.raises(DataError, match=r"given label 'Dress', not a class of this data.*another data set"):
        data_of(build_config(raw_config(tmp_path, {"issues": str(renamed)}))).load()


def test_the_list_is_data_nothing_it_names_is_run(tmp_path):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    marker = tmp_path / "ran"
    script = tmp_path / "evil.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    lines = listed.read_text().splitlines()
    first = lines[1].split(",")
    first[1] = str(script)
    listed.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match="not a training row"):
        data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()
    assert not marker.exists()


def test_the_json_lines_list_cleans_as_the_csv_does(tmp_path):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    by_csv = data_of(build_config(raw_config(tmp_path, {"issues": str(listed)}))).load()
    jsonl = str(listed.with_suffix(".jsonl"))
    by_jsonl = data_of(build_config(raw_config(tmp_path, {"issues": jsonl}))).load()
    assert torch.equal(by_csv.train.labels, by_jsonl.train.labels)
    assert by_csv.details["clean"]["removed"] == by_jsonl.details["clean"]["removed"]


def test_the_config_key_is_checked_and_listed(tmp_path):
    assert {"data.clean.issues", "data.clean.action"} <= set(config_keys())
    with pytest.raises(ConfigError, match=r"data\.clean\.issues.*label_issues\.csv or label_issues\.jsonl"):
        build_config(raw_config(tmp_path, {"issues": "list.txt"}))
    with pytest.raises(Exception, match="action"):
        build_config(raw_config(tmp_path, {"issues": "list.csv", "action": "delete"}))


def test_the_data_fingerprint_holds_the_list_digest(tmp_path):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    source = data_of(build_config(raw_config(tmp_path, {"issues": str(listed)})))
    first = source.fingerprint()
    assert first is not None and source.load().details["fingerprint"] == first
    assert data_of(build_config(raw_config(tmp_path))).fingerprint() is None  # digits alone has none
    listed.write_text(listed.read_text().replace("True", "False", 1))
    assert source.fingerprint() != first


def test_a_cleaned_set_with_a_digest_of_its_own_but_none_registered_reads_back(tmp_path, monkeypatch):
    # As a Hugging Face hub set: its loader records a digest of its own, but no fingerprint= is
    # registered, so the run's preflight has none to compare; the cleaned digest must agree anyway.
    from labelemb.data import registry

    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    loaders = registry.DATASETS.get

    def with_own_digest(key):
        loader = loaders(key)

        def load(request):
            dataset = loader(request)
            dataset.details = {**dataset.details, "fingerprint": "digest-of-the-hub-files"}
            return dataset

        return load

    monkeypatch.setattr(registry.DATASETS, "get", with_own_digest)
    source = data_of(build_config(raw_config(tmp_path, {"issues": str(listed)})))
    assert source.load().details["fingerprint"] == source.fingerprint()


def test_a_finished_run_is_not_read_back_for_a_changed_list(tmp_path, one_thread):
    noisy = noisy_digits(tmp_path)
    listed = truth_list(tmp_path, noisy)
    raw = raw_config(tmp_path, {"issues": str(listed)})
    summary = train(build_config(copy.deepcopy(raw)))
    assert summary["data"]["clean"]["removed"] == summary["data"]["clean"]["wrong_before"] > 0
    listed.write_text(listed.read_text().replace("True", "False", 1))
    with pytest.raises(Exception, match="data whose content differs"):
        train(build_config(copy.deepcopy(raw)))


def test_cleaning_names_the_rows_as_label_issues_does(tmp_path):
    """The list's file and row columns are what cleaning matches by: both name the rows alike (a
    split in its order, cut to max_train_pairs, and a training file that dev was carved from)."""
    digits = noisy_digits(tmp_path)
    carved = Dataset(
        "carved",
        Split(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])),
        Split(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1])),
        Split(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1])),
        ["a", "b"],
        file_rows={"dev": torch.tensor([0, 5]), "train": torch.tensor([3, 1, 4, 2])},
    )
    assert training_origins is training_places  # one naming, the list's and the matching's
    fewer = noisy_digits(tmp_path, max_train_pairs=50)
    assert [training_places(fewer).place(i) for i in range(50)] == [
        training_places(digits).place(i) for i in range(50)
    ]
    assert training_places(carved).place(0) == "carved training file, row 4"
