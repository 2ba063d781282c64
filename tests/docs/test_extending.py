"""docs/extending.md, run: four ways to extend labelemb, each one file under examples/extending/.

A data set with an option of its own (noisy_digits.py), a method (bootstrap.py), a backbone that
the batched trainer stacks (tanh_mlp.py) and a task that is not one of the library's (a token
tagger: a data set of a new kind, its backbone and the task, token_tagging.py). Each file is
imported as a user would import it, trains through ``build_config`` + ``train``, and its mistakes
are refused as the built-in ones are. Every registration is made in copies of the registries that
this module's end throws away, so the rest of the suite sees the library as it ships. The page's
code blocks must be in the files they describe, its configs must build, and each example's
"Files touched" must name its one file.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from helpers.batched_checks import train_batched
from helpers.repo_paths import ROOT

from labelemb import data, methods, models
from labelemb.analysis import comparison_rows, format_markdown, load_runs
from labelemb.analysis.compare import comparison_metric
from labelemb.analysis.report import build_report
from labelemb.data import DATASETS, DataRequest, load_digits
from labelemb.methods.registry import METHODS
from labelemb.models import MODELS
from labelemb.stacking import stack_modules
from labelemb.tasks import TASKS
from labelemb.training import (
    ConfigError,
    RunDirError,
    build_config,
    load_config,
    supports_batched,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = ROOT / "examples" / "extending"
PAGE = ROOT / "docs" / "extending.md"
#: Each example and the names it registers, by registry.
EXAMPLE_FILES = ("noisy_digits", "bootstrap", "tanh_mlp", "token_tagging")
REGISTERED = {
    "noisy_digits": [(DATASETS, "noisy-digits")],
    "bootstrap": [(METHODS, "bootstrap")],
    "tanh_mlp": [(MODELS, "tanh_mlp")],
    "token_tagging": [(DATASETS, "tagged"), (MODELS, "tagger"), (TASKS, "tagging")],
}
#: What an example may import: labelemb, its own dependencies and the standard library.
IMPORTABLE = {
    "__future__",
    "collections",
    "dataclasses",
    "math",
    "pathlib",
    "typing",
    "labelemb",
    "pydantic",
    "torch",
}


def load_example(name: str) -> ModuleType:
    """Import examples/extending/<name>.py as a module of its own (as ``import <name>`` would)."""
    module_name = f"labelemb_extending_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"examples/extending/{name}.py is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def examples() -> Any:
    """The four examples, each imported once, registered in registry copies dropped at the end."""
    with pytest.MonkeyPatch.context() as patch:
        for registry in (DATASETS, MODELS, METHODS, TASKS):
            patch.setattr(registry, "_entries", dict(registry._entries))
        loaded = {name: load_example(name) for name in EXAMPLE_FILES}
        yield SimpleNamespace(**loaded)
        for module in loaded.values():
            sys.modules.pop(module.__name__, None)


def run_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A quick run's config: 8x8 digits, an MLP of 64, onehot, 2 epochs at lr 0.01, written under tmp_path."""
    config: dict[str, Any] = {
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [64]},
        "method": {"name": "onehot"},
        "train": {"epochs": 2, "lr": 0.01, "progress": False},
        "output_dir": str(tmp_path),
    }
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(config.get(key), dict) else value
    return config


# ---------------------------------------------------------------------------- 1. a data set


def test_noisy_digits_trains_with_its_option(examples, tmp_path):
    config = build_config(
        run_config(
            tmp_path, data={"name": "noisy-digits", "noisy_digits": {"noise": 0.3}}, train={"epochs": 1}
        )
    )
    assert config.section(examples.noisy_digits.NoisyDigitsOptions).noise == 0.3

    summary = train(config)

    assert summary["dataset"] == "noisy-digits"
    assert summary["data"] == {"noise": 0.3, "noise_seed": 0}
    assert summary["selected_test_error"] < 60.0, summary  # ten classes: chance is 90; about 30 here
    saved = yaml.safe_load((config.run_dir() / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["noisy_digits"] == {"noise": 0.3, "noise_seed": 0}
    # The folder holds a run of noise 0.3: one of other options is refused, not read back as it.
    other = run_config(
        tmp_path, data={"name": "noisy-digits", "noisy_digits": {"noise": 0.5}}, train={"epochs": 1}
    )
    with pytest.raises(RunDirError, match=r"differs in: data\.noisy_digits\.noise"):
        train(build_config(other))


def test_noisy_digits_options_reach_the_loader(examples):
    schema = examples.noisy_digits.NoisyDigitsOptions
    clean = load_digits()

    def loaded(**options: Any) -> data.Dataset:
        return data.load("noisy-digits", DataRequest(sections={"noisy_digits": schema(**options)}))

    assert torch.equal(loaded(noise=0.0).train.images, clean.train.images)
    noisy = loaded(noise=0.3)
    assert torch.equal(noisy.train.labels, clean.train.labels)
    change = (noisy.test.images - clean.test.images).abs().mean().item()
    assert 0.1 < change < 0.3, change  # |N(0, 0.3)| averages 0.24, less where clipping at 0 or 1 cuts it
    assert noisy.train.images.min() >= 0.0 and noisy.train.images.max() <= 1.0
    assert torch.equal(loaded(noise=0.3).train.images, noisy.train.images)  # the same draw every run
    assert not torch.equal(loaded(noise=0.3, noise_seed=1).train.images, noisy.train.images)


def test_a_wrong_data_option_is_refused_before_any_data_is_read(examples, tmp_path, monkeypatch):
    def no_reading() -> None:
        raise AssertionError("the data was read")

    monkeypatch.setattr(examples.noisy_digits, "load_digits", no_reading)
    cases = {
        "nose": (
            {"name": "noisy-digits", "noisy_digits": {"nose": 0.3}},
            "config key 'data.noisy_digits.nose' does not exist; did you mean 'data.noisy_digits.noise'?",
        ),
        "range": (
            {"name": "noisy-digits", "noisy_digits": {"noise": 2}},
            "config key 'data.noisy_digits.noise': Input should be less than or equal to 1 (got 2)",
        ),
        "other data set": (
            {"name": "digits", "noisy_digits": {"noise": 0.3}},
            "data.noisy_digits (noise) holds options of noisy-digits: set data.name: noisy-digits",
        ),
    }
    for case, (section, expected) in cases.items():
        with pytest.raises(ConfigError) as refused:
            train(build_config(run_config(tmp_path, data=section)))
        message = str(refused.value)
        assert "\n" not in message, (case, message)
        assert message.startswith(expected), (case, message)
    assert not any(tmp_path.iterdir())


def test_the_page_s_python_recipe_trains_an_extension(examples, tmp_path, monkeypatch):
    """The page's "Using an extension" code, run as shown, with the example importable by its name."""
    using = re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)
    (code,) = fenced(next(part for part in using if part.startswith("Using an extension")), "python")
    monkeypatch.setitem(sys.modules, "noisy_digits", examples.noisy_digits)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}

    exec(compile(code, str(PAGE), "exec"), scope)

    assert scope["summary"]["dataset"] == "noisy-digits" and scope["summary"]["data"]["noise"] == 0.3
    assert (tmp_path / "runs" / "demo" / "onehot" / "seed0" / "summary.json").is_file()


def test_the_command_line_trains_an_extension_as_the_page_says(tmp_path):
    """The page's recipe: Python imports the file, then runs labelemb's own command line."""
    shown = re.search(r'^\s*python -c "(import noisy_digits[^"]+)"', PAGE.read_text(), flags=re.M)
    assert shown, "docs/extending.md no longer shows how to run the command line with an extension"
    overrides = ["data.name=noisy-digits", "data.noisy_digits.noise=0.3", "model.hidden=[64]"]
    overrides += ["train.epochs=1", "train.lr=0.01", "train.threads=1"]
    command = [sys.executable, "-c", shown.group(1), "train", "--method", "onehot", "--no-progress"]
    command += ["--output-dir", str(tmp_path), *overrides]
    paths = [str(EXAMPLES), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "demo-digits-mlp" / "onehot" / "seed0" / "summary.json").read_text())
    assert summary["dataset"] == "noisy-digits" and summary["data"]["noise"] == 0.3


# ---------------------------------------------------------------------------- 2. a method


def bootstrap_head(examples, beta: float = 0.8) -> methods.Method:
    """The method on 2 features and 3 classes, with output weights set by hand."""
    head = methods.build("bootstrap", in_features=2, num_classes=3, beta=beta)
    assert isinstance(head, examples.bootstrap.SoftBootstrap)
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0]]))
        head.output.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return head


FEATURES = [[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]]


def by_hand(features: list[list[float]], targets: list[int], beta: float) -> tuple[float, list[list[float]]]:
    """The loss ``mean_i H(beta onehot(y_i) + (1 - beta) p_i, p_i)`` over the rows that count, and
    its gradient in the logits, ``(p_i - q_i) / n`` (q held fixed: the stop-gradient)."""
    weight = [[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0]]
    bias = [0.1, -0.2, 0.3]
    counted = [i for i, y in enumerate(targets) if y != -100]
    loss, gradients = 0.0, [[0.0] * 3 for _ in features]
    for i in counted:
        z = [sum(w * h for w, h in zip(row, features[i])) + b for row, b in zip(weight, bias)]
        total = sum(math.exp(v) for v in z)
        p = [math.exp(v) / total for v in z]
        q = [beta * (k == targets[i]) + (1 - beta) * p[k] for k in range(3)]
        loss -= sum(q[k] * math.log(p[k]) for k in range(3)) / len(counted)
        gradients[i] = [(p[k] - q[k]) / len(counted) for k in range(3)]
    return loss, gradients


def test_bootstrap_loss_and_gradient_are_the_hand_computation(examples):
    head = bootstrap_head(examples)
    features = torch.tensor(FEATURES, requires_grad=True)
    out = head(features, torch.tensor([2, 0, 1]))
    out.loss.backward()

    loss, gradients = by_hand(FEATURES, [2, 0, 1], beta=0.8)
    assert out.loss.item() == pytest.approx(loss, rel=1e-6)
    assert out.loss.item() == pytest.approx(
        (0.8 * out.terms["ce"] + 0.2 * out.terms["bootstrap"]).item(), rel=1e-6
    )
    # The gradient of a linear layer's weight is sum_i dL/dz_i h_i^T.
    expected = torch.tensor(gradients).T @ torch.tensor(FEATURES)
    torch.testing.assert_close(head.output.weight.grad, expected, rtol=1e-5, atol=1e-7)
    # At beta = 1 it is cross-entropy.
    plain = bootstrap_head(examples, beta=1.0)(features, torch.tensor([2, 0, 1])).loss
    logits = features @ head.output.weight.T + head.output.bias
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(logits, torch.tensor([2, 0, 1])))


def test_bootstrap_leaves_ignored_rows_out(examples):
    head = bootstrap_head(examples)
    features = torch.tensor(FEATURES, requires_grad=True)
    out = head(features, torch.tensor([2, -100, 1]))
    out.loss.backward()

    assert out.loss.item() == pytest.approx(by_hand(FEATURES, [2, -100, 1], beta=0.8)[0], rel=1e-6)
    alone = head(features[[0, 2]], torch.tensor([2, 1])).loss
    assert out.loss.item() == pytest.approx(alone.item(), rel=1e-6)
    assert torch.all(features.grad[1] == 0) and torch.all(features.grad[[0, 2]] != 0)


def test_bootstrap_stacked_is_each_seed_alone(examples):
    heads = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        heads.append(methods.build("bootstrap", in_features=4, num_classes=5, beta=0.8))
    stacked = stack_modules(heads)
    features = torch.randn(2, 7, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[0, 1, 2, 3, 4, -100, 1], [4, 3, -100, 1, 0, 0, 2]])

    losses = stacked(features, targets).loss

    assert losses.shape == (2,)
    for s, head in enumerate(heads):
        torch.testing.assert_close(losses[s], head(features[s], targets[s]).loss, rtol=1e-5, atol=1e-6)


def test_bootstrap_trains_through_the_harness(examples, tmp_path):
    summary = train(build_config(run_config(tmp_path, method={"name": "bootstrap", "beta": 0.8})))

    assert summary["method"] == "bootstrap"
    assert summary["selected_test_error"] < 25.0, summary  # about 9 here
    metrics = tmp_path / "demo" / "bootstrap" / "seed0" / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    assert {"train_ce", "train_bootstrap"} <= set(records[-1])
    with pytest.raises(ConfigError, match=r"no option\(s\) bta; did you mean beta\?"):
        build_config(run_config(tmp_path, method={"name": "bootstrap", "bta": 0.8}))


def test_a_bare_option_on_compare_goes_to_the_methods_that_take_it(examples, tmp_path, capsys):
    """The page's ``beta=0.8`` override, in a comparison with onehot (which has no beta): bootstrap
    trains with it, onehot without it (before: "method 'onehot' has no option(s) beta"); a
    misspelt option no method takes, and ``train``'s one method without it, are refused."""
    from labelemb.cli import main

    quick = ["data.name=digits", "model.hidden=[64]", "train.epochs=1", "train.lr=0.01"]
    common = ["--no-progress", "--output-dir", str(tmp_path), *quick]

    assert main(["compare", "--methods", "onehot, bootstrap", "beta=0.8", *common]) == 0, (
        capsys.readouterr().err
    )
    for method in ("onehot", "bootstrap"):
        assert (tmp_path / "demo-digits-mlp" / method / "seed0" / "summary.json").is_file()
    recorded = load_config(tmp_path / "demo-digits-mlp" / "bootstrap" / "seed0" / "config.yaml")
    assert recorded.options("method")["beta"] == 0.8
    assert "beta" not in load_config(
        tmp_path / "demo-digits-mlp" / "onehot" / "seed0" / "config.yaml"
    ).options("method")
    capsys.readouterr()

    assert main(["compare", "--methods", "onehot,bootstrap", "bta=0.8", *common]) == 2
    assert (
        "none of the methods onehot, bootstrap has an option 'bta'; did you mean 'beta'?"
        in capsys.readouterr().err
    )
    assert main(["train", "--method", "onehot", "beta=0.8", *common]) == 2
    assert "method 'onehot' has no option(s) beta" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 3. a backbone


def test_tanh_mlp_trains_and_stacks(examples, tmp_path):
    raw = run_config(tmp_path, model={"name": "tanh_mlp", "hidden": 32})
    assert supports_batched(build_config(raw))

    # The hook: seed s's features through seed s's parameters.
    backbones = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        backbones.append(models.build_model("tanh_mlp", (1, 8, 8), hidden=32))
    params = {
        name: torch.stack([dict(b.named_parameters())[name] for b in backbones])
        for name, _ in backbones[0].named_parameters()
    }
    images = load_digits().train.images[:20]
    stacked = backbones[0].stacked_forward(params, images.expand(2, *images.shape))
    for s, backbone in enumerate(backbones):
        torch.testing.assert_close(stacked[s], backbone(images), rtol=1e-5, atol=1e-6)

    batched = train_batched(
        [build_config({**raw, "seed": s, "output_dir": str(tmp_path / "batched")}) for s in (0, 1)],
    )
    for s, summary in zip((0, 1), batched):
        alone = train(build_config({**raw, "seed": s, "output_dir": str(tmp_path / "alone")}))
        assert summary["batched_seeds"] == 2
        assert alone["selected_test_error"] < 25.0, alone  # about 6 here
        # Batched and single matrix products round differently: at most one test image apart.
        assert abs(summary["final_test_error"] - alone["final_test_error"]) <= 100.0 / 300 + 1e-9


# ---------------------------------------------------------------------------- 4. a task

LEXICON = {
    "NOUN": "cat dog bird fish horse child teacher river".split(),
    "VERB": "sees runs eats finds likes follows".split(),
    "OTHER": "the a quickly slowly and near".split(),
}
PATTERNS = (
    ("OTHER", "NOUN", "VERB", "OTHER", "NOUN"),
    ("NOUN", "VERB"),
    ("OTHER", "NOUN", "VERB", "OTHER", "OTHER", "NOUN"),
    ("NOUN", "OTHER", "NOUN", "VERB", "OTHER"),
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """60 / 20 / 20 short sentences, each word tagged by what it is (a noun, a verb, other)."""
    folder = tmp_path_factory.mktemp("corpus")
    draw = random.Random(0)
    for split, count in (("train", 60), ("dev", 20), ("test", 20)):
        lines = []
        for _ in range(count):
            lines.append(" ".join(f"{draw.choice(LEXICON[tag])}/{tag}" for tag in draw.choice(PATTERNS)))
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def tagging_config(corpus: Path, tmp_path: Path, method: str) -> dict[str, Any]:
    return {
        "experiment": "tagging",
        "data": {"name": "tagged", "dir": str(corpus)},
        "model": {"name": "tagger"},
        "method": {"name": method},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.01, "progress": False},
        "output_dir": str(tmp_path),
    }


def test_the_tagger_learns_every_token_with_the_methods_unchanged(examples, corpus, tmp_path):
    tags = [token.rpartition("/")[2] for token in (corpus / "test.txt").read_text().split()]
    majority_error = 100.0 * (1 - max(tags.count(t) for t in set(tags)) / len(tags))
    assert majority_error > 50.0  # about 61: guessing the commonest tag gets most tokens wrong

    for method in ("onehot", "label_smoothing"):
        summary = train(build_config(tagging_config(corpus, tmp_path, method)))
        assert summary["scoring"]["metric"] == "test_token_error"
        assert summary["class_names"] == ["NOUN", "OTHER", "VERB"]
        assert summary["selected_test_token_error"] < 10.0, summary  # about 1 here
        assert summary["final_dev_token_error"] < 10.0, summary
        # Neither method learns a label representation: the task's label_representation is saved.
        assert summary["representation_source"] == "mean softmax over the tokens of dev"
        assert (tmp_path / "tagging" / method / "seed0" / "label_representation.safetensors").is_file()

    # The comparison table reads the task's figure from the runs' summaries.
    runs = load_runs(tmp_path / "tagging")
    table = format_markdown(comparison_rows(runs), scoring=comparison_metric(runs))
    assert "| test token error % (selected) |" in table
    assert table.count("\n| onehot |") == 1 and table.count("\n| label_smoothing |") == 1
    report = build_report(tmp_path / "tagging", None).read_text(encoding="utf-8")
    assert "test token error %" in report


def test_the_task_gives_the_method_one_row_per_real_token(examples, corpus):
    dataset = data.load("tagged", DataRequest(dir=str(corpus)))
    task = examples.token_tagging.Tagging()
    inputs, targets = task.batch(dataset.train, torch.arange(5))
    features = torch.randn(*inputs.shape, 4)

    rows, labels = task.rows(features, targets)

    real = (inputs != 0).sum().item()
    assert rows.shape == (real, 4) and labels.shape == (real,)
    assert torch.equal(rows, features[inputs != 0]) and (labels >= 0).all()
    assert task.work(dataset.train, torch.arange(5)) == real


def test_a_method_that_cannot_serve_token_rows_is_refused(examples, corpus, tmp_path):
    with pytest.raises(ConfigError) as refused:
        build_config(tagging_config(corpus, tmp_path, "lwr"))
    message = str(refused.value)
    assert message.startswith("method 'lwr' cannot be the output layer of a token tagger: ")
    assert "soft label per training example" in message
    assert re.search(r"Use .*\bonehot\b", message) and "lwal" not in message


# ---------------------------------------------------------------------------- the page


def page_sections() -> dict[str, str]:
    """The text of each numbered section of the page (``## 1. A data set ...``), by the example
    file its "Files touched" line names."""
    text = PAGE.read_text(encoding="utf-8")
    sections = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        if re.match(r"\d\. ", part):
            named = re.findall(r"^Files touched: `examples/extending/(\w+)\.py` \(1\)$", part, flags=re.M)
            assert len(named) == 1, f"docs/extending.md: section {part.splitlines()[0]!r} names no one file"
            sections[named[0]] = part
    return sections


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def test_each_example_is_one_file_that_registers_what_it_shows(examples):
    for name, registered in REGISTERED.items():
        path = EXAMPLES / f"{name}.py"
        for registry, entry in registered:
            thing = registry.get(entry)
            assert Path(inspect.getfile(thing)) == path, (entry, inspect.getfile(thing))
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").partition(".")[0])
        assert imported <= IMPORTABLE, (name, imported - IMPORTABLE)


def test_the_page_lists_every_object_the_examples_import(examples):
    listed = re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)
    (touches,) = [part for part in listed if part.startswith("What an extender touches")]
    for name in EXAMPLE_FILES:
        tree = ast.parse((EXAMPLES / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labelemb"):
                for alias in node.names:
                    assert f"`{node.module}.{alias.name}" in touches, f"{name}.py: {node.module}.{alias.name}"


def test_the_page_shows_the_files_as_they_are(examples, tmp_path):
    sections = page_sections()
    assert sorted(sections) == sorted(EXAMPLE_FILES)
    for name, section in sections.items():
        source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
        blocks = fenced(section, "python")
        assert blocks, f"the section on {name}.py shows none of its code"
        for block in blocks:
            assert block in source, (
                f"docs/extending.md shows code that examples/extending/{name}.py lacks:\n{block}"
            )
        configs = fenced(section, "yaml")
        assert configs, f"the section on {name}.py shows no config"
        for block in configs:
            build_config({**yaml.safe_load(block), "output_dir": str(tmp_path)})
