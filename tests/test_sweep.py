"""Sweeps on a real multi-process Dask cluster on 127.0.0.1 (scheduler + 2 worker processes started here, stopped
by process group), with tiny test notebooks (a parameters cell, a few claims) so the whole file stays fast."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nclab import sweep
from nclab.cli import main
from nclab.robustness import summarize

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

ALPHA = """import time
from nclab.claims import Claims
time.sleep(pause)
c = Claims('01_alpha')
c.check('seed_below_limit', seed * scale, limit, '<')
c.check('smoke_is_set', float(smoke), 0.5, '>')
c.write(results_path)"""
BETA = """from nclab.claims import Claims
if seed == 99:
    raise RuntimeError('seed 99 is cursed')
c = Claims('02_beta')
c.check('one_below_two', 1.0, 2.0, '<')
c.write(results_path)"""


def write_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell("smoke = False\nseed = 0\nresults_path = None\npause = 0.0\n"
                                       "scale = 1.0\nlimit = 100\nflag = True")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(folder / "01_alpha.ipynb", ALPHA)
    write_notebook(folder / "02_beta.ipynb", BETA)
    return folder


@pytest.fixture()
def nb_env(notebooks, monkeypatch):
    monkeypatch.setenv("NCLAB_NOTEBOOKS", str(notebooks))
    return {**ENV, "NCLAB_NOTEBOOKS": str(notebooks)}


class Cluster:
    """``dask scheduler`` + ``dask worker`` processes on 127.0.0.1, each in its own process group."""

    def __init__(self, folder: Path, workers: int = 2):
        self.file = folder / "scheduler.json"
        self.procs = [self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(self.file))]
        deadline = time.time() + 180  # a loaded CI machine can take a minute to import distributed
        while not self.file.exists() and time.time() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.add_worker() for _ in range(workers)]
        self.wait_for_workers(workers)

    def add_worker(self):
        proc = self._spawn("worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
        self.procs.append(proc)
        return proc

    def _spawn(self, *args):
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=ENV, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for_workers(self, n):
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=90)

    def kill(self, proc, sig=signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


def nclab(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "nclab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def point_files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("points/*/*/point.json")}


# ---------------------------------------------------------------- pure parts
def test_grid_point_id_and_parsing(notebooks):
    g = sweep.grid({"seed": range(3), "R": [10, 100]})
    assert len(g) == 6 and g[0] == {"seed": 0, "R": 10} and g[1] == {"seed": 0, "R": 100}
    with pytest.raises(ValueError, match="axes\\['R'\\]"):
        sweep.grid({"seed": [0], "R": []})
    ids = {sweep.point_id(p) for p in g}
    assert len(ids) == 6 and sweep.point_id({"seed": 0, "R": 10}) == sweep.point_id({"seed": 0, "R": 10})
    assert sweep.point_id({"x": 1}) != sweep.point_id({"x": 1.0}) != sweep.point_id({"x": "1"})
    assert all("/" not in i for i in map(sweep.point_id, [{"s": "a/b"}, {"l": [0.1, 0.2]}]))
    assert sweep.parse_seeds("2-4") == [2, 3, 4] and sweep.parse_seeds("0,3,7") == [0, 3, 7]
    assert sweep.parse_seeds("5") == [5]
    for bad in ("4-2", "a-b", "-1", "1,,2", "", "1-"):
        with pytest.raises(ValueError, match="--seeds"):
            sweep.parse_seeds(bad)
    assert sweep.parse_axes(["scale=1,2.5", "flag=false"]) == {"flag": ["false"], "scale": ["1", "2.5"]}
    assert sweep.parse_axes(["lams=[0.1,0.01],[1e-3]"]) == {"lams": ["[0.1,0.01]", "[1e-3]"]}
    for bad in (["seed=1"], ["noequals"], ["x="]):
        with pytest.raises(ValueError, match="-p"):
            sweep.parse_axes(bad)
    pts = sweep.notebook_points(notebooks / "01_alpha.ipynb", [0, 1], {"scale": ["1", "2.5"], "flag": ["no"]}, True)
    assert len(pts) == 4 and pts[-1] == {"smoke": True, "seed": 1, "scale": 2.5, "flag": False}
    assert isinstance(pts[0]["scale"], float)
    with pytest.raises(ValueError, match="no parameter 'gamma'"):
        sweep.notebook_points(notebooks / "01_alpha.ipynb", [0], {"gamma": ["1"]}, True)
    with pytest.raises(ValueError, match="limit='x'.*int"):
        sweep.notebook_points(notebooks / "01_alpha.ipynb", [0], {"limit": ["x"]}, True)


def test_summary_counts_and_worst_point():
    def point(pid, value, holds, error=None, op="<"):
        return {"notebook": "nb", "point": pid, "params": {"seed": pid}, "error": error,
                "claims": {} if error else {"c": {"value": value, "threshold": 1.0, "op": op, "holds": holds}}}

    s = summarize([point("a", 0.2, True), point("b", 3.0, False), point("c", 0.5, True), point("d", 0, 0, "boom")])
    c = s["claims"]["nb/c"]
    assert (c["points"], c["holds"], c["worst_point"], c["min"], c["max"]) == (3, 2, "b", 0.2, 3.0)
    assert c["holds_fraction"] == pytest.approx(2 / 3) and c["median"] == 0.5
    assert [f["point"] for f in s["failed_points"]] == ["d"] and s["failed_points"][0]["error"] == "boom"
    s = summarize([point("a", 5.0, True, op=">"), point("b", 2.0, True, op=">")])
    assert s["claims"]["nb/c"]["worst_point"] == "b"  # closest to failing a lower bound


def test_map_grid_in_process_records_and_errors():
    def f(a, b):
        if a == 2:
            raise ValueError("a=2 is bad")
        return {"sum": a + b}

    recs = sweep.map_grid(f, {"a": [1, 2], "b": [10, 20]}, progress=False, frame=False)
    assert [r.get("sum") for r in recs] == [11, 21, None, None]
    assert recs[2]["error"] == "ValueError: a=2 is bad" and recs[0] == {"a": 1, "b": 10, "sum": 11}
    assert sweep.map_grid(lambda x: x * x, [{"x": 3}], progress=False, frame=False) == [{"x": 3, "result": 9}]


# ---------------------------------------------------------------- on the real cluster
def test_map_grid_on_cluster(cluster):
    from distributed import Client

    with Client(cluster.address, timeout="30s") as client:
        recs = sweep.map_grid(lambda seed, k: {"pid": os.getpid(), "v": seed * k}, {"seed": range(4), "k": [1, 3]},
                              client=client, progress=False, frame=False)
    assert [r["v"] for r in recs] == [s * k for s in range(4) for k in (1, 3)]
    assert os.getpid() not in {r["pid"] for r in recs}  # ran in the worker processes


def test_sweep_two_notebooks_three_seeds_on_cluster(cluster, nb_env, tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "alpha", "beta", "--seeds", "0-2", "--smoke", "--out", str(out),
                 "--scheduler", cluster.address, "--quiet"]) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert set(report) == {"claims", "failed_points"} and report["failed_points"] == []
    assert {k: v["points"] for k, v in report["claims"].items()} == {
        "01_alpha/seed_below_limit": 3, "01_alpha/smoke_is_set": 3, "02_beta/one_below_two": 3}
    assert len(point_files(out)) == 6
    meta = json.loads(next(out.glob("points/01_alpha/*seed=2*/point.json")).read_text())
    assert meta["params"] == {"smoke": True, "seed": 2} and meta["claims"]["seed_below_limit"]["value"] == 2.0
    assert (out / "points" / "01_alpha" / meta["point"] / "01_alpha.ipynb").exists()
    html = (out / "robustness.html").read_text()
    assert "01_alpha/seed_below_limit" in html and "cdn.plot.ly" not in html.split("</head>")[1]
    assert '<script src="http' not in html
    # the same command again runs nothing; a failing notebook point is recorded and does not stop the sweep
    capsys.readouterr()
    assert main(["sweep", "alpha", "beta", "--seeds", "0-2", "--smoke", "--out", str(out),
                 "--scheduler", cluster.address, "--quiet"]) == 0
    assert "skipping 6 already finished, 0 to run" in capsys.readouterr().out
    assert main(["sweep", "beta", "--seeds", "98,99", "--smoke", "--out", str(out), "--scheduler", cluster.address,
                 "--quiet", "-p", "limit=5"]) == 1
    report = json.loads((out / "robustness.json").read_text())
    assert report["claims"]["02_beta/one_below_two"]["points"] == 4
    (failed,) = report["failed_points"]
    assert failed["params"]["seed"] == 99 and "seed 99 is cursed" in failed["error"]
    assert main(["sweep", "report", str(out), "--markdown", str(tmp_path / "r.md")]) == 1
    md = (tmp_path / "r.md").read_text()
    assert "| `01_alpha/seed_below_limit` | 3/3 |" in md and "seed 99 is cursed" in md


def _wait_for_points(out: Path, n: int, proc, timeout=120):
    deadline = time.time() + timeout
    while len(point_files(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no point finished in time"
        time.sleep(0.2)


def test_interrupted_client_rerun_runs_only_missing_points(cluster, nb_env, tmp_path):
    out = tmp_path / "sw"
    args = ["sweep", "alpha", "--seeds", "0-3", "--smoke", "-p", "pause=1.5", "--out", str(out),
            "--scheduler", cluster.address, "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "nclab.cli", *args], env=nb_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_points(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    done = point_files(out)
    assert 1 <= len(done) < 4 and "finished and are kept" in err
    assert not list(out.glob("points/*/.*"))  # no staging folders left behind
    rerun = nclab(*args, env=nb_env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipping {len(done)} already finished, {4 - len(done)} to run" in rerun.stdout
    assert f"points ran: {4 - len(done)} in" in rerun.stdout
    after = point_files(out)
    assert len(after) == 4 and all(after[k] == v for k, v in done.items())  # finished points untouched


def test_killed_worker_loses_no_finished_point(cluster, nb_env, tmp_path):
    cluster.wait_for_workers(2)
    out = tmp_path / "sw"
    proc = subprocess.Popen([sys.executable, "-m", "nclab.cli", "sweep", "alpha", "--seeds", "0-3", "--smoke",
                             "-p", "pause=2", "--out", str(out), "--scheduler", cluster.address, "--quiet"],
                            env=nb_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_points(out, 1, proc)
    before = point_files(out)
    victim = cluster.workers.pop(0)
    cluster.kill(victim)  # the worker and its nanny, mid-sweep: its running point goes to the other worker
    cluster.workers.append(cluster.add_worker())  # for tests that run after this one
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stdout + stderr
    after = point_files(out)
    assert len(after) == 4 and all(after[k] == v for k, v in before.items())
    report = json.loads((out / "robustness.json").read_text())
    assert report["claims"]["01_alpha/smoke_is_set"]["points"] == 4 and report["failed_points"] == []


@pytest.mark.parametrize("args, message", [
    (["nope"], "notebook 'nope' not found"),
    (["alpha", "--seeds", "5-2"], "--seeds '5-2' is not allowed"),
    (["alpha", "-p", "gamma=1,2"], "no parameter 'gamma'"),
    (["alpha", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler tcp://127.0.0.1:9: cannot connect"),
])
def test_sweep_bad_input_is_one_line_exit_2(nb_env, tmp_path, args, message):
    res = nclab("sweep", *args, "--out", str(tmp_path / "o"), env=nb_env, timeout=30)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not list((tmp_path / "o").glob("points/*"))
