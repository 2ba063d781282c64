"""labelemb analyze: representations of every method, pictures, nearest labels, MDS, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labelemb.analysis.analyze import analyze
from labelemb.analysis.representation import run_representation
from labelemb.analysis.structure import label_distances, mds_coordinates
from labelemb.cli import main
from labelemb.training import build_config, train

SMALL = {
    "experiment": "an",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2, "progress": False},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    for method in ("onehot", "label_embedding"):
        config = build_config(SMALL, [f"output_dir={root}", f"method.name={method}"])
        train(config)
        dirs[method] = config.run_dir()
    return dirs


def test_methods_without_a_representation_get_the_mean_softmax_on_dev(runs, digits):
    rep = run_representation(runs["onehot"])
    assert rep.source == "mean softmax on dev"
    assert rep.matrix.shape == (10, 10)
    torch.testing.assert_close(rep.matrix.sum(1), torch.ones(10))
    # By hand: rebuild the network, average the softmax of each dev class.
    from labelemb.training import build_network

    config = build_config(SMALL, ["method.name=onehot"])
    model, method = build_network(config, digits)
    network = torch.nn.ModuleDict({"model": model, "method": method})
    network.load_state_dict(torch.load(runs["onehot"] / "model.pt", weights_only=True))
    network.eval()
    with torch.no_grad():
        probs = torch.softmax(method.logits(model(digits.dev.images)), 1)
    for c in range(10):
        torch.testing.assert_close(rep.matrix[c], probs[digits.dev.labels == c].mean(0))


def test_learned_representation_is_the_saved_softmax_of_e(runs):
    rep = run_representation(runs["label_embedding"])
    assert rep.source == "learned"
    torch.testing.assert_close(rep.matrix.sum(1), torch.ones(10))


def test_classical_mds_preserves_euclidean_distances_of_planar_points():
    points = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0], [1.0, 2.0]])
    coords = mds_coordinates(points)
    recovered = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(recovered, label_distances(points), atol=1e-9)
    np.testing.assert_allclose(mds_coordinates(points), coords)  # deterministic


def test_analyze_writes_pictures_tables_and_json(runs, tmp_path):
    summary = analyze(list(runs.values()), tmp_path, top=2, fmt="svg")
    for method in runs:
        folder = tmp_path / f"{method}-seed0"
        for name in ("heatmap.svg", "dendrogram.svg", "mds.svg"):
            assert (folder / name).read_text().lstrip().startswith("<?xml")
        table = (folder / "similar.md").read_text()
        assert table.count("\n") == 12 and "| nine |" in table
        numbers = json.loads((folder / "analysis.json").read_text())
        assert len(numbers["similarity"]) == 10 and len(numbers["mds"]) == 10
        assert "skipped" in numbers["wordnet"]  # digits have no WordNet mapping
    assert {r["method"] for r in summary["runs"]} == set(runs)
    assert (tmp_path / "analysis.md").read_text().startswith("## ")


def test_analyze_a_subset_of_classes_and_bad_input(runs, tmp_path, capsys):
    out = tmp_path / "subset"
    assert (
        main(
            [
                "analyze",
                str(runs["label_embedding"]),
                "--classes",
                "one,seven,nine",
                "--top",
                "1",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    numbers = json.loads((out / "label_embedding-seed0" / "analysis.json").read_text())
    assert numbers["classes"] == ["one", "seven", "nine"]
    assert np.array(numbers["similarity"]).shape == (3, 3)
    assert main(["analyze", str(runs["label_embedding"]), "--classes", "cat", "--output-dir", str(out)]) == 2
    assert "cat" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path), "--output-dir", str(out)]) == 2
    assert "not a finished run" in capsys.readouterr().err
