"""How long the command line takes to answer when it trains nothing: ``labelemb --help`` and a
mistyped method (``labelemb train --method label_embeding``), each the best of ``--rounds`` fresh
processes, against a bare ``python -c pass`` and ``python -c "import torch"`` timed in the same
rounds (alternating, so that all see the same machine state).

    python bench/cli_start.py                 # 7 rounds
    python bench/cli_start.py --rounds 15 --out cli_start.json

Goals on a 2-core machine when idle: ``--help`` under 1 s, the mistake under 2 s. The ratios to
``import torch`` say what the command saves by not importing it; quote figures from an idle
machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "labelemb --help": [sys.executable, "-m", "labelemb", "--help"],
    "labelemb train --method label_embeding": [
        sys.executable,
        "-m",
        "labelemb",
        "train",
        "--method",
        "label_embeding",
    ],
}


def seconds(command: list[str]) -> float:
    """Wall seconds of one fresh process running ``command``, its output discarded."""
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per command (default 7)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    options = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(options.rounds):
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    best = {name: min(values) for name, values in times.items()}
    torch_import = best["python -c 'import torch'"]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; best of {options.rounds} rounds")
    for name, value in best.items():
        print(f"{name:45s} {value:6.3f} s   {value / torch_import:5.2f} x import torch")
    if options.out:
        with open(options.out, "w", encoding="utf-8") as handle:
            json.dump({"rounds": options.rounds, "best_seconds": best}, handle, indent=1)


if __name__ == "__main__":
    main()
