"""The command line picks its threads by how busy the cores are, so its numbers must not depend
on the thread count: it asks MKL for thread-count-independent matrix products (MKL_CBWR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from labelemb.training.threads import REPRODUCIBLE_MKL


def run_with_threads(tmp_path, threads: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}  # the command line sets it itself
    env["OMP_NUM_THREADS"] = str(threads)
    out = tmp_path / f"threads{threads}"
    args = ["train", "--method", "onehot", "--no-progress", "--output-dir", str(out)]
    args += ["model.hidden=[32]", "train.epochs=2", "train.eval_every=300"]
    code = f"import sys; from labelemb.cli import main; sys.exit(main({args!r}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = (out / "demo-digits-mlp" / "onehot" / "seed0" / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.endswith("seconds")} for line in lines]


def test_a_run_gives_the_same_numbers_with_one_thread_and_two(tmp_path):
    """Before: on an AVX-512 AMD EPYC the onehot head's weight gradient (a 10 x 100 by 100 x 32
    product) rounded differently with 1 and 2 threads, and every check's figures followed."""
    one, two = run_with_threads(tmp_path, 1), run_with_threads(tmp_path, 2)
    assert len(one) == 8 and one == two


def test_the_command_line_asks_mkl_for_its_strict_mode_and_leaves_a_user_s_choice(tmp_path):
    missing = str(tmp_path / "no-such-run")
    code = f"import os; from labelemb.cli import main; main(['analyze', {missing!r}]); "
    code += "print(os.environ.get('MKL_CBWR'))"
    for given, want in ((None, REPRODUCIBLE_MKL), ("COMPATIBLE", "COMPATIBLE")):
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
        if given is not None:
            env["MKL_CBWR"] = given
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert done.stdout.strip().splitlines()[-1] == want, done.stderr


def test_in_strict_mode_a_small_product_is_the_same_with_one_thread_and_two():
    code = (
        "import torch; g = torch.Generator().manual_seed(0); a = torch.randn(10, 100, generator=g); "
        "b = torch.randn(100, 32, generator=g); torch.set_num_threads(1); one = a @ b; "
        "torch.set_num_threads(2); print(torch.equal(one, a @ b))"
    )
    assert torch.backends.mkl.is_available(), "this torch has no MKL, whose strict mode the test checks"
    env = {**os.environ, "MKL_CBWR": REPRODUCIBLE_MKL}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
