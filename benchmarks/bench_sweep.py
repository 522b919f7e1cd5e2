"""Sweep speed as ratios (run by hand, not in CI):

1. overhead per point: `nclab sweep NB --seeds 0 --workers 1` (cluster start included) / `nclab run NB --seed 0`;
2. speed-up: 2 notebooks × 4 seeds with `--workers 1` / the same with `--workers 2`.

    python benchmarks/bench_sweep.py [NB1 NB2] [--seeds 0-3]

Prints wall times, the ratios and the machine's load average (a shared machine inflates both sides).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nclab.cli", *args], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"nclab {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=["01", "02"])
    parser.add_argument("--seeds", default="0-3")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        nb = args.names[0]
        print(f"load average before: {os.getloadavg()}")
        run = timed(["run", nb, "--smoke", "--seed", "0", "--out", str(tmp / "run")])
        one = timed(["sweep", nb, "--smoke", "--seeds", "0", "--workers", "1", "--quiet", "--out", str(tmp / "one")])
        print(f"one point of {nb}: nclab run {run:.1f} s, nclab sweep {one:.1f} s -> overhead ratio {one / run:.2f}")
        w1 = timed(["sweep", *args.names, "--smoke", "--seeds", args.seeds, "--workers", "1", "--quiet",
                    "--out", str(tmp / "w1")])
        w2 = timed(["sweep", *args.names, "--smoke", "--seeds", args.seeds, "--workers", "2", "--quiet",
                    "--out", str(tmp / "w2")])
        print(f"{' '.join(args.names)} x seeds {args.seeds}: 1 worker {w1:.1f} s, 2 workers {w2:.1f} s "
              f"-> speed-up {w1 / w2:.2f}")
        print(f"load average after: {os.getloadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
