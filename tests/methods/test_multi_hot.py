"""Tag sets (multi-hot targets): the methods that train on them, their losses computed by hand, and
the reason each other method gives for refusing them.

A batch's target is a bool ``(N, K)`` tag set per row (stacked: ``(S, N, K)``). A method with the
``MultiHot`` ability takes it to its ``tag_loss``, summed over the tags and averaged over the rows;
every other method refuses it with its own reason.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from helpers.host_reads import HostReads
from helpers.repo_paths import DOCS

from labelemb import methods
from labelemb.methods.abilities import MultiHot
from labelemb.methods.accumulation import MicroBatch
from labelemb.methods.base import LinearOutputMethod, trust_batches
from labelemb.methods.multi_hot import tags_reason
from labelemb.methods.rows import MethodOutput
from labelemb.stacking import stack_modules

pytestmark = pytest.mark.usefixtures("one_thread")

#: Every name that trains on tag sets, presets included.
TAG_METHODS = ["asl", "flsd53", "focal", "label_embedding", "label_smoothing", "onehot"]
#: One setting of each class that serves tag sets, with every part of its loss at work.
TAG_SETTINGS = [
    ("onehot", {}),
    ("label_smoothing", {"epsilon": 0.2}),
    ("label_smoothing", {"epsilon": 0.2, "tag_smoothing": "mass"}),
    ("focal", {"gamma": 2.0}),
    ("flsd53", {}),
    ("asl", {}),
]
IDS = ["-".join([name, *map(str, options.values())]) for name, options in TAG_SETTINGS]
#: Every class that serves tag sets, the two-headed label embedding too (its own loss is checked by
#: hand in test_label_embedding_tags.py): what every tag loss shares.
EVERY_SETTING = [*TAG_SETTINGS, ("label_embedding", {})]
EVERY_ID = [*IDS, "label_embedding"]

#: Two rows of four tags: the logits and the tag sets the losses are computed on by hand.
LOGITS = [[2.0, -1.0, 0.5, 0.0], [-3.0, 1.5, -0.5, 4.0]]
TAGS = [[1, 0, 0, 1], [0, 1, 1, 0]]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def with_logits(name: str, logits: list[list[float]], **options) -> tuple[methods.Method, torch.Tensor]:
    """Method ``name`` whose linear layer is the identity, and features that are ``logits`` then."""
    width = len(logits[0])
    method = methods.build(name, in_features=width, num_classes=width, **options)
    with torch.no_grad():
        method.output.weight.copy_(torch.eye(width))
        method.output.bias.zero_()
    return method, torch.tensor(logits)


def loss_of(name: str, logits=LOGITS, tags=TAGS, **options) -> torch.Tensor:
    method, features = with_logits(name, logits, **options)
    return method(features, torch.tensor(tags, dtype=torch.bool)).loss


def mean_of_row_sums(per_tag) -> float:
    """``per_tag(z, y)`` summed over each row's tags, averaged over the rows of LOGITS and TAGS."""
    sums = [sum(per_tag(z, y) for z, y in zip(row, tags)) for row, tags in zip(LOGITS, TAGS)]
    return sum(sums) / len(sums)


def bce(z: float, t: float) -> float:
    return -(t * math.log(sigmoid(z)) + (1.0 - t) * math.log(1.0 - sigmoid(z)))


def random_batch(rows: int = 7, width: int = 5, tags: int = 4, seeds: int | None = None, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lead = (rows,) if seeds is None else (seeds, rows)
    features = torch.randn(*lead, width, generator=generator)
    return features, torch.rand(*lead, tags, generator=generator) < 0.4


# ---------------------------------------------------------------- which methods serve tag sets


def test_the_methods_that_serve_tag_sets_are_those_with_the_ability():
    assert methods.serving("tags") == TAG_METHODS
    for name in methods.available():
        cls = methods.method_class(name)
        assert ("tags" in cls.serves) == issubclass(cls, MultiHot) == cls.multi_hot, name
        assert (methods.why_not_serving(name, "tags") is None) == (name in TAG_METHODS), name
    assert methods.why_not_serving("flsd53", "tags") is None  # a preset is its class


def test_every_other_method_gives_its_own_reason_for_refusing_tag_sets():
    reasons = {}
    for name in methods.available():
        cls = methods.method_class(name)
        if "tags" in cls.serves:
            continue
        # Its own class's reason (not one inherited from a base), one non-empty line.
        reason = cls.__dict__.get("cannot_serve", {}).get("tags", "")
        assert reason.strip() and "\n" not in reason, name
        assert methods.why_not_serving(name, "tags") == reason
        reasons.setdefault(reason, set()).add(cls)
    # Each class words its own.
    shared = {reason: classes for reason, classes in reasons.items() if len(classes) > 1}
    assert not shared, shared


def test_a_method_without_the_ability_refuses_a_tag_set_with_its_reason():
    features, tags = random_batch(tags=5)
    gce = methods.build("gce", in_features=5, num_classes=5)
    with pytest.raises(TypeError) as refused:
        gce(features, tags)
    message = str(refused.value)
    assert "'gce'" in message and "multi-hot" in message
    assert methods.why_not_serving("gce", "tags") in message


def test_the_mixin_is_the_one_way_to_serve_tag_sets():
    class Plain(LinearOutputMethod):
        pass

    assert "tags" not in Plain.serves and Plain.serves == {"class", "token"}
    # One of one's own without a reason of its own still says why.
    assert "tags" not in Plain.cannot_serve and "abilities.MultiHot" in tags_reason(Plain)
    with pytest.raises(TypeError, match="lists 'tags' in serves but is no MultiHot"):

        class Claims(LinearOutputMethod):
            serves = frozenset({"class", "tags"})

    class Tagged(MultiHot, LinearOutputMethod):
        def tag_loss(self, logits, tags, features):
            return MethodOutput(logits.sum(), logits)

    class OptedOut(Tagged):
        multi_hot = False

    assert Tagged.serves == {"class", "token", "tags"} and OptedOut.serves == {"class", "token"}
    features, tags = random_batch(tags=3)
    with pytest.raises(TypeError, match="cannot train on multi-hot targets"):
        OptedOut(5, 3)(features, tags)
    assert torch.isfinite(Tagged(5, 3)(features, tags).loss)


def test_an_unknown_kind_of_rows_is_refused():
    with pytest.raises(ValueError, match="unknown kind of rows 'tag'.*'tags'"):
        methods.serving("tag")


# ---------------------------------------------------------------- the shapes


@pytest.mark.parametrize(
    "tags, says",
    [
        (torch.zeros(7, 3, dtype=torch.bool), r"3 tags a row but the method was built with num_classes=4"),
        (torch.zeros(6, 4, dtype=torch.bool), r"one row per feature row, shape \(7, 4\), got \(6, 4\)"),
        (torch.zeros(7, dtype=torch.bool), r"must have shape \(7, 4\) .*got \(7,\)"),
        (torch.zeros(2, 7, 4, dtype=torch.bool), r"must have shape \(7, 4\) .*got \(2, 7, 4\)"),
    ],
    ids=["wrong K", "wrong N", "no tag column", "a seed dimension too many"],
)
def test_tag_sets_of_the_wrong_shape_are_refused_in_one_line(tags, says):
    features, _ = random_batch()
    method = methods.build("onehot", in_features=5, num_classes=4)
    with pytest.raises(ValueError, match=says) as refused:
        method(features, tags)
    assert "\n" not in str(refused.value)


def test_stacked_tag_sets_must_match_each_seeds_rows():
    features, tags = random_batch(seeds=3)
    stacked = stack_modules([methods.build("onehot", in_features=5, num_classes=4) for _ in range(3)])
    with pytest.raises(ValueError, match=r"shape \(3, 7, 4\), got \(3, 6, 4\)"):
        stacked(features, tags[:, :6])
    with pytest.raises(ValueError, match=r"expects features of shape \(3, N, 5\)"):
        stacked(features[0], tags[0])


# ---------------------------------------------------------------- the losses, by hand


def test_onehot_is_the_binary_cross_entropy_of_each_tag():
    # -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], summed over the tags, averaged over the rows
    want = mean_of_row_sums(bce)
    assert loss_of("onehot").item() == pytest.approx(want, rel=1e-6)


def test_label_smoothing_moves_every_tag_towards_epsilon_over_k_or_keeps_the_rows_mass():
    method = methods.build("label_smoothing", in_features=4, num_classes=4, epsilon=0.2)
    mass = methods.build("label_smoothing", in_features=4, num_classes=4, epsilon=0.2, tag_smoothing="mass")
    tags = torch.tensor([[True, False, False, True]])
    logits = torch.zeros(1, 4)
    uniform_targets = 0.8 * tags + method.epsilon * method.smoothing_target(tags, logits)
    mass_targets = 0.8 * tags + mass.epsilon * mass.smoothing_target(tags, logits)
    torch.testing.assert_close(uniform_targets, torch.tensor([[0.85, 0.05, 0.05, 0.85]]))
    torch.testing.assert_close(mass_targets, torch.tensor([[0.9, 0.1, 0.1, 0.9]]))


@pytest.mark.parametrize("form", ["uniform", "mass"])
def test_label_smoothing_is_the_binary_cross_entropy_against_the_smoothed_tags(form):
    epsilon, k = 0.2, 4

    def smoothed(row_tags):
        towards = [1.0 / k] * k if form == "uniform" else [sum(row_tags) / k] * k
        return [(1 - epsilon) * y + epsilon * c for y, c in zip(row_tags, towards)]

    rows = [sum(bce(z, t) for z, t in zip(row, smoothed(tags))) for row, tags in zip(LOGITS, TAGS)]
    got = loss_of("label_smoothing", epsilon=epsilon, tag_smoothing=form)
    assert got.item() == pytest.approx(sum(rows) / 2, rel=1e-6)


def test_the_two_smoothings_agree_on_one_tag_and_part_on_none():
    logits = [[0.3, -1.2, 2.0, 0.7]]

    def both(tags):
        return [
            loss_of("label_smoothing", logits, tags, tag_smoothing=form).item()
            for form in ("uniform", "mass")
        ]

    uniform, mass = both([[0, 0, 1, 0]])  # one tag: sum(y) / K = 1 / K
    assert uniform == pytest.approx(mass, rel=1e-6)
    uniform, mass = both([[0, 0, 0, 0]])  # no tag: mass smooths nothing, uniform lifts every tag
    assert mass == pytest.approx(loss_of("onehot", logits, [[0, 0, 0, 0]]).item(), rel=1e-6)
    assert uniform != pytest.approx(mass, rel=1e-3)
    uniform, mass = both([[1, 0, 1, 1]])
    assert uniform != pytest.approx(mass, rel=1e-3)


def test_label_smoothing_logs_its_two_parts_and_epsilon_zero_is_onehot():
    method, features = with_logits("label_smoothing", LOGITS, epsilon=0.3)
    out = method(features, torch.tensor(TAGS, dtype=torch.bool))
    torch.testing.assert_close(out.loss, 0.7 * out.terms["bce"] + 0.3 * out.terms["smoothing"])
    torch.testing.assert_close(loss_of("label_smoothing", epsilon=0.0), loss_of("onehot"))


@pytest.mark.parametrize("form", ["Uniform", "mass-preserving", None])
def test_an_unknown_tag_smoothing_is_refused(form):
    with pytest.raises(ValueError, match="tag_smoothing must be 'uniform'.* or 'mass'"):
        methods.build("label_smoothing", in_features=3, num_classes=3, tag_smoothing=form)


def test_label_smoothing_declares_its_tag_smoothing_option():
    assert methods.options("label_smoothing")["tag_smoothing"] == "uniform"
    assert "tag_smoothing" not in methods.search_space("label_smoothing")  # nothing for class rows


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_is_the_sigmoid_focal_loss_of_each_tag(gamma):
    def focal(z, y):
        p_t = sigmoid(z) if y else 1.0 - sigmoid(z)
        return -((1.0 - p_t) ** gamma) * math.log(p_t)

    assert loss_of("focal", gamma=gamma).item() == pytest.approx(mean_of_row_sums(focal), rel=1e-6)


def test_flsd53_takes_gamma_low_tag_by_tag():
    def focal(z, y):
        p_t = sigmoid(z) if y else 1.0 - sigmoid(z)
        gamma = 5.0 if p_t < 0.2 else 3.0
        return -((1.0 - p_t) ** gamma) * math.log(p_t)

    assert loss_of("flsd53").item() == pytest.approx(mean_of_row_sums(focal), rel=1e-6)


def test_focal_logs_the_cross_entropy_beside_and_gamma_zero_is_onehot():
    method, features = with_logits("focal", LOGITS, gamma=0.0)
    out = method(features, torch.tensor(TAGS, dtype=torch.bool))
    torch.testing.assert_close(out.loss, loss_of("onehot"))
    torch.testing.assert_close(out.terms["bce"], loss_of("onehot"))


# ---------------------------------------------------------------- what every tag loss shares


# label_embedding's emb term is a mean over the batch's (row, tag) pairs its mask keeps, not over
# rows: test_label_embedding_tags.py checks its reduction.
@pytest.mark.parametrize("name, options", TAG_SETTINGS, ids=IDS)
def test_the_loss_sums_over_the_tags_and_averages_over_the_rows(name, options):
    torch.manual_seed(0)
    method = methods.build(name, in_features=5, num_classes=4, **options)
    features, tags = random_batch(rows=6)
    out = method(features, tags)
    rows = [method(features[i : i + 1], tags[i : i + 1]).loss for i in range(6)]
    torch.testing.assert_close(out.loss, torch.stack(rows).mean())
    # Twice the batch is the same mean; a sum over rows would double it.
    torch.testing.assert_close(method(features.repeat(2, 1), tags.repeat(2, 1)).loss, out.loss)
    assert out.loss.shape == () and out.logits.shape == (6, 4)
    torch.testing.assert_close(out.logits, method.logits(features))  # the raw per-tag logits
    assert all(not value.requires_grad for value in out.terms.values())


@pytest.mark.parametrize("name, options", TAG_SETTINGS, ids=IDS)
def test_the_tag_losses_have_the_gradients_of_their_formulas(name, options):
    torch.manual_seed(0)
    method = methods.build(name, in_features=4, num_classes=4, **options).double()
    # Probabilities well away from asl's clip (0.05), where its shift has a kink (the absent tag at
    # -4 lies below it, where its term is 0), and from flsd53's p_low (0.2).
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.1], [-0.3, 1.5, -0.5, 4.0], [0.8, -2.2, 3.0, -4.0]])
    logits = logits.double().requires_grad_()
    tags = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda z: method.tag_loss(z, tags, z).loss, (logits,))


@pytest.mark.parametrize("name, options", EVERY_SETTING, ids=EVERY_ID)
def test_stacked_seeds_give_each_seeds_loss_and_gradients(name, options):
    seeds = []
    for seed in range(3):
        torch.manual_seed(seed)
        seeds.append(methods.build(name, in_features=5, num_classes=4, **options))
    stacked = stack_modules(seeds)
    features, tags = random_batch(seeds=3)
    features.requires_grad_()
    out = stacked(features, tags)
    assert out.loss.shape == (3,) and out.logits.shape == (3, 7, 4)
    out.loss.sum().backward()
    for s, method in enumerate(seeds):
        own_features = features[s].detach().requires_grad_()
        own = method(own_features, tags[s])
        own.loss.backward()
        torch.testing.assert_close(out.loss[s], own.loss)
        torch.testing.assert_close(out.logits[s], own.logits)
        for key, value in own.terms.items():
            torch.testing.assert_close(out.terms[key][s], value)
        stacked_parameters = dict(stacked.named_parameters())
        for key, parameter in method.named_parameters():
            torch.testing.assert_close(stacked_parameters[key].grad[s], parameter.grad, msg=key)
        torch.testing.assert_close(features.grad[s], own_features.grad)


@pytest.mark.parametrize("name, options", EVERY_SETTING, ids=EVERY_ID)
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "trusted"])
def test_a_step_on_tag_sets_reads_no_device_value(name, options, checked):
    method = methods.build(name, in_features=5, num_classes=4, **options)
    if not checked:
        trust_batches(method)
    features, tags = random_batch()
    with HostReads() as reads:
        method(features, tags).loss.backward()
    assert reads == []


@pytest.mark.parametrize("name, options", EVERY_SETTING, ids=EVERY_ID)
def test_every_row_counts_and_a_non_finite_one_makes_the_loss_so(name, options):
    method = methods.build(name, in_features=5, num_classes=4, **options)
    features, tags = random_batch()
    assert torch.isfinite(method(features, tags).loss)
    features[3, 1] = float("nan")
    assert torch.isnan(method(features, tags).loss)
    # an empty batch: zero, connected to the graph
    empty = method(torch.zeros(0, 5), torch.zeros(0, 4, dtype=torch.bool))
    assert empty.loss.item() == 0.0 and empty.loss.requires_grad


def test_gradient_accumulation_refuses_tag_sets_for_now():
    method = methods.build("onehot", in_features=5, num_classes=4).train()
    features, tags = random_batch()
    method.micro_batch = MicroBatch(position=0, count=2, divisor=2)
    with pytest.raises(NotImplementedError, match="gradient accumulation .* multi-hot targets"):
        method(features, tags)
    method.micro_batch = None
    with pytest.raises(NotImplementedError, match="multi-hot targets"):
        method.micro_batch_loss(features, tags, 14.0)


def test_the_losses_are_stable_at_extreme_logits():
    for name, options in TAG_SETTINGS:
        method, features = with_logits(name, [[200.0, -200.0, 200.0, -200.0]], **options)
        features.requires_grad_()
        tags = torch.tensor([[True, True, False, False]])
        out = method(features, tags)
        out.loss.backward()
        assert torch.isfinite(out.loss) and torch.isfinite(features.grad).all(), name
        # a present tag at z = -200 costs about 200 (log p is logsigmoid(z), never log 0)
        assert out.loss.item() > 100.0, name


# ---------------------------------------------------------------- the documentation


def test_the_methods_page_names_every_method_that_refuses_tag_sets_with_its_reason():
    page = (DOCS / "methods.md").read_text()
    section = page.split("## Multi-label (tag sets)", 1)[1].split("\n## ", 1)[0]
    listed = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
                listed[name] = cells[1]
    refusing = [name for name in methods.available() if name not in methods.serving("tags")]
    assert sorted(listed) == sorted(refusing)
    for name in refusing:
        assert listed[name] == methods.why_not_serving(name, "tags"), name
    for name in methods.serving("tags"):
        assert f"`{name}`" in section, name
