"""``nclab run`` with several notebooks at once: each runs in its own (spawned) worker process, ``jobs`` at a time,
and its kernel gets ``threads`` = CPUs // jobs torch/BLAS threads, so two notebooks on two cores do not fight over
them. Ctrl-C interrupts the running notebooks (their older files are kept, as ``run_notebook`` guarantees)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

GRACE = 20.0  # seconds the interrupted notebooks get to clean up before Ctrl-C is passed on to their workers,
# and again before a worker that still has not returned is terminated (its staging folder may then stay behind)


def _worker_init(threads: int) -> None:
    """Worker process: ``threads`` threads for its kernels; Ctrl-C ignored while idle (a task re-enables it)."""
    for var in ("NCLAB_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_one(path: Path, out: Path, smoke: bool, seed: int, kernel: str | None) -> dict:
    from nclab.cli import run_notebook

    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_notebook(path, out, smoke=smoke, seed=seed, kernel=kernel, progress=False)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_parallel(paths: list[Path], out: Path, *, smoke: bool, seed: int, kernel: str | None, jobs: int,
                 threads: int, runs: list[dict], done=None) -> list[dict]:
    """Run ``paths`` ``jobs`` at a time; append each result to ``runs`` as it finishes and call ``done(result)``.
    Returns ``runs`` in the order of ``paths``. KeyboardInterrupt (Ctrl-C, or a notebook interrupted) cancels what
    has not started, lets the running notebooks clean up, then propagates; ``runs`` holds the finished ones."""
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                               initargs=(threads,))
    futures = [pool.submit(_run_one, p, out, smoke, seed, kernel) for p in paths]
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                runs.append(fut.result())
                if done is not None:
                    done(runs[-1])
    except KeyboardInterrupt:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        running = [f for f in futures if not f.done()]
        if wait(running, timeout=GRACE).not_done:  # only this process got Ctrl-C: pass it on to the workers
            _signal_alive(procs, lambda proc: os.kill(proc.pid, signal.SIGINT))
            if wait(running, timeout=GRACE).not_done:  # a worker stuck in its kernel's shutdown: stop it
                _signal_alive(procs, lambda proc: proc.terminate())
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    order = {p.stem: i for i, p in enumerate(paths)}
    runs.sort(key=lambda r: order.get(r["notebook"], len(order)))
    return runs


def _signal_alive(procs, send) -> None:
    for proc in procs:
        if proc.is_alive():
            try:
                send(proc)
            except ProcessLookupError:  # it ended meanwhile
                pass


def run_reporting(paths: list[Path], out: Path, *, smoke: bool, seed: int, kernel: str | None, jobs: int,
                  cpus: int, runs: list[dict]) -> list[dict]:
    """``run_parallel`` with CPUs // jobs threads per kernel, printing a line as each notebook ends."""
    threads = max(1, cpus // jobs)
    print(f"{len(paths)} notebooks ({'smoke' if smoke else 'full'}, seed {seed}), {jobs} at a time, {threads} "
          f"thread{'s' * (threads > 1)} each ...", flush=True)

    def report(r: dict) -> None:
        print(f"[{len(runs)}/{len(paths)}] {r['notebook']}: {r['seconds']:.1f} s"
              + (f", FAILED: {r['error']}" if r["error"] else ""), flush=True)

    return run_parallel(paths, out, smoke=smoke, seed=seed, kernel=kernel, jobs=jobs, threads=threads, runs=runs,
                        done=report)
