"""The output layer at vocabulary scale: activation memory and time, label_embedding against plain CE.

    python bench/vocab.py                         # every size, memory then time (about 30 min on 2 cores)
    python bench/vocab.py --tokens 2048 --vocab 8000 --dims 64 --what time --rounds 3
    python bench/vocab.py --json vocab.json       # also write the figures

Heads, on the same features ``h`` (N x d, d = 512, requiring a gradient as a decoder's would):

- ``plain``: ``F.cross_entropy(nn.Linear(d, V)(h), y)`` through autograd, the reference;
- ``onehot``: labelemb's onehot, chunked (the default ``chunk_size``) and ``onehot-whole`` (one chunk:
  the unchunked path, to show what chunking costs it);
- ``label_embedding``: ``variant="nlp"``, ``compressed_dim=k``, soft term on (every term computed);
- ``torch_linear_ce``: torch's own ``F.linear_cross_entropy`` (where this torch has it), and
  ``liger``: Liger-Kernel's fused linear cross-entropy (where it is installed: ``pip install
  liger-kernel``, a GPU's), timed beside the others: the fused kernels users already have.

``--dtype bfloat16`` runs every head's features and weights in bf16 (the fused kernels' own setting).

Labels are drawn from a Zipf law over the V labels (p(r) ~ 1/r, as word frequencies roughly are),
so the number of distinct labels U in a batch is what a text batch has; the table gives U.

**Memory** (``--what memory``): each head and size runs in a fresh process with glibc's
``MALLOC_MMAP_THRESHOLD_`` at 64 KiB, so that large tensors are mmap'd and freed memory leaves the
process. After one warm-up step (parameter gradients then exist, as in training), the peak
resident set is reset (``/proc/self/clear_refs``) and one forward+backward runs; its activation
memory is the peak resident set during it minus the resident set before it. On CUDA,
``torch.cuda.max_memory_allocated`` over the same step, minus what was allocated before it. Both
add the buffers a head keeps from one step to the next (label_embedding's chunk buffers,
``kept_buffer_bytes``): they were there before the step, and are memory only its steps need.

**Time** (``--what time``): one process, every head in turn for ``--rounds`` rounds after a warm-up,
the median forward+backward time of each. Ratios are against ``plain`` in the same run, next to
the ratio of counted FLOPs: plain 6 N d V; label_embedding 6 N d V (o1) + 4 N d V (o2, no input
gradient) + 6 U k V (e for the U distinct labels: forward and both gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from labelemb.methods import LabelEmbedding, OneHot

FEATURES = 512
HEADS = ("plain", "onehot", "onehot-whole", "label_embedding")
#: Other libraries' fused heads, timed where this machine has them (:func:`library_heads`).
LIBRARY_HEADS = ("torch_linear_ce", "liger")


def library_heads(device: str) -> tuple[str, ...]:
    """The fused heads of other libraries this machine can run on ``device``."""
    heads = ["torch_linear_ce"] if hasattr(F, "linear_cross_entropy") else []
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss  # noqa: F401
    except ImportError:
        pass
    else:
        heads += ["liger"] if device.startswith("cuda") else []
    return tuple(heads)


#: Not timed by default: label_embedding computed in one chunk (what it cost before chunking).
WHOLE = "label_embedding-whole"


def zipf_labels(tokens: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """``tokens`` labels drawn with probability proportional to 1 / rank over ``vocab`` labels."""
    weights = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    return torch.multinomial(weights, tokens, replacement=True, generator=torch.Generator().manual_seed(seed))


def build_step(head: str, tokens: int, vocab: int, dim: int, device: str, dtype: torch.dtype = torch.float32):
    """A closure running one forward+backward of ``head`` on a fixed batch, and one giving the bytes
    the head keeps from step to step besides its parameters and their gradients."""
    torch.manual_seed(0)
    h = torch.randn(tokens, FEATURES, device=device, dtype=dtype, requires_grad=True)
    labels = zipf_labels(tokens, vocab).to(device)
    if head in ("plain", *LIBRARY_HEADS):
        layer = torch.nn.Linear(FEATURES, vocab).to(device, dtype)
        loss = library_loss(head, layer)

        def step() -> None:
            loss(h, labels).backward()

        return step, lambda: 0
    if head.startswith("onehot"):
        method = OneHot(FEATURES, vocab, chunk_size=tokens if head == "onehot-whole" else None)
    else:
        chunk_size = tokens if head == WHOLE else None
        method = LabelEmbedding(
            FEATURES, vocab, variant="nlp", compressed_dim=dim, soft_warmup=0, chunk_size=chunk_size
        )
    method.to(device, dtype)

    def step() -> None:
        method(h, labels).loss.backward()

    return step, lambda: getattr(method, "kept_buffer_bytes", 0)


def library_loss(head: str, layer: torch.nn.Linear):
    """``loss(h, labels)`` of plain cross-entropy through autograd, or of a library's fused head."""
    if head == "torch_linear_ce":
        return lambda h, y: F.linear_cross_entropy(h, layer.weight, y, linear_bias=layer.bias)
    if head == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        fused = LigerFusedLinearCrossEntropyLoss()
        return lambda h, y: fused(layer.weight, h, y, layer.bias)
    return lambda h, y: F.cross_entropy(layer(h), y)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_memory(head: str, tokens: int, vocab: int, dim: int, device: str, dtype: torch.dtype) -> int:
    """Bytes of activation memory of one forward+backward (run this in a fresh process), the
    buffers a head keeps between steps included: they exist only for its steps."""
    step, kept_bytes = build_step(head, tokens, vocab, dim, device, dtype)
    step()  # warm-up: parameter gradients now exist, as in training
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before + kept_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM)
    before = _rss_kib("VmRSS")
    step()
    return (_rss_kib("VmHWM") - before) * 1024 + kept_bytes()


def memory_in_fresh_process(head: str, tokens: int, vocab: int, dim: int, device: str, dtype: str) -> int:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    args = [
        sys.executable,
        __file__,
        "--one-memory",
        head,
        str(tokens),
        str(vocab),
        str(dim),
        "--device",
        device,
        "--dtype",
        dtype,
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory of {head} N={tokens} V={vocab} k={dim} failed:\n{done.stderr}")
    return int(done.stdout.split()[-1])


def time_heads(
    heads: tuple[str, ...], tokens: int, vocab: int, dim: int, device: str, rounds: int, dtype: torch.dtype
) -> dict[str, float]:
    """Median seconds of one forward+backward per head, all heads timed in turn each round."""
    steps = {head: build_step(head, tokens, vocab, dim, device, dtype)[0] for head in heads}
    seconds: dict[str, list[float]] = {head: [] for head in heads}

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for step in steps.values():
        step()
    for _ in range(rounds):
        for head, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            seconds[head].append(time.perf_counter() - start)
    return {head: statistics.median(values) for head, values in seconds.items()}


def counted_flop_ratio(tokens: int, vocab: int, dim: int, distinct: int) -> float:
    plain = 6 * tokens * FEATURES * vocab
    return (plain + 4 * tokens * FEATURES * vocab + 6 * distinct * dim * vocab) / plain


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--vocab", type=int, nargs="+", default=[8000, 20000, 50000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512], help="compressed_dim k")
    parser.add_argument("--what", choices=["memory", "time", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--one-memory", nargs=4, metavar=("HEAD", "N", "V", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_memory:
        head, tokens, vocab, dim = args.one_memory
        print(
            measure_memory(head, int(tokens), int(vocab), int(dim), args.device, getattr(torch, args.dtype))
        )
        return

    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}, {args.dtype}, d = {FEATURES}"
    )
    results = []
    for tokens in args.tokens:
        for vocab in args.vocab:
            distinct = int(zipf_labels(tokens, vocab).unique().numel())
            for index, dim in enumerate(args.dims):
                row = {"N": tokens, "V": vocab, "k": dim, "U": distinct}
                # plain's and onehot's memory do not depend on k: measured once per (N, V)
                heads = HEADS + library_heads(args.device) if index == 0 else ("label_embedding",)
                if args.what in ("memory", "both"):
                    for head in heads:
                        row[f"mem_{head}"] = memory_in_fresh_process(
                            head, tokens, vocab, dim, args.device, args.dtype
                        )
                if args.what in ("time", "both"):
                    # timed beside plain for each k; the onehot heads once per (N, V)
                    timed = HEADS + library_heads(args.device) if index == 0 else ("plain", "label_embedding")
                    dtype = getattr(torch, args.dtype)
                    seconds = time_heads(timed, tokens, vocab, dim, args.device, args.rounds, dtype)
                    row.update({f"s_{head}": value for head, value in seconds.items()})
                    row["flop_ratio"] = counted_flop_ratio(tokens, vocab, dim, distinct)
                if index:
                    first = results[-1]
                    row.update(
                        {
                            key: first[key]
                            for key in first
                            if key.startswith(("mem_", "s_")) and key not in row
                        }
                    )
                results.append(row)
                print(format_row(row), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": args.device,
                    "dtype": args.dtype,
                    "threads": torch.get_num_threads(),
                    "results": results,
                },
                indent=2,
            )
        )


def format_row(row: dict) -> str:
    parts = [f"N={row['N']:>5} V={row['V']:>6} k={row['k']:>3} U={row['U']:>5}"]
    if "mem_plain" in row:
        plain = row["mem_plain"]
        parts.append(
            f"memory MB plain {plain / 2**20:7.0f} onehot {row['mem_onehot'] / 2**20:6.0f} "
            f"label_embedding {row['mem_label_embedding'] / 2**20:6.0f} "
            f"(x{row['mem_label_embedding'] / plain:.2f} of plain)"
        )
    if "s_plain" in row:
        ratio = row["s_label_embedding"] / row["s_plain"]
        parts.append(
            f"time s plain {row['s_plain']:.3f} label_embedding {row['s_label_embedding']:.3f} "
            f"ratio {ratio:.2f} counted {row['flop_ratio']:.2f} (x{ratio / row['flop_ratio']:.3f}); "
            f"onehot chunked/whole {row['s_onehot'] / row['s_onehot-whole']:.3f}"
        )
    for head in LIBRARY_HEADS:
        if f"mem_{head}" in row:
            parts.append(f"{head} memory {row[f'mem_{head}'] / 2**20:.0f} MB")
        if f"s_{head}" in row:
            parts.append(
                f"{head} {row[f's_{head}']:.3f} s ({row[f's_{head}'] / row['s_plain']:.2f} of plain)"
            )
    return " | ".join(parts)


if __name__ == "__main__":
    main()
