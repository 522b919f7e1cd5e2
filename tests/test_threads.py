"""nclab._threads: torch's thread count follows the CPUs the process may use (affinity, cgroup quota, env)."""

import json
import os
import subprocess
import sys

import pytest

from nclab import _threads


def _cgroup(tmp_path, v2=None, v1=None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(str(v1[0]))
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(str(v1[1]))
    return str(tmp_path)


def test_cpu_quota_v2_v1_and_unlimited(tmp_path):
    (tmp_path / "a").mkdir()
    assert _threads.cpu_quota(_cgroup(tmp_path / "a", v2="50000 100000")) == 0.5
    (tmp_path / "b").mkdir()
    assert _threads.cpu_quota(_cgroup(tmp_path / "b", v2="max 100000")) is None
    (tmp_path / "c").mkdir()
    assert _threads.cpu_quota(_cgroup(tmp_path / "c", v1=(300000, 100000))) == 3.0
    (tmp_path / "d").mkdir()
    assert _threads.cpu_quota(_cgroup(tmp_path / "d", v1=(-1, 100000))) is None
    assert _threads.cpu_quota(str(tmp_path / "missing")) is None


def test_available_cpus_is_min_of_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert _threads.available_cpus(str(tmp_path)) == 8  # no quota files
    quota = _cgroup(tmp_path, v2="150000 100000")  # Binder-style: 1.5 CPUs of an 8-CPU host
    assert _threads.available_cpus(quota) == 2
    (tmp_path / "cpu.max").write_text("20000 100000")
    assert _threads.available_cpus(quota) == 1


def test_default_threads_respects_env_but_never_exceeds_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("NCLAB_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_threads(str(tmp_path)) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert _threads.default_threads(str(tmp_path)) == 4
    monkeypatch.setenv("NCLAB_THREADS", "2")
    assert _threads.default_threads(str(tmp_path)) == 2
    monkeypatch.delenv("NCLAB_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _threads.default_threads(str(tmp_path)) == 4


_PROBE = """
import json, os, sys
import torch
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this process may use one CPU
torch.set_num_threads(int(sys.argv[1]))                   # torch's count before nclab is imported
import nclab.nets                                         # a torch module of nclab: configures on import
after_import = torch.get_num_threads()
torch.set_num_threads(2)                                  # a user's explicit call afterwards
import nclab.losses, nclab.prototypes                     # more imports must not undo it
print(json.dumps([after_import, torch.get_num_threads(), nclab.configure_threads(3)]))
"""


def _probe(start: int, **env) -> list:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NCLAB_THREADS")}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(start)], capture_output=True, text=True, timeout=120,
                         env={**clean, **env}, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_import_lowers_threads_to_available_cpus_once():
    assert _probe(4) == [1, 2, 3]  # lowered to the one CPU; the user's later call and explicit n stand


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_import_leaves_omp_num_threads_and_lower_counts_alone():
    assert _probe(4, OMP_NUM_THREADS="4")[0] == 4  # explicit OMP_NUM_THREADS: torch's business
    assert _probe(1)[0] == 1  # never raised


def test_configure_threads_rejects_bad_n():
    with pytest.raises(ValueError, match="n=0"):
        _threads.configure_threads(0)
