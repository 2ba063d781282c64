"""Post-hoc recalibration maps (labelemb.metrics.recalibration, labelemb.metrics.scaling_fit)
against independent implementations: the scaling maps' objective minimised by scipy's L-BFGS-B on
numpy with the gradient written out, histogram binning and isotonic regression
(pool-adjacent-violators) as plain loops; with ties and the degenerate dev splits (one class absent,
all right, constant logits); and the two ways of solving a scaling fit's Newton steps (the Hessian
built, conjugate gradients) against each other on many classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from labelemb.metrics import measure_calibration
from labelemb.metrics.recalibration import (
    MAPS,
    PROBABILITY_FLOOR,
    cross_fitted_ece,
    fit_map,
    map_figures,
    recalibration_figures,
)
from labelemb.metrics.scaling_fit import DENSE_LIMIT, IDENTITY_PULL, ODIR, fit_scaling

CLASSES = 4


def split(
    seed: int, n: int = 120, scale: float = 3.0, classes: int = CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Overconfident logits: the gold class ahead, everything multiplied by ``scale``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    logits = torch.randn(n, classes, generator=generator, dtype=torch.float64)
    return scale * (logits + 1.5 * torch.nn.functional.one_hot(labels, classes)), labels


def degenerate(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits, labels = split(1)
    if kind == "class absent":
        keep = labels != 2
        return logits[keep], labels[keep]
    if kind == "all right":
        return logits, logits.argmax(-1)
    if kind == "constant logits":
        return torch.zeros_like(logits), labels
    # ties: logits on a coarse grid, many rows equal
    return torch.round(logits / 4), labels


DEV_SPLITS = ["ordinary", "class absent", "all right", "constant logits", "ties"]


def dev_split(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    return split(0) if kind == "ordinary" else degenerate(kind)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def scaling_objective(inputs: np.ndarray, labels: np.ndarray, matrix: bool):
    """The scaling objective (mean NLL + penalty) and its gradient by hand, of theta = the weights
    (flat) then the bias; and the identity map's theta."""
    n, m = inputs.shape
    onehot = np.eye(m)[labels]
    off = ~np.eye(m, dtype=bool)
    lam, mu = ODIR

    def unpack(theta):
        weights = theta[: m * m].reshape(m, m) if matrix else theta[:m]
        return weights, theta[-m:]

    def objective(theta):
        weights, bias = unpack(theta)
        z = (inputs @ weights.T if matrix else inputs * weights) + bias
        logq = log_softmax(z)
        residual = (np.exp(logq) - onehot) / n  # d mean NLL / d z
        value = -(logq * onehot).sum() / n
        if matrix:
            value += lam * (weights[off] ** 2).sum() / (m * (m - 1)) + mu * (bias**2).sum() / m
            value += IDENTITY_PULL * ((np.diag(weights) - 1) ** 2).sum() / m
            grad_w = residual.T @ inputs + 2 * lam * weights * off / (m * (m - 1))
            grad_w += np.diag(2 * IDENTITY_PULL * (np.diag(weights) - 1) / m)
            grad_b = residual.sum(0) + 2 * mu * bias / m
        else:
            value += IDENTITY_PULL * (((weights - 1) ** 2).sum() + (bias**2).sum()) / m
            grad_w = (residual * inputs).sum(0) + 2 * IDENTITY_PULL * (weights - 1) / m
            grad_b = residual.sum(0) + 2 * IDENTITY_PULL * bias / m
        return value, np.concatenate([grad_w.ravel(), grad_b])

    return objective, np.concatenate([np.eye(m).ravel() if matrix else np.ones(m), np.zeros(m)])


def scipy_scaling(inputs: np.ndarray, labels: np.ndarray, matrix: bool):
    """The scaling objective minimised by scipy's L-BFGS-B from the identity map."""
    m = inputs.shape[1]
    objective, start = scaling_objective(inputs, labels, matrix)
    found = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 20000, "gtol": 1e-12})
    weights = found.x[: m * m].reshape(m, m) if matrix else found.x[:m]
    bias = found.x[-m:]

    def apply(z: np.ndarray) -> np.ndarray:
        x = log_softmax(z) if matrix else z
        return np.exp(log_softmax((x @ weights.T if matrix else x * weights) + bias))

    return apply, lambda theta: objective(theta)[0], found.x


def renormalised(rows: np.ndarray) -> np.ndarray:
    """One-vs-rest rows to probabilities: a zero row uniform, then floored and renormalised."""
    out = []
    for row in rows:
        total = sum(row)
        row = [v / total for v in row] if total > 0 else [1 / len(row)] * len(row)
        row = [max(v, PROBABILITY_FLOOR) for v in row]
        out.append([v / sum(row) for v in row])
    return np.array(out)


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(z))


def loop_binning(dev_z, dev_y, test_z, bins: int = 15):
    dev_p, test_p = softmax(dev_z), softmax(test_z)

    def bin_of(p):  # (b / B, (b + 1) / B], 0 in the first
        return min(max(math.ceil(p * bins), 1), bins) - 1

    rows = []
    for row in test_p:
        mapped = []
        for k, p in enumerate(row):
            inside = [i for i in range(len(dev_y)) if bin_of(dev_p[i, k]) == bin_of(p)]
            mapped.append(sum(dev_y[i] == k for i in inside) / len(inside) if inside else p)
        rows.append(mapped)
    return renormalised(np.array(rows))


def pava(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic least squares: equal x pooled first (mean y, weight their count), then adjacent
    violators merged; the fitted value at each distinct x."""
    xs = sorted(set(x.tolist()))
    blocks = [[float(np.mean(y[x == v])), float(np.sum(x == v)), 1] for v in xs]  # value, weight, xs held
    merged: list[list[float]] = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][0] > merged[-1][0]:
            b2, b1 = merged.pop(), merged.pop()
            weight = b1[1] + b2[1]
            merged.append([(b1[0] * b1[1] + b2[0] * b2[1]) / weight, weight, b1[2] + b2[2]])
    fitted = [value for value, _, count in merged for _ in range(int(count))]
    return np.array(xs), np.clip(np.array(fitted), 0.0, 1.0)


def loop_isotonic(dev_z, dev_y, test_z):
    dev_p, test_p = softmax(dev_z), softmax(test_z)
    columns = []
    for k in range(dev_p.shape[1]):
        xs, fitted = pava(dev_p[:, k], (dev_y == k).astype(float))
        # linear between fitted points, the end values outside them
        columns.append(np.interp(test_p[:, k], xs, fitted))
    return renormalised(np.stack(columns, axis=-1))


def ours(name: str, dev: tuple[torch.Tensor, torch.Tensor], test_logits: torch.Tensor) -> np.ndarray:
    return fit_map(name, *dev)(test_logits).exp().numpy()


@pytest.mark.parametrize("dense", [True, False], ids=["hessian built", "conjugate gradients"])
@pytest.mark.parametrize("kind", DEV_SPLITS)
@pytest.mark.parametrize("name", ["vector", "dirichlet"])
def test_scaling_maps_reach_the_minimum_scipy_finds(name, kind, dense):
    dev_logits, dev_labels = dev_split(kind)
    test_logits, _ = split(7, n=50)
    matrix = name == "dirichlet"
    inputs = log_softmax(dev_logits.numpy()) if matrix else dev_logits.numpy()
    apply, objective, theirs = scipy_scaling(inputs, dev_labels.numpy(), matrix)
    weights, bias = fit_scaling(torch.from_numpy(inputs), dev_labels, matrix, dense=dense)
    # at least as low a minimum as scipy's, and the same map (where the objective is nearly flat,
    # a dev split predicted all right, the two stop at slightly different points of the valley)
    assert objective(np.concatenate([weights.numpy().ravel(), bias.numpy()])) <= objective(theirs) + 1e-9
    close = 3e-3 if kind == "all right" else 3e-4
    want = apply(test_logits.numpy())
    x = log_softmax(test_logits.numpy()) if matrix else test_logits.numpy()
    got = np.exp(log_softmax((x @ weights.numpy().T if matrix else x * weights.numpy()) + bias.numpy()))
    assert np.allclose(got, want, atol=close)
    assert np.allclose(ours(name, (dev_logits, dev_labels), test_logits), want, atol=close)  # fit_map's way


@pytest.mark.parametrize(("name", "classes"), [("dirichlet", 20), ("vector", 150)])
def test_on_many_classes_conjugate_gradients_reach_the_minimum_the_built_hessian_does(name, classes):
    """Past DENSE_LIMIT parameters (Dirichlet calibration of 20 classes has 420, vector scaling of
    150 classes 300) each Newton step is solved by conjugate gradients, not with the Hessian built:
    the same minimum to 1e-9, where the gradient (written out independently) is nil, and the same
    test figures to 1e-6."""
    matrix = name == "dirichlet"
    (dev_logits, dev_labels), (test_logits, test_labels) = (split(s, 1500, classes=classes) for s in (2, 3))
    inputs = dev_logits.log_softmax(-1) if matrix else dev_logits
    objective, _ = scaling_objective(inputs.numpy(), dev_labels.numpy(), matrix)
    assert classes * (classes + 1 if matrix else 2) > DENSE_LIMIT  # the fit's default is CG here
    figures, values = [], []
    for dense in (True, False):
        weights, bias = fit_scaling(inputs, dev_labels, matrix, dense=dense)
        value, gradient = objective(np.concatenate([weights.numpy().ravel(), bias.numpy()]))
        assert np.abs(gradient).max() < 1e-9, dense
        values.append(value)
        x = test_logits.log_softmax(-1) if matrix else test_logits
        mapped = ((x @ weights.T if matrix else x * weights) + bias).log_softmax(-1)
        figures.append(map_figures(mapped, test_labels, f"recal_{name}"))
    assert values[1] == pytest.approx(values[0], abs=1e-9)
    assert figures[1] == pytest.approx(figures[0], abs=1e-6)
    # and fit_map takes the CG way: the same figures
    got = map_figures(fit_map(name, dev_logits, dev_labels)(test_logits), test_labels, f"recal_{name}")
    assert got == pytest.approx(figures[1], abs=1e-12)


def test_dirichlet_calibration_of_many_classes_never_solves_a_dense_hessian(monkeypatch):
    """A dense Newton step of Dirichlet calibration on m classes solves a Hessian of (m (m + 1))^2
    entries, built over every row: O(N m^4), minutes for 53 classes. Past DENSE_LIMIT parameters
    no such system is solved, and the map still mends overconfident logits."""

    def dense_solve(*args, **kwargs):
        raise AssertionError("a dense Newton system was solved")

    dev, test = split(4, n=3000, classes=30), split(5, n=3000, classes=30)
    raw = measure_calibration(*test).ece
    monkeypatch.setattr(torch.linalg, "solve", dense_solve)
    figures = recalibration_figures(*dev, *test, maps=["dirichlet"])
    assert figures["recal_dirichlet_ece"] < raw / 2


@pytest.mark.parametrize("kind", DEV_SPLITS)
def test_histogram_binning_equals_the_loop(kind):
    dev_logits, dev_labels = dev_split(kind)
    test_logits, _ = split(8, n=40)
    want = loop_binning(dev_logits.numpy(), dev_labels.numpy(), test_logits.numpy())
    assert np.allclose(ours("binning", (dev_logits, dev_labels), test_logits), want, atol=1e-12)


@pytest.mark.parametrize("kind", DEV_SPLITS)
def test_isotonic_regression_equals_pool_adjacent_violators(kind):
    dev_logits, dev_labels = dev_split(kind)
    test_logits, _ = split(9, n=40)
    want = loop_isotonic(dev_logits.numpy(), dev_labels.numpy(), test_logits.numpy())
    assert np.allclose(ours("isotonic", (dev_logits, dev_labels), test_logits), want, atol=1e-12)


def test_a_class_absent_from_dev_gets_little_probability_where_dev_saw_it_and_every_map_stays_finite():
    dev = degenerate("class absent")
    test_logits, _ = split(3, n=60)
    for name in MAPS:
        probabilities = ours(name, dev, test_logits)
        assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(-1), 1.0), name
        # binning keeps p_2 in the bins no dev example reached (the high ones): not held down there
        assert probabilities[:, 2].mean() < (0.2 if name == "binning" else 0.05), name


def test_constant_logits_map_to_the_dev_class_frequencies():
    dev_logits, dev_labels = degenerate("constant logits")
    frequency = np.bincount(dev_labels.numpy(), minlength=CLASSES) / len(dev_labels)
    for name in ("binning", "isotonic"):
        mapped = ours(name, (dev_logits, dev_labels), torch.zeros(3, CLASSES, dtype=torch.float64))
        assert np.allclose(mapped, frequency, atol=1e-5), name


def test_the_maps_mend_overconfident_logits_on_test():
    dev, test = split(0, n=2000), split(1, n=2000)
    raw = measure_calibration(*test).ece
    figures = recalibration_figures(*dev, *test)
    assert set(figures) == {
        f"recal_{name}_{figure}"
        for name in MAPS
        for figure in ("ece", "adaece", "classwise_ece", "nll", "brier", "error")
    }
    for name in MAPS:
        assert figures[f"recal_{name}_ece"] < raw / 2, name
    # the scaling maps keep the argmax where w > 0 on every class: the error is the raw one
    raw_error = 100.0 * float((test[0].argmax(-1) != test[1]).double().mean())
    assert figures["recal_vector_error"] == pytest.approx(raw_error, abs=0.5)


def test_figures_are_those_of_the_mapped_probabilities():
    dev, test = split(4, n=300), split(5, n=200)
    probabilities = torch.from_numpy(ours("isotonic", dev, test[0]))
    figures = recalibration_figures(*dev, *test, maps=["isotonic"])
    want = measure_calibration(probabilities.log(), test[1])
    assert figures["recal_isotonic_ece"] == pytest.approx(want.ece, rel=1e-9)
    assert figures["recal_isotonic_nll"] == pytest.approx(want.nll, rel=1e-9)
    error = 100.0 * float((probabilities.argmax(-1) != test[1]).double().mean())
    assert figures["recal_isotonic_error"] == pytest.approx(error)
    logits = test[0].clone()
    logits[0, 0] = math.inf
    assert recalibration_figures(*dev, logits, test[1]) == {}


def test_cross_fitted_ece_fits_each_half_and_judges_the_other():
    logits, labels = split(6, n=200)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    first, second = order[:100], order[100:]
    mapped = torch.empty(200, CLASSES, dtype=torch.float64)
    mapped[second] = fit_map("binning", logits[first], labels[first])(logits[second])
    mapped[first] = fit_map("binning", logits[second], labels[second])(logits[first])
    assert cross_fitted_ece(logits, labels, "binning") == measure_calibration(mapped, labels).ece


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: fit_map("vector", torch.zeros(5, 3), torch.full((5,), 2)),
            "dev split of only class 2: it needs",
        ),
        (
            lambda: fit_map("binning", torch.zeros(7, 3), torch.tensor([0, 1] * 3 + [2])),
            "7 dev examples: it needs",
        ),
        (lambda: fit_map("platt", torch.zeros(5, 3), torch.arange(5) % 3), "'platt' is no recalibration map"),
        (lambda: fit_map("isotonic", torch.full((4, 3), math.nan), torch.arange(4) % 3), "non-finite logits"),
    ],
)
def test_a_map_that_cannot_be_fit_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
