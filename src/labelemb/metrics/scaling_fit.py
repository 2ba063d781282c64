"""How the scaling maps of :mod:`labelemb.metrics.recalibration` are fit: the mean NLL of
softmax(theta_k . U_ik) over dev rows plus :func:`affine_penalty`, a convex problem (a multinomial
logistic regression of m classes, f parameters a class), minimised by Newton's method from the
identity map in float64. How each Newton step is solved depends on the size:

- **dense** (at most :data:`DENSE_LIMIT` parameters: vector scaling, Dirichlet calibration of a
  few classes): the Hessian built in closed form and solved directly, O(N (m f)^2) a step;
- **conjugate gradients** (more: Dirichlet calibration of tens of classes, where building the
  Hessian of (m (m + 1))^2 entries took two minutes a fit on 53 classes): scipy's preconditioned
  CG on Hessian-vector products, each two passes over the rows, O(N m f); the Hessian is never
  formed.

The preconditioner of the CG step is each class's own block of the Hessian (its rows weighted by
p_ik (1 - p_ik)) plus one correction for the directions that move every class's parameters alike:
those leave softmax unchanged, so only the small penalty curves them, and a block preconditioner
alone would take them for steep. Both ways stop where the gradient is below 1e-11 or rounding
leaves no descent, and reach the same minimum (tested against each other and against scipy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy
import torch
from scipy.sparse.linalg import LinearOperator, cg
from torch import Tensor

#: ODIR's weights (Kull et al. 2019, Eq. 7): off-diagonal entries of W and the intercepts. Fixed
#: here (the paper picks them by cross-validation on a grid: left to the caller, ``odir=``).
ODIR = (1e-2, 1e-2)
#: The pull of every other parameter towards the identity map: small, so the fit is Guo et al.'s
#: plain NLL where that has a minimum, and finite where it has none.
IDENTITY_PULL = 1e-4
#: The most parameters (m f) fit with the Hessian built, the way every scaling map was fit before
#: conjugate gradients: vector scaling of up to 128 classes and Dirichlet calibration of up to 15
#: keep their recorded figures to the bit. Not for speed: CG is faster from 10 classes on.
DENSE_LIMIT = 256
#: Rows whose p_ik (1 - p_ik) is below this are left out of class k's preconditioner block of
#: Dirichlet calibration: on 53 classes they held a thousandth of the weight and five rows of six
#: (a preconditioner needs to be close, not exact: the step solved is the exact Hessian's).
BLOCK_WEIGHT_FLOOR = 1e-4
#: A Newton step's end: the largest gradient entry below this is the minimum.
GRADIENT_TOLERANCE = 1e-11


def affine_penalty(weights: Tensor, bias: Tensor, odir: tuple[float, float] = ODIR) -> Tensor:
    """The penalty added to a scaling map's mean NLL: for a matrix W (m x m), ODIR's
    lambda / (m (m - 1)) sum_(i != j) W_ij^2 + mu / m sum_j b_j^2 (Kull et al. 2019, Eq. 7) and
    :data:`IDENTITY_PULL` / m sum_i (W_ii - 1)^2; for a vector w (vector scaling)
    :data:`IDENTITY_PULL` / m (sum_i (w_i - 1)^2 + sum_j b_j^2)."""
    classes = bias.numel()
    if weights.ndim == 1:
        return IDENTITY_PULL / classes * ((weights - 1).square().sum() + bias.square().sum())
    off_diagonal, intercept = odir
    diagonal = weights.diagonal()
    off = weights.square().sum() - diagonal.square().sum()
    penalty = off_diagonal * off / max(classes * (classes - 1), 1) + intercept * bias.square().sum() / classes
    return penalty + IDENTITY_PULL / classes * (diagonal - 1).square().sum()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for a while: the fit's products are of m columns, and threads that wait
    on each other at every small step cost it several times over on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _penalty_of(theta: Tensor, matrix: bool, odir: tuple[float, float]) -> Tensor:
    """:func:`affine_penalty` of theta (m, f): the weights its first columns, the bias its last."""
    weights = theta[:, :-1] if matrix else theta[:, 0]
    return affine_penalty(weights, theta[:, -1], odir)


def _penalty_terms(theta: Tensor, matrix: bool, odir: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """The penalty's gradient and Hessian diagonal at ``theta``, both (m, f): its Hessian is
    diagonal, the penalty being a sum of squares of single entries."""
    with torch.enable_grad():
        leaf = theta.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(_penalty_of(leaf, matrix, odir), leaf, create_graph=True)
        (curvature,) = torch.autograd.grad(gradient.sum(), leaf)
    return gradient.detach(), curvature


def _class_features(inputs: Tensor, matrix: bool) -> Tensor:
    """U (N, m, f) with z_ik = sum_a theta_ka U_ika: for a matrix every class reads [x_i, 1]
    (theta_k = [W_k, b_k]); for a vector class k reads [x_ik, 1] (theta_k = [w_k, b_k])."""
    count, classes = inputs.shape
    ones = torch.ones(count, classes, 1, dtype=inputs.dtype)
    if matrix:
        return torch.cat([inputs[:, None, :].expand(count, classes, classes), ones], dim=-1)
    return torch.cat([inputs[:, :, None], ones], dim=-1)


class _Dense:
    """Newton steps with the Hessian built: where p_i is the softmax of row i and U_ik its class-k
    features (:func:`_class_features`),

        g = (1 / N) sum_i sum_k (p_ik - [y_i = k]) U_ik
        H = (1 / N) sum_i [blockdiag_k(p_ik U_ik U_ik^T) - q_i q_i^T],   q_i = (p_ik U_ik)_k

    plus the penalty's gradient and (diagonal) Hessian."""

    def __init__(self, inputs: Tensor, onehot: Tensor, matrix: bool, odir: tuple[float, float]) -> None:
        self.features = _class_features(inputs, matrix)
        self.onehot, self.matrix, self.odir = onehot, matrix, odir
        self.hessian = torch.empty(0)

    def value(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """The objective at ``theta`` and the log-probabilities (N, m) it gives."""
        logq = torch.einsum("ika,ka->ik", self.features, theta).log_softmax(-1)
        return -(logq * self.onehot).sum() / len(logq) + _penalty_of(theta, self.matrix, self.odir), logq

    def gradient(self, theta: Tensor, logq: Tensor) -> Tensor:
        """The gradient (m, f) at ``theta``; the Hessian kept for :meth:`step`."""
        probabilities, features = logq.exp(), self.features
        count, classes, width = features.shape
        gradient = torch.einsum("ik,ika->ka", probabilities - self.onehot, features) / count
        weighted = probabilities[:, :, None] * features  # q_i
        blocks = torch.einsum("ika,ikc->kac", weighted, features) / count
        flat = weighted.reshape(count, classes * width)
        penalty_gradient, curvature = _penalty_terms(theta, self.matrix, self.odir)
        self.hessian = torch.block_diag(*blocks) - flat.T @ flat / count + torch.diag(curvature.reshape(-1))
        return gradient + penalty_gradient

    def step(self, gradient: Tensor) -> Tensor:
        """The Newton step: H^-1 (-g)."""
        return torch.linalg.solve(self.hessian, -gradient.reshape(-1)).reshape(gradient.shape)


class _Krylov:
    """Newton steps by scipy's conjugate gradients on Hessian-vector products
    H v = (1 / N) sum_i U_i^T s_i + c v, s_ik = p_ik (d_ik - sum_l p_il d_il), d_i = U_i v
    (c the penalty's Hessian diagonal), preconditioned as the module says."""

    def __init__(self, inputs: Tensor, onehot: Tensor, matrix: bool, odir: tuple[float, float]) -> None:
        self.inputs, self.onehot, self.matrix, self.odir = inputs, onehot, matrix, odir
        classes = inputs.shape[1]
        width = classes + 1 if matrix else 2
        self.curvature = _penalty_terms(torch.zeros(classes, width, dtype=torch.float64), matrix, odir)[1]
        # the columns every class reads alike: moving them together leaves softmax unchanged
        self.shared = slice(0, width) if matrix else slice(width - 1, width)
        self.probabilities = torch.empty(0)

    def scores(self, theta: Tensor) -> Tensor:
        """z (N, m) = U theta: linear in theta, so also the change d = U v a direction v makes."""
        weights, bias = theta[:, :-1], theta[:, -1]
        return (self.inputs @ weights.T if self.matrix else self.inputs * weights[:, 0]) + bias

    def pull_back(self, residual: Tensor) -> Tensor:
        """sum_i U_i^T r_i (m, f) for r (N, m): the gradient of sum_ik r_ik z_ik in theta."""
        weights = residual.T @ self.inputs if self.matrix else (residual * self.inputs).sum(0)[:, None]
        return torch.cat([weights, residual.sum(0)[:, None]], dim=1)

    def value(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """The objective at ``theta`` and the log-probabilities (N, m) it gives."""
        logq = self.scores(theta).log_softmax(-1)
        return -(logq * self.onehot).sum() / len(logq) + _penalty_of(theta, self.matrix, self.odir), logq

    def gradient(self, theta: Tensor, logq: Tensor) -> Tensor:
        """The gradient (m, f) at ``theta``; the probabilities kept for :meth:`step`."""
        self.probabilities = logq.exp()
        residual = (self.probabilities - self.onehot) / len(logq)
        return self.pull_back(residual) + _penalty_terms(theta, self.matrix, self.odir)[0]

    def blocks(self) -> Tensor:
        """Each class's (f, f) block of the Hessian (of its heavy rows), plus the penalty's."""
        probabilities, inputs = self.probabilities, self.inputs
        weight = probabilities * (1 - probabilities) / len(probabilities)
        if not self.matrix:
            moments = [(weight * inputs * inputs).sum(0), (weight * inputs).sum(0), weight.sum(0)]
            blocks = torch.stack(moments[:2] + moments[1:], -1).reshape(-1, 2, 2)
        else:
            rows = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], dim=1)
            heavy = probabilities * (1 - probabilities) > BLOCK_WEIGHT_FLOOR
            parts = []
            for k in range(len(heavy.T)):
                # class k's block is R^T R, R its heavy rows [x_i, 1] each times sqrt(weight_ik)
                kept = heavy[:, k].nonzero()[:, 0]
                part = rows.index_select(0, kept) * weight[:, k].index_select(0, kept).sqrt()[:, None]
                parts.append(part.T @ part)
            blocks = torch.stack(parts)
        # a class absent from dev with odir=(0, 0) has no curvature at all: keep the block invertible
        ridge = 1e-12 * torch.eye(blocks.shape[-1], dtype=blocks.dtype)
        return blocks + torch.diag_embed(self.curvature) + ridge

    def step(self, gradient: Tensor) -> Tensor:
        """The Newton step H^-1 (-g), solved to a relative residual of min(0.1, |g|)."""
        shape, probabilities = gradient.shape, self.probabilities
        factors = torch.linalg.cholesky(self.blocks())
        together = self.curvature[:, self.shared].sum(0)  # the curvature of a move of every class alike
        together = torch.where(together > 0, 1 / together.clamp(min=1e-300), 0.0)

        def hessian_times(vector: numpy.ndarray) -> numpy.ndarray:
            direction = torch.from_numpy(vector).view(shape)
            change = self.scores(direction)
            spread = probabilities * (change - (probabilities * change).sum(-1, keepdim=True))
            return (self.pull_back(spread / len(spread)) + self.curvature * direction).reshape(-1).numpy()

        def preconditioned(vector: numpy.ndarray) -> numpy.ndarray:
            residual = torch.from_numpy(vector).view(shape)
            out = torch.cholesky_solve(residual[:, :, None], factors)[:, :, 0]
            out[:, self.shared] += residual[:, self.shared].sum(0) * together
            return out.reshape(-1).numpy()

        size = gradient.numel()
        hessian = LinearOperator((size, size), matvec=hessian_times, dtype=numpy.float64)
        inverse = LinearOperator((size, size), matvec=preconditioned, dtype=numpy.float64)
        rtol = min(0.1, float(gradient.norm()))
        solved, _ = cg(hessian, -gradient.reshape(-1).numpy(), rtol=rtol, atol=0.0, maxiter=size, M=inverse)
        return torch.from_numpy(solved).reshape(shape)


def fit_scaling(
    inputs: Tensor, labels: Tensor, matrix: bool, odir: tuple[float, float] = ODIR, dense: bool | None = None
) -> tuple[Tensor, Tensor]:
    """The weights (a vector, or with ``matrix`` a matrix) and intercepts minimising
    mean NLL(softmax(W x + b), y) + :func:`affine_penalty` over the rows x of ``inputs``: a convex
    problem, solved from the identity map by Newton's method with a backtracking line search, in
    float64; each step solved with the Hessian built (``dense``) or by conjugate gradients, by
    default dense where there are at most :data:`DENSE_LIMIT` parameters (see the module)."""
    classes = inputs.shape[1]
    width = classes + 1 if matrix else 2
    dense = classes * width <= DENSE_LIMIT if dense is None else dense
    onehot = torch.nn.functional.one_hot(labels, classes).double()
    path = (_Dense if dense else _Krylov)(inputs, onehot, matrix, odir)
    theta = torch.zeros(classes, width, dtype=torch.float64)
    theta[:, :-1] = torch.eye(classes, dtype=torch.float64) if matrix else 1.0
    with one_thread():
        value, logq = path.value(theta)
        for _ in range(100):
            gradient = path.gradient(theta, logq)
            if float(gradient.abs().max()) < GRADIENT_TOLERANCE:
                break
            step = path.step(gradient)
            rate, slope = 1.0, float((gradient * step).sum())
            while rate > 1e-10:
                candidate = theta + rate * step
                new_value, new_logq = path.value(candidate)
                if float(new_value) <= float(value) + 1e-4 * rate * slope:
                    break
                rate /= 2.0
            else:
                break  # no descent left in rounding: at the minimum
            theta, value, logq = candidate, new_value, new_logq
    weights = theta[:, :-1] if matrix else theta[:, 0]
    return weights.contiguous(), theta[:, -1].contiguous()
