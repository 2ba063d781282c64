"""Tensors read from safetensors files sit in PyTorch's own 64-byte aligned memory, so they compute
bit for bit like the tensors they were saved from (see labelemb.aligned)."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from labelemb.aligned import aligned
from labelemb.methods.tensor_files import read_tensor_file
from labelemb.rundir import TENSORS_FILE, RunDir


def test_an_unaligned_view_is_copied_and_an_aligned_tensor_kept():
    memory = torch.arange(40, dtype=torch.float32)
    view = memory[2:34].view(4, 8)  # 8 bytes past the allocation's start
    assert view.data_ptr() % 64 != 0
    copy = aligned(view)
    assert copy.data_ptr() % 64 == 0 and torch.equal(copy, view)
    assert aligned(memory) is memory


def test_label_representations_read_from_files_are_aligned(tmp_path):
    vectors = torch.randn(10, 24)
    save_file({"vectors": vectors, "x": torch.zeros(3)}, str(tmp_path / TENSORS_FILE))
    read = RunDir(tmp_path).read_tensors()
    assert all(t.data_ptr() % 64 == 0 for t in read.values())
    save_file({"vectors": vectors}, str(tmp_path / "v.safetensors"))
    one = read_tensor_file(tmp_path / "v.safetensors", "vectors")
    assert one.data_ptr() % 64 == 0 and torch.equal(one, vectors)
