"""No training step reads a device value on the host: every method, one run and seeds side by side.

On a GPU such a read makes the host wait for the device at every step (the step then costs its
launches and waits, not its kernels). The reads are caught on the CPU through torch's dispatch and
Python entry points (tests/helpers/host_reads.py), so CI checks what a GPU would pay for; where CUDA is
present the same steps run there too, under torch's own sync detector.
"""

from __future__ import annotations

import pytest
import torch
from helpers.batched_checks import train_batched
from helpers.host_reads import HostReads
from safetensors.torch import save_file

from labelemb import methods
from labelemb.callbacks import Callback
from labelemb.training import Classification, build_run, train
from labelemb.training.epoch_order import rows_per_example
from labelemb.training.single import Single
from labelemb.training.stacked import Stacked

pytestmark = pytest.mark.usefixtures("one_thread")

#: Every method class, in a setting where each of its terms and state updates is at work.
EVERY_METHOD = [
    ("onehot", ()),
    ("label_smoothing", ("method.epsilon=0.2",)),
    ("confidence_penalty", ("method.beta=0.3",)),
    ("tfkd_reg", ()),
    ("label_embedding", ("method.alpha=0.0",)),
    ("label_embedding", ("method.alpha=0.0", "method.fast_path=false")),
    ("label_embedding", ("method.variant=paper",)),
    ("label_embedding", ("method.variant=nlp", "method.soft_warmup=0")),
    ("label_embedding", ("method.compressed_dim=3", "method.alpha=0.0")),
    ("label_embedding_fixed", ("method.embedding={embedding}",)),
    ("ols", ()),
    ("lwr", ("method.k=1",)),
    ("lwal", ()),
    ("static_label", ("method.vectors={vectors}",)),
    ("focal", ()),
    ("flsd53", ()),
    ("mbls", ("method.margin=1.0",)),
    ("logitnorm", ()),
    ("label_relaxation", ()),
    ("zipf_ls", ()),
    ("lspp", ()),
    ("lcm", ()),
    ("pskd", ()),
    ("cskd", ()),
    ("maxsup", ()),
    ("adafocal", ()),
    ("acls", ("method.margin=1.0",)),
    ("dual_focal", ()),
    ("mdca", ("method.beta=2.0",)),
    ("elogitnorm", ()),
    ("gce", ()),
    ("sce", ()),
    ("nce_rce", ()),
    ("bootstrap_soft", ()),
    ("bootstrap_hard", ()),
    ("nls", ("method.warmup_epochs=1",)),
    ("elr", ()),
    ("coteaching", ("method.forget_rate=0.4", "method.gradual_epochs=0")),
    ("forward_t", ("method.warmup_epochs=1",)),
    ("forward_t", ("method.noise_transition=" + str((0.5 * torch.eye(10) + 0.05).tolist()),)),
]
IDS = [" ".join([name, *(option[:24] for option in options)]) for name, options in EVERY_METHOD]
STEPS = 3
#: The CPU everywhere (CI); CUDA too where this machine has it.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def test_the_host_read_test_covers_every_registered_method():
    classes = {methods.method_class(name) for name in methods.serving("class")}
    assert classes <= {methods.method_class(name) for name, _ in EVERY_METHOD}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    save_file({"embedding": 3.0 * torch.eye(10) + 0.1 * torch.rand(10, 10)}, str(folder / "e.safetensors"))
    vectors = torch.nn.functional.normalize(torch.randn(10, 6), dim=-1)
    save_file({"vectors": vectors}, str(folder / "v.safetensors"))
    return {"embedding": folder / "e.safetensors", "vectors": folder / "v.safetensors"}


def _runs(small_config, digits, name, options, tables, seeds, device):
    overrides = [f"method.name={name}", *(option.format(**tables) for option in options)]
    configs = [small_config(*overrides, seed=seed) for seed in seeds]
    return [build_run(config, digits, device, Classification()) for config in configs]


def _steps(layout, digits, device) -> list[str]:
    """Host reads in ``STEPS`` steps of ``layout`` after its first, which may read once what it
    keeps on the host from then on (label_embedding's count of updates, after the seeds' tensors
    were stacked into new ones)."""
    layout.optimise()
    split = digits.train.to(device)
    orders = layout.epoch_orders(0, split, 100).to(device)
    width = 100 * rows_per_example(layout.runs[0].method)  # cskd draws pairs
    found = []
    for batch in range(STEPS + 1):
        index = orders[:, batch * width : (batch + 1) * width]
        with HostReads() as reads:
            layout.step(split, index)
        found += reads if batch else []
    return found


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, options", EVERY_METHOD, ids=IDS)
def test_a_step_of_one_run_reads_nothing_on_the_host(small_config, digits, tables, name, options, device):
    device = torch.device(device)
    (run,) = _runs(small_config, digits, name, options, tables, [0], device)
    assert _steps(Single(run, Classification(), device), digits, device) == []


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, options", EVERY_METHOD, ids=IDS)
def test_a_step_of_seeds_side_by_side_reads_nothing_on_the_host(
    small_config, digits, tables, name, options, device
):
    device = torch.device(device)
    runs = _runs(small_config, digits, name, options, tables, [0, 1], device)
    assert _steps(Stacked(runs, Classification(), device), digits, device) == []


def test_the_detector_sees_each_kind_of_host_read():
    """The detector itself: each kind of read, made from labelemb's code, is caught."""
    from labelemb.methods import finite

    x = torch.tensor([1.0, float("nan")])
    with HostReads() as reads:
        finite.clean_batch(torch.tensor([0, 1]), 2, (x,))  # .tolist() inside labelemb
    assert reads and "tolist" in reads[0], reads
    with HostReads() as reads:
        x.tolist()  # the test's own read: not labelemb's
    assert reads == []


class _StepWindows(Callback):
    """Host reads between one step's end and the next's, in the whole loop (its counters, the
    batches' slicing, the terms summed), leaving out the windows that hold a check or an epoch end."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.window: HostReads | None = None

    def _open(self, keep: bool) -> None:
        self.window, self.keep = HostReads(), keep
        self.reads = self.window.__enter__()

    def _close(self) -> None:
        if self.window is not None:
            self.window.__exit__(None, None, None)
            self.kept += self.reads if self.keep else []
            self.window = None

    def on_run_start(self, runs):
        self._open(keep=False)  # the first step may read once what it keeps on the host after

    def on_epoch_end(self, runs):
        # The methods' epoch-end updates run just before: the step that ended the epoch is left out.
        self.keep = False

    def on_step(self, runs):
        self._close()
        self._open(keep=True)

    def on_check(self, runs):
        self.window.__exit__(None, None, None)  # this window held a check: not a step's
        self.window = None
        self._open(keep=True)

    def on_loop_end(self, runs):
        self.window.__exit__(None, None, None)
        self.window = None


@pytest.mark.parametrize("name", ["onehot", "label_embedding", "lwr"])
@pytest.mark.parametrize("batched", [False, True], ids=["one-run", "seeds-side-by-side"])
def test_the_loop_around_the_steps_reads_nothing_on_the_host(small_config, digits, name, batched):
    windows = _StepWindows()
    configs = [small_config(f"method.name={name}", "train.eval_every=500", seed=s) for s in (0, 1)]
    if batched:
        train_batched(configs, dataset=digits, callbacks=[windows])
    else:
        train(configs[0], dataset=digits, callbacks=[windows])
    assert windows.kept == []
