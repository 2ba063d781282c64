"""No training step reads a device value on the host: every method, one run and seeds side by side.

On a GPU such a read makes the host wait for the device at every step (the step then costs its
launches and waits, not its kernels). The reads are caught on the CPU through torch's dispatch and
Python entry points (tests/host_reads.py), so CI checks what a GPU would pay for; where CUDA is
present the same steps run there too, under torch's own sync detector.
"""

from __future__ import annotations

import pytest
import torch
from host_reads import HostReads
from safetensors.torch import save_file

from labelemb import methods
from labelemb.train import Classification
from labelemb.train.batches import rows_per_example
from labelemb.train.build import build_run
from labelemb.train.single import Single
from labelemb.train.stacked import Stacked

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
]
IDS = [" ".join([name, *(option[:24] for option in options)]) for name, options in EVERY_METHOD]
STEPS = 3


def test_the_host_read_test_covers_every_registered_method():
    classes = {methods.method_class(name) for name in methods.available()}
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


@pytest.mark.parametrize("name, options", EVERY_METHOD, ids=IDS)
def test_a_step_of_one_run_reads_nothing_on_the_host(small_config, digits, tables, name, options):
    device = torch.device("cpu")
    (run,) = _runs(small_config, digits, name, options, tables, [0], device)
    assert _steps(Single(run, Classification(), device), digits, device) == []


@pytest.mark.parametrize("name, options", EVERY_METHOD, ids=IDS)
def test_a_step_of_seeds_side_by_side_reads_nothing_on_the_host(small_config, digits, tables, name, options):
    device = torch.device("cpu")
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
