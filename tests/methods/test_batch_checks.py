"""What a method checks of each batch, and what it keeps on the host so that a trainer's step reads
no device value: ``check_batches`` and :func:`trust_batches`, :class:`HostCount`, ``one_hot``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.host_reads import HostReads

from labelemb import methods
from labelemb.methods.host_count import HostCount
from labelemb.methods.rows import one_hot


def test_one_hot_is_torchs_for_labels_in_range_one_model_and_stacked():
    labels = torch.tensor([[0, 3, 2, 3], [1, 1, 0, 2]])
    assert torch.equal(one_hot(labels, 4), F.one_hot(labels, 4).bool())
    assert torch.equal(one_hot(labels[0], 5), F.one_hot(labels[0], 5).bool())
    with HostReads() as reads:
        one_hot(labels, 4)
    assert reads == []


def test_a_method_checks_each_batch_unless_trusted():
    head = methods.build("label_smoothing", in_features=3, num_classes=4)
    features, bad = torch.randn(5, 3), torch.tensor([0, 1, 9, 2, 3])
    assert head.check_batches
    with pytest.raises(methods.LabelRangeError, match=r"labels \[9\] are outside \[0, 4\)"):
        head(features, bad)
    with HostReads() as reads:
        head(features, torch.tensor([0, 1, 3, 2, 3]))
    assert reads, "a checking method reads its batch's range and finiteness on the host"
    methods.trust_batches(torch.nn.Sequential(head))  # reaches methods inside other modules
    assert not head.check_batches
    with HostReads() as reads:
        out = head(features, torch.tensor([0, 1, 3, 2, 3]))
    assert reads == []
    want = methods.build("label_smoothing", in_features=3, num_classes=4)
    want.load_state_dict(head.state_dict())
    assert torch.equal(out.loss, want(features, torch.tensor([0, 1, 3, 2, 3])).loss)


def test_host_count_reads_the_buffer_only_after_an_outside_write():
    counter = torch.zeros((), dtype=torch.int64)
    count = HostCount()
    assert count.read(counter) == 0
    with HostReads() as reads:
        for _ in range(3):
            count.add_one(counter)
        assert count.read(counter) == 3
    assert reads == []
    assert int(counter) == 3
    counter.copy_(torch.tensor(41))  # a loaded checkpoint writes in place
    assert count.read(counter) == 41
    assert count.read(torch.tensor(7)) == 7  # a replaced tensor (stacked seeds, another device)
    stacked = torch.tensor([5, 5, 5])
    assert count.read(stacked) == 5  # stacked seeds count together: the first entry


def test_the_nlp_warm_up_resumes_from_a_loaded_count():
    """A checkpoint's count of updates, loaded into a fresh method, is what the warm-up reads."""
    options = {"variant": "nlp", "soft_warmup": 3}
    trained = methods.build("label_embedding", in_features=4, num_classes=5, **options)
    features, labels = torch.randn(6, 4), torch.randint(0, 5, (6,))
    for _ in range(3):
        trained(features, labels)
    assert trained.loss_weights() == (1.0, 1.0)
    fresh = methods.build("label_embedding", in_features=4, num_classes=5, **options)
    assert fresh.loss_weights() == (1.0, 0.0)
    fresh.load_state_dict(trained.state_dict())
    assert fresh.loss_weights() == (1.0, 1.0)


def test_importing_the_methods_leaves_torchs_compiler_unloaded():
    """torch._dynamo costs over a second to import: the batch check opens it at its first use."""
    import subprocess
    import sys

    code = "import sys, labelemb.methods; print('torch._dynamo' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
