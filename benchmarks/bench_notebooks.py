"""Every notebook on Binder's budget: one CPU (``taskset -c 0``), wall time and peak RSS (run by hand, not in CI).

Each notebook runs as `python -m papermill NB OUT -p smoke S` pinned to CPU 0 (nclab's thread setting then
gives torch one thread, as on Binder). Peak RSS is the largest process of the run (papermill's kernel
included: ``os.wait4`` reports the child's and its reaped descendants' maximum). The in-process baseline is a
notebook with one empty cell run the same way (kernel start + papermill), so "× bare" says how much the
notebook itself costs over starting a kernel. Targets (issue 15): smoke < 30 s, full < 120 s, RSS < 1.5 GB.

    python benchmarks/bench_notebooks.py [NAMES ...] [--full] [--smoke]   (default: smoke then full, all)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TARGET = {True: 30.0, False: 120.0}


def pinned_run(nb: Path, out: Path, smoke: bool) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit status) of papermill on ``nb`` pinned to CPU 0."""
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "papermill", str(nb), str(out), "-p", "smoke", str(smoke),
           "--cwd", str(nb.parent), "--no-progress-bar"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NCLAB_THREADS")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode()[-1500:])
    proc.stderr.close()
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="parts of notebook names (default: all)")
    parser.add_argument("--smoke", action="store_true", help="only smoke runs")
    parser.add_argument("--full", action="store_true", help="only full-size runs")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the runs to one CPU")
    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    notebooks = [nb for nb in notebooks if not args.names or any(n in nb.stem for n in args.names)]
    modes = [True] if args.smoke else [False] if args.full else [True, False]
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.ipynb"
        cell = nbformat.v4.new_code_cell("smoke = True", metadata={"tags": ["parameters"]})
        nb = nbformat.v4.new_notebook(cells=[cell])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, bare)
        base, base_rss, _ = pinned_run(bare, Path(tmp) / "bare-out.ipynb", True)
        print(f"bare kernel + papermill on one CPU: {base:.1f} s, {base_rss:.0f} MB | load {os.getloadavg()[0]:.1f}")
        print(f"{'notebook':32s} {'mode':>5s} {'wall s':>7s} {'× bare':>7s} {'/ target':>9s} {'peak RSS MB':>12s}")
        for smoke in modes:
            for path in notebooks:
                wall, rss, rc = pinned_run(path, Path(tmp) / path.name, smoke)
                flag = "" if rc == 0 else "  FAILED"
                print(f"{path.stem:32s} {'smoke' if smoke else 'full':>5s} {wall:7.1f} {wall / base:7.1f} "
                      f"{wall / TARGET[smoke]:9.2f} {rss:12.0f}{flag}", flush=True)
        print(f"load at the end {os.getloadavg()[0]:.1f} (a busy machine inflates every wall time)")


if __name__ == "__main__":
    main()
