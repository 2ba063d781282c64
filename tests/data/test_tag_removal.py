"""Noise on tag sets (issue 101): ``noise: {kind: remove_tags, rate: r}`` removes one tag from a
share r of the training (and dev) rows, drawn from the noise's own seed, the test split untouched
and the clean tag sets kept as the truth; class-label kinds on tag sets, and tag removal on class
labels, are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelemb.data import Dataset, Split
from labelemb.data.label_noise import NoiseConfig, NoiseError, NoisyTags, add_label_noise
from labelemb.data.label_noise.tags import draw_removed
from labelemb.data.registry import DataRequest

TAGS = ["a", "b", "c", "d", "e"]


def tag_sets(count: int, seed: int) -> torch.Tensor:
    """``count`` random tag sets over :data:`TAGS`, a fifth of them empty."""
    rng = np.random.default_rng(seed)
    tags = rng.random((count, len(TAGS))) < 0.4
    tags[rng.random(count) < 0.2] = False
    return torch.from_numpy(tags)


def tagged_dataset(count: int = 4000, dev: int = 1000, test: int = 300) -> Dataset:
    images = torch.rand(count + dev + test, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    tags = tag_sets(count + dev + test, 1)
    cut = (slice(0, count), slice(count, count + dev), slice(count + dev, None))
    return Dataset("tagged", *(Split(images[part], tags[part]) for part in cut), list(TAGS))


def test_a_share_of_the_rows_lose_exactly_one_of_their_tags_and_nothing_else_changes():
    dataset = tagged_dataset()
    clean = {name: getattr(dataset, name).labels.clone() for name in ("train", "dev", "test")}
    noisy = add_label_noise(dataset, NoiseConfig(kind="remove_tags", rate=0.1, seed=3), DataRequest())
    assert torch.equal(dataset.train.labels, clean["train"])  # the caller's data set stays clean
    assert torch.equal(noisy.test.labels, clean["test"])
    for split in ("train", "dev"):
        given, truth = getattr(noisy, split).labels, clean[split]
        assert not (given & ~truth).any()  # nothing added
        lost = (truth & ~given).sum(dim=1)
        assert set(lost.tolist()) <= {0, 1}
        carrying = truth.any(dim=1)
        share = float(lost[carrying].float().mean())
        sigma = (0.1 * 0.9 / int(carrying.sum())) ** 0.5
        assert abs(share - 0.1) < 4 * sigma
        assert torch.equal(noisy.noise.clean[split], truth)
    assert isinstance(noisy.noise, NoisyTags)
    changed = (noisy.train.labels != clean["train"]).any(dim=1)
    assert noisy.noise.rate("train", noisy.train.labels) == pytest.approx(100 * float(changed.float().mean()))
    record = noisy.details["noise"]
    assert record["kind"] == "remove_tags" and record["seed"] == 3
    assert record["removed_tags"]["train"] == int((clean["train"] & ~noisy.train.labels).sum())
    carried = clean["train"].numpy()
    missing = (carried & ~noisy.train.labels.numpy()).sum(axis=0) / carried.sum(axis=0)
    assert np.allclose(noisy.noise.realised[:, 0], missing) and not noisy.noise.realised[:, 1].any()
    kept = noisy.noise.tensors(noisy)
    assert torch.equal(kept["train_clean"].bool(), clean["train"])
    assert torch.equal(kept["train_noisy"].bool(), noisy.train.labels)


def test_the_removed_tag_is_drawn_uniformly_among_a_rows_tags():
    clean = np.zeros((30000, 3), dtype=bool)
    clean[:, :] = True
    noisy = draw_removed(clean, 0.5, np.random.default_rng(0))
    lost = (clean & ~noisy).sum(axis=0)
    assert lost.sum() == pytest.approx(15000, abs=4 * 87)
    assert np.all(np.abs(lost / lost.sum() - 1 / 3) < 0.015)


def test_the_same_seed_draws_the_same_removals_another_seed_others_and_dev_clean_keeps_dev():
    def noisy(**settings):
        return add_label_noise(
            tagged_dataset(), NoiseConfig(kind="remove_tags", rate=0.2, **settings), DataRequest()
        )

    first, again, other = noisy(seed=1), noisy(seed=1), noisy(seed=2)
    assert torch.equal(first.train.labels, again.train.labels)
    assert not torch.equal(first.train.labels, other.train.labels)
    kept_dev = noisy(seed=1, dev="clean")
    assert torch.equal(kept_dev.dev.labels, tagged_dataset().dev.labels) and "dev" not in kept_dev.noise.clean
    assert torch.equal(kept_dev.train.labels, first.train.labels)


def test_the_same_rows_lose_the_same_tags_whatever_part_of_train_is_kept():
    whole = add_label_noise(tagged_dataset(), NoiseConfig(kind="remove_tags", rate=0.3), DataRequest())
    cut = tagged_dataset()
    cut.file_rows = {"train": torch.arange(1000), "dev": torch.arange(4000, 5000)}
    cut.training_file_size = 5000
    cut.train = cut.train.first(1000)
    part = add_label_noise(cut, NoiseConfig(kind="remove_tags", rate=0.3), DataRequest())
    assert torch.equal(part.train.labels, whole.train.labels[:1000])
    assert torch.equal(part.dev.labels, whole.dev.labels)


@pytest.mark.parametrize(
    ("tagged", "kind", "message"),
    [
        (
            True,
            "symmetric",
            "noise kind symmetric flips each example's one class label; data set tagged gives",
        ),
        (False, "remove_tags", "noise kind remove_tags removes tags from tag sets; data set tiny gives each"),
    ],
)
def test_a_kind_that_does_not_fit_the_labels_is_refused_in_one_line(tagged, kind, message):
    if tagged:
        dataset = tagged_dataset(40, 10, 10)
    else:
        labels = torch.arange(60) % 3
        images = torch.rand(60, 1, 2, 2)
        dataset = Dataset(
            "tiny", Split(images[:40], labels[:40]), None, Split(images[40:], labels[40:]), ["x", "y", "z"]
        )
    with pytest.raises(NoiseError, match="^" + message) as raised:
        add_label_noise(dataset, NoiseConfig(kind=kind, rate=0.2), DataRequest())
    assert "\n" not in str(raised.value)
    assert ("use kind remove_tags" in str(raised.value)) == tagged
