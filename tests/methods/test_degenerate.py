"""Degenerate batches, for every method: non-finite rows, empty batches, one model and stacked seeds.

The rule (``labelemb.methods.Method``): a row whose features or logits are not all finite is left
out of every state update and of every gradient that reaches the method's parameters, exactly as
an ignored row is, while the loss turns NaN and the row's features get a NaN gradient, so that the
loop sees the bad step. A batch with no rows gives a zero loss and zero gradients and changes nothing.
"""

from __future__ import annotations

import pytest
import torch

from labelemb import methods
from labelemb.stacking import stack_modules

pytestmark = pytest.mark.usefixtures("one_thread")

N, D, M, NUM_EXAMPLES = 12, 6, 5, 40
BAD_ROWS = (2, 7, 9)  # a NaN, a +inf and a -inf entry

#: Every method class, in a setting where its terms and state updates are at work.
METHODS = [
    ("onehot", {}),
    ("label_smoothing", {"epsilon": 0.2}),
    ("confidence_penalty", {"beta": 0.3}),
    ("tfkd_reg", {"temperature": 4.0, "alpha": 0.3}),
    ("label_embedding", {"alpha": 0.0}),
    ("label_embedding", {"alpha": 0.0, "fast_path": False}),
    ("label_embedding", {"variant": "paper", "tau": 3.0}),
    ("label_embedding", {"variant": "nlp", "soft_warmup": 0, "alpha": 0.3}),
    ("label_embedding", {"compressed_dim": 3, "alpha": 0.0}),
    ("label_embedding", {"compressed_dim": 3, "alpha": 0.0, "fast_path": False}),
    ("label_embedding_fixed", {"embedding": 2.0 * torch.eye(M) + 0.3}),
    ("ols", {}),
    ("lwr", {"num_examples": NUM_EXAMPLES, "epochs": 4, "k": 1}),
    ("lwal", {"dim_factor": 2, "repel": 1.0}),
    ("static_label", {"vectors": torch.eye(M, 7) + 0.1}),
    ("focal", {"gamma": 2.0}),
    ("flsd53", {}),
    ("mbls", {"margin": 1.0, "alpha": 0.5}),
    ("logitnorm", {"tau": 0.5}),
    ("elogitnorm", {}),
    ("label_relaxation", {"alpha": 0.3}),
    ("zipf_ls", {"weight": 1.0, "power": 1.5}),
    ("lspp", {"alpha": 0.3}),
    ("lcm", {"alpha": 3.0}),
    # Its tables float32 here: the comparisons are of float32 arithmetic, not of storage.
    ("pskd", {"num_examples": NUM_EXAMPLES, "epochs": 4, "storage": "float32"}),
    ("cskd", {"temperature": 3.0, "lam": 2.0}),  # rows 2k, 2k + 1 are its pairs
    ("maxsup", {"epochs": 3, "alpha": 0.3, "alpha_end": 0.9}),
    ("acls", {"alpha": 0.5, "margin": 1.0}),
    ("dual_focal", {"gamma": 2.0}),
    ("mdca", {"beta": 2.0, "gamma": 1.0}),
    ("adafocal", {"gamma_initial": -1.0}),  # inverse focal: its gammas move on dev predictions only
    # The robust losses of issue 78: each term at work; nls smooths from its second epoch.
    ("gce", {"q": 0.5}),
    ("sce", {"alpha": 0.3, "beta": 0.7}),
    ("nce_rce", {"alpha": 2.0, "beta": 0.5}),
    ("bootstrap_soft", {"beta": 0.7}),
    ("bootstrap_hard", {"beta": 0.6}),
    ("nls", {"smooth_rate": -0.5, "warmup_epochs": 1}),
    ("elr", {"num_examples": NUM_EXAMPLES, "beta": 0.6, "lam": 2.0}),  # targets updated every step
    ("coteaching", {"forget_rate": 0.4, "gradual_epochs": 0}),
    ("forward_t", {"warmup_epochs": 1}),
    ("forward_t", {"noise_transition": (0.5 * torch.eye(M) + 0.1).tolist()}),
]
IDS = [
    "-".join([name, *(f"{k}={v}" for k, v in options.items() if not isinstance(v, torch.Tensor))])
    for name, options in METHODS
]


def test_every_registered_method_class_is_covered():
    # Of the methods of class rows: a tag set's rows all count (tests/methods/test_multi_hot.py).
    classes = {methods.method_class(name) for name in methods.serving("class")}
    assert classes == {methods.method_class(name) for name, _ in METHODS}
    assert all(cls.stackable for cls in classes), "the stacked tests below assume every method stacks"


def build(name: str, options: dict, seed: int = 0) -> methods.Method:
    """A method away from its start (every term at work), in training mode."""
    torch.manual_seed(seed)
    method = methods.build(name, in_features=D, num_classes=M, **options)
    with torch.no_grad():
        for param in method.parameters():
            param.add_(0.5 * torch.randn_like(param))
    return method.train()


def batch(seed: int = 0, seeds: int | None = None):
    """Features, targets and dataset positions of N rows (of each seed, when ``seeds``)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (N,) if seeds is None else (seeds, N)
    features = torch.randn(*shape, D, generator=generator)
    target = torch.randint(0, M, shape, generator=generator)
    positions = [torch.randperm(NUM_EXAMPLES, generator=generator)[:N] for _ in range(seeds or 1)]
    return features, target, torch.stack(positions).reshape(shape)


def corrupt(features: torch.Tensor, rows=BAD_ROWS) -> torch.Tensor:
    """The features with a NaN, a +inf and a -inf entry in ``rows`` (of the last row dimension)."""
    bad = features.clone()
    for row, value in zip(rows, (float("nan"), float("inf"), float("-inf"))):
        bad[..., row, row % D] = value
    return bad


def ignore(target: torch.Tensor, rows=BAD_ROWS) -> torch.Tensor:
    ignored = target.clone()
    ignored[..., list(rows)] = -100
    return ignored


def step(method, features, target, index, optimizer=None):
    """Forward, backward, an optimiser step and an epoch end; the output and the features' gradient."""
    features = features.clone().requires_grad_()
    for param in method.parameters():
        param.grad = None
    out = method(features, target, **({"index": index} if method.needs_index else {}))
    out.loss.sum().backward()
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in method.named_parameters()}
    if optimizer is not None:
        optimizer.step()
    method.on_epoch_end()
    return out, features.grad, grads


def tensors(method) -> dict[str, torch.Tensor]:
    return {**dict(method.named_parameters()), **dict(method.named_buffers())}


def assert_all_finite(method, where: str) -> None:
    for key, value in tensors(method).items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{where}: {key} is not finite"
    for key, param in method.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), f"{where}: the gradient of {key} is not finite"


def assert_same_grads(got_grads, want_grads, where: str) -> None:
    """Every gradient equal; where the reference has none, the other has none or zeros."""
    for key in want_grads:
        if want_grads[key] is None:
            assert got_grads[key] is None or not got_grads[key].any(), f"{where} {key}"
        else:
            torch.testing.assert_close(got_grads[key], want_grads[key], msg=f"{where} gradient of {key}")


def assert_same_state(got, want, where: str) -> None:
    got, want = tensors(got), tensors(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7, msg=f"{where}: {key}")


def optimizer_for(kind: str, method):
    if kind == "sgd":
        return torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9)
    return torch.optim.Adam(method.parameters(), lr=0.01)


# ---------------------------------------------------------------- non-finite rows


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_non_finite_rows_are_left_out_of_the_state_and_the_loss_says_so(name, options, optimizer):
    """Three bad rows = the same rows ignored: every gradient, term, logit and buffer of the
    finite rows; the state stays finite through two steps (with an epoch end after each); the loss
    is NaN and the bad rows' features get a NaN gradient, the others theirs."""
    bad, reference = build(name, options), build(name, options)
    bad_opt, reference_opt = optimizer_for(optimizer, bad), optimizer_for(optimizer, reference)
    for seed in range(2):
        features, target, index = batch(seed)
        got, got_grad, got_grads = step(bad, corrupt(features), target, index, bad_opt)
        want, want_grad, want_grads = step(reference, features, ignore(target), index, reference_opt)
        where = f"{name} {options} step {seed}"
        assert torch.isnan(got.loss), f"{where}: the loss hides the non-finite rows"
        assert torch.isfinite(want.loss), where
        good = [i for i in range(N) if i not in BAD_ROWS]
        assert torch.isnan(got_grad[list(BAD_ROWS)]).all(-1).all(), (
            f"{where}: no NaN gradient for the bad rows"
        )
        torch.testing.assert_close(got_grad[good], want_grad[good], msg=where)
        assert got.logits.shape == (N, M)
        assert torch.isnan(got.logits[list(BAD_ROWS)]).all(), where
        torch.testing.assert_close(got.logits[good], want.logits[good], msg=where)
        assert got.terms.keys() == want.terms.keys()
        for key in want.terms:
            torch.testing.assert_close(got.terms[key], want.terms[key], msg=f"{where} term {key}")
        assert_same_grads(got_grads, want_grads, where)
        assert_all_finite(bad, where)
        assert_same_state(bad, reference, where)


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_a_row_whose_logits_overflow_is_left_out_like_a_non_finite_one(name, options):
    """Finite features, logits beyond float32: that row is left out and the loss is NaN."""
    bad, reference = build(name, options), build(name, options)
    for method in (bad, reference):
        with torch.no_grad():  # every product of the first layer positive and large
            for param in method.parameters():
                if param.dim() == 2 and param.shape[-1] == D:
                    param.abs_().add_(0.2)
    features, target, index = batch(1)
    features = features.abs()
    features[4] = 3e38
    got, got_grad, got_grads = step(bad, features, target, index)
    want, _, want_grads = step(reference, features, ignore(target, (4,)), index)
    assert torch.isnan(got.loss)
    assert torch.isnan(got_grad[4]).all()
    assert_same_grads(got_grads, want_grads, name)
    assert_all_finite(bad, name)
    assert_same_state(bad, reference, name)


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_an_ignored_row_with_non_finite_features_changes_nothing(name, options):
    """Padding with garbage features: ignored, so the loss stays finite and equals the one without it."""
    padded, reference = build(name, options), build(name, options)
    features, target, index = batch(2)
    got, got_grad, got_grads = step(padded, corrupt(features), ignore(target), index)
    want, want_grad, want_grads = step(reference, features, ignore(target), index)
    torch.testing.assert_close(got.loss, want.loss)
    assert not got_grad[list(BAD_ROWS)].any(), "an ignored row must get no gradient"
    assert_same_grads(got_grads, want_grads, name)
    assert_same_state(padded, reference, name)


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_an_amp_style_loop_skips_the_bad_step_and_keeps_the_state(name, options):
    """A GradScaler finds the NaN gradient the bad rows send into the backbone and skips the step:
    no parameter moves (backbone and method), and every buffer stays finite."""
    torch.manual_seed(0)
    backbone = torch.nn.Linear(D, D)
    method = build(name, options)
    parameters = [*backbone.parameters(), *method.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    before = [p.detach().clone() for p in parameters]
    inputs, target, index = batch(3)
    out = method(backbone(corrupt(inputs)), target, **({"index": index} if method.needs_index else {}))
    scaler.scale(out.loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() < 4.0, "the scaler did not see the bad step"
    for param, old in zip(parameters, before):
        assert torch.equal(param, old), "a skipped step moved a parameter"
    method.on_epoch_end()
    for key, value in method.named_buffers():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


# ---------------------------------------------------------------- empty batches


def assert_empty_step_changes_nothing(method, features, target, index, where: str) -> None:
    before = {key: value.detach().clone() for key, value in tensors(method).items()}
    features = features.requires_grad_()
    out = method(features, target, **({"index": index} if method.needs_index else {}))
    seeds = features.shape[:-2]
    assert out.loss.shape == seeds and torch.equal(out.loss.detach(), torch.zeros(seeds)), where
    assert out.loss.requires_grad, f"{where}: the loss must be connected to the graph"
    assert out.logits.shape == (*seeds, 0, M), where
    for key, value in out.terms.items():
        assert torch.equal(value, torch.zeros(seeds)), f"{where} term {key}"
    out.loss.sum().backward()
    assert features.grad is None or features.grad.shape == features.shape
    for key, param in method.named_parameters():
        assert param.grad is None or not param.grad.any(), f"{where}: {key} got a gradient"
    torch.optim.SGD(method.parameters(), lr=0.1).step()
    for key, value in tensors(method).items():
        assert torch.equal(value, before[key]), f"{where}: an empty batch changed {key}"


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_an_empty_batch_gives_a_zero_loss_and_changes_nothing(name, options):
    method = build(name, options)
    empty = torch.zeros(0, dtype=torch.long)
    assert_empty_step_changes_nothing(method, torch.randn(0, D), empty, empty, name)
    method.eval()
    assert method.logits(torch.randn(0, D)).shape == (0, M)


# ---------------------------------------------------------------- stacked seeds

SEEDS = 3


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_stacked_seeds_leave_out_each_seeds_own_non_finite_rows(name, options):
    """Seed 1 has bad rows, seeds 0 and 2 none: only seed 1's loss is NaN; every seed's gradients
    and state equal those of the same stack with seed 1's bad rows ignored; all stays finite."""
    bad = stack_modules([build(name, options, seed=s) for s in range(SEEDS)])
    reference = stack_modules([build(name, options, seed=s) for s in range(SEEDS)])
    bad_opt, reference_opt = optimizer_for("adam", bad), optimizer_for("adam", reference)
    for seed in range(2):
        features, target, index = batch(seed, SEEDS)
        corrupted, ignored = features.clone(), target.clone()
        corrupted[1], ignored[1] = corrupt(features[1]), ignore(target[1])
        got, got_grad, got_grads = step(bad, corrupted, target, index, bad_opt)
        want, want_grad, want_grads = step(reference, features, ignored, index, reference_opt)
        where = f"{name} {options} step {seed}"
        assert got.loss.shape == (SEEDS,)
        assert torch.isnan(got.loss[1]) and torch.isfinite(got.loss[[0, 2]]).all(), where
        torch.testing.assert_close(got.loss[[0, 2]], want.loss[[0, 2]], msg=where)
        good = [i for i in range(N) if i not in BAD_ROWS]
        assert torch.isnan(got_grad[1, list(BAD_ROWS)]).all(), where
        torch.testing.assert_close(got_grad[[0, 2]], want_grad[[0, 2]], msg=where)
        torch.testing.assert_close(got_grad[1, good], want_grad[1, good], msg=where)
        assert_same_grads(got_grads, want_grads, where)
        assert_all_finite(bad, where)
        assert_same_state(bad, reference, where)


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_an_empty_stacked_batch_gives_zero_losses_and_changes_nothing(name, options):
    stacked = stack_modules([build(name, options, seed=s) for s in range(SEEDS)])
    empty = torch.zeros(SEEDS, 0, dtype=torch.long)
    assert_empty_step_changes_nothing(stacked, torch.randn(SEEDS, 0, D), empty, empty, f"{name} stacked")


# ---------------------------------------------------------------- the batch check itself


def test_the_batch_check_reads_labels_exactly_and_sums_half_precision_in_float32():
    from labelemb.methods.finite import clean_batch as _clean_batch

    features = torch.ones(2, 3)
    # Float32 would round the label 2^24 + 1 down to 2^24 and call it in range.
    big = 2**24 + 1
    assert not _clean_batch(torch.tensor([0, big]), big, (features,))
    assert _clean_batch(torch.tensor([0, big - 1]), big, (features,))
    assert not _clean_batch(torch.tensor([-1, 1]), 5, (features,))
    # 40,000 half-precision values of 6e4 sum to 2.4e9: finite in float32, not in float16.
    for dtype in (torch.float16, torch.bfloat16):
        assert _clean_batch(torch.tensor([0, 1]), 5, (torch.full((200, 200), 6e4, dtype=dtype),))
    assert not _clean_batch(torch.tensor([0, 1]), 5, (features, torch.tensor([[0.0, float("nan")]])))
