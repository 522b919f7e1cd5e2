"""One thread-count default for torch: the CPUs this process may really use, never more.

``available_cpus()`` = min(CPU affinity, cgroup CPU quota): Binder and Docker limit CPUs by a cgroup quota that
``os.cpu_count()`` and torch's own default do not see. ``default_threads()`` = that, or $NCLAB_THREADS /
$OMP_NUM_THREADS when set (capped at it). ``configure_threads()`` applies it once per process (nclab's torch
modules call it on import): it only lowers torch's count, leaves $OMP_NUM_THREADS to torch, and a user's
``torch.set_num_threads`` after importing nclab stands.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "default_threads", "cpu_quota", "configure_threads"]

_configured = False


def cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``),
    or None when unlimited or unreadable."""
    base = Path(root)
    try:
        text = (base / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return float(text[0]) / float(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = float((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = float((base / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _env_threads(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        n = int(value.split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


def available_cpus(root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: min(len(sched_getaffinity), ⌈cgroup quota⌉), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS / Windows have no affinity call
        n = os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def default_threads(root: str = "/sys/fs/cgroup") -> int:
    """min($NCLAB_THREADS or $OMP_NUM_THREADS if set, ``available_cpus()``): never more than the CPUs."""
    cpus = available_cpus(root)
    for name in ("NCLAB_THREADS", "OMP_NUM_THREADS"):
        n = _env_threads(name)
        if n is not None:
            return min(n, cpus)
    return cpus


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads; returns the count in use. ``n`` given: use it (an explicit choice).
    ``n=None`` (what nclab's torch modules run on import): once per process, lower torch's count to
    ``default_threads()`` — unless $OMP_NUM_THREADS is set (torch already follows it) — and never again,
    so a later ``torch.set_num_threads`` by the user stands. Notebooks call ``nclab.configure_threads()``."""
    global _configured
    import torch

    if n is not None:
        from nclab._checks import integer

        n = integer("n", n, 1, 4096)
        torch.set_num_threads(n)
        _configured = True
        return n
    if not _configured:
        _configured = True
        if _env_threads("NCLAB_THREADS") is not None or _env_threads("OMP_NUM_THREADS") is None:
            target = default_threads()
            if torch.get_num_threads() > target or _env_threads("NCLAB_THREADS") is not None:
                torch.set_num_threads(target)
    return torch.get_num_threads()
