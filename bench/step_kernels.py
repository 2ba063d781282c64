"""What one trainer step launches: kernels (or, on a CPU, operators that do work) and host reads.

    LABELEMB_DATA=../shared/data python bench/step_kernels.py                  # MNIST MLP, CPU or CUDA
    LABELEMB_DATA=../shared/data python bench/step_kernels.py --device cuda --methods onehot \\
        label_embedding label_embedding:fast_path=fused onehot:train.cuda_graphs=true

A step is the trainer's own (:class:`labelemb.training.single.Single`, built as bench/overhead.py
builds it, specs included). After a warm-up, ``--steps`` steps run under ``torch.profiler``; per
step it counts, on CUDA, the kernels launched (``cudaLaunchKernel`` and its kin, graph launches
counted once) and the host synchronisations (``cudaStreamSynchronize``, ``cudaDeviceSynchronize``,
device-to-host copies); on the CPU, the aten operators that do work (views and metadata left out:
on a GPU each would be a kernel launch) and the host reads (``aten::_local_scalar_dense``; torch's
fused Adam on a CPU reads each parameter's step count, a host tensor there: one read per
parameter, none on CUDA, where the count lives on the device). These
are counts, not times: the same on a busy machine. Code that ``torch.compile`` fused runs as its
own kernels, which the CPU count sees only as the operators around them (``fast_path=fused``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch
from overhead import SETTINGS, build_runs

from labelemb.data import Split, load_dataset
from labelemb.training import epoch_permutation

#: Operators that only make a view or read metadata: no kernel on any device.
NO_WORK = {
    "aten::view", "aten::t", "aten::detach", "aten::select", "aten::slice", "aten::unsqueeze",
    "aten::squeeze", "aten::expand", "aten::unbind", "aten::lift_fresh", "aten::as_strided",
    "aten::transpose", "aten::reshape", "aten::_unsafe_view", "aten::alias", "aten::permute",
    "aten::empty", "aten::empty_strided", "aten::numpy_T", "aten::result_type", "aten::to",
    "aten::_reshape_alias", "aten::chunk", "aten::split", "aten::narrow", "aten::resolve_conj",
    "aten::resolve_neg", "aten::contiguous", "aten::_has_compatible_shallow_copy_type",
}  # fmt: skip
LAUNCHES = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaGraphLaunch",
)
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def count_step(run, split: Split, order: torch.Tensor, steps: int, batch_size: int, cuda: bool) -> dict:
    """Per step: kernels (CUDA) or working operators (CPU), and host reads or syncs."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        for s in range(steps):
            run.step(split, order[s * batch_size : (s + 1) * batch_size][None])
        if cuda:
            torch.cuda.synchronize()
    names = Counter(event.name for event in profile.events())
    if cuda:
        launches = sum(names[name] for name in LAUNCHES)
        syncs = sum(names[name] for name in SYNCS) - 1  # the one after the steps
        copies = sum(n for name, n in names.items() if name == "cudaMemcpyAsync")
        return {"kernels": launches / steps, "host_syncs": syncs / steps, "copies": copies / steps}
    working = sum(n for name, n in names.items() if name.startswith("aten::") and name not in NO_WORK)
    return {"operators": working / steps, "host_reads": names["aten::_local_scalar_dense"] / steps}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["mlp"], choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=["onehot", "label_embedding"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    report = {"device": args.device, "torch": torch.__version__, "models": {}}
    for model_name in args.models:
        dataset = load_dataset("mnist")
        batch_size = SETTINGS[model_name][1]
        runs = build_runs(model_name, dataset, args.methods, args.device)
        split = Split(dataset.train.images.to(args.device), dataset.train.labels.to(args.device))
        order = epoch_permutation(0, 0, len(split)).to(args.device)
        figures = {}
        for spec, run in runs.items():
            for s in range(5):  # warm-up: the first steps set up (and compile) what later ones reuse
                run.step(split, order[s * batch_size : (s + 1) * batch_size][None])
            figures[spec] = count_step(
                run, split, order, args.steps, batch_size, args.device.startswith("cuda")
            )
            print(f"{model_name:8} {spec:50} " + "  ".join(f"{k} {v:.1f}" for k, v in figures[spec].items()))
        report["models"][model_name] = figures
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
