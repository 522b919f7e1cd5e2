import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nclab.claims import Claims
from nclab.cli import claims_table, current_kernel, list_notebooks, main, run_notebook, select


def test_claims_compute_holds_and_write_json(tmp_path):
    c = Claims("nb")
    assert bool(c.check("small", 1e-7, 1e-6)) is True
    assert bool(c.check("big", 2.0, 1.0, "<")) is False
    assert bool(c.check("nan", math.nan, 1.0, "<")) is False
    c.figure("arr", [1.5, math.inf])
    path = c.write(tmp_path / "sub" / "r.json")
    data = json.loads(path.read_text())
    assert data["claims"]["small"]["holds"] is True and data["claims"]["big"]["holds"] is False
    assert data["figures"]["arr"] == [1.5, None]
    with pytest.raises(AssertionError, match="big"):
        c.assert_all()
    with pytest.raises(ValueError, match="op="):
        c.check("x", 1, 2, "==")
    assert c.write(None) is None


def test_select_and_list(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "scratch.ipynb"):
        (tmp_path / name).write_text("{}")
    nbs = list_notebooks(tmp_path)
    assert [p.stem for p in nbs] == ["01_a", "02_b"]
    assert [p.stem for p in select(["b"], nbs)] == ["02_b"]
    assert select([], nbs) == nbs
    with pytest.raises(ValueError, match="'zz' not found"):
        select(["zz"], nbs)


def test_claims_table_flags_failures():
    runs = [{"notebook": "01", "error": None, "claims": {"c": {"value": 1.0, "threshold": 2.0, "op": "<",
                                                               "holds": True}}},
            {"notebook": "02", "error": "boom", "claims": {}}]
    table, ok = claims_table(runs)
    assert not ok and "boom" in table and "yes" in table
    assert claims_table(runs[:1])[1] is True


def _tiny_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell("smoke = False\nseed = 0\nresults_path = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_run_notebook_executes_with_parameters_and_reports_errors(tmp_path, monkeypatch):
    current_kernel(tmp_path / "kernels")
    good = tmp_path / "01_good.ipynb"
    _tiny_notebook(good, "from nclab.claims import Claims\nc = Claims()\n"
                         "c.check('smoke_is_set', float(smoke), 0.5, '>')\nc.write(results_path)")
    out = run_notebook(good, tmp_path / "out", smoke=True, kernel="nclab-current-python", progress=False)
    assert out["error"] is None and out["claims"]["smoke_is_set"]["holds"] is True
    assert (tmp_path / "out" / "01_good.html").exists() and (tmp_path / "out" / "01_good.ipynb").exists()
    bad = tmp_path / "02_bad.ipynb"
    _tiny_notebook(bad, "raise RuntimeError('no luck')")
    out = run_notebook(bad, tmp_path / "out", smoke=True, kernel="nclab-current-python", progress=False)
    assert "no luck" in out["error"]
    monkeypatch.setenv("NCLAB_NOTEBOOKS", str(tmp_path))
    assert main(["run", "02", "--smoke", "--out", str(tmp_path / "o2")]) == 1
    assert main(["list"]) == 0


# ---------------------------------------------------------------- faults on the command line (issue 14)
ROOT = Path(__file__).resolve().parents[1]


def _env(notebooks: Path) -> dict:
    return {**os.environ, "NCLAB_NOTEBOOKS": str(notebooks), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _nclab(*args, env, **kw):
    return subprocess.run([sys.executable, "-m", "nclab.cli", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, **kw)


CLAIM = "from nclab.claims import Claims\nc = Claims()\nc.check('seed_is_set', seed, 0, '>=')\nc.write(results_path)"


def test_bad_command_lines_are_one_line_exit_2(tmp_path):
    (tmp_path / "nbs").mkdir()
    _tiny_notebook(tmp_path / "nbs" / "01_a.ipynb", CLAIM)
    env = _env(tmp_path / "nbs")
    (tmp_path / "file").write_text("x")
    cases = [(["run", ""], "empty"),  # "" is part of every name: it must not select every notebook
             (["run", "a", "--out", str(tmp_path / "file" / "out")], "cannot write there"),
             (["run", "zz"], "'zz' not found")]
    for args, message in cases:
        res = _nclab(*args, env=env, timeout=60)
        assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res
    res = _nclab("list", env=_env(tmp_path / "missing"), timeout=60)
    assert res.returncode == 2 and "no notebooks folder" in res.stderr and len(res.stderr.splitlines()) == 1
    assert not (ROOT / "results" / "01_a.ipynb").exists()


def test_outputs_share_permissions_and_html_renders_offline(tmp_path):
    current_kernel(tmp_path / "kernels")
    nb = tmp_path / "01_fig.ipynb"
    _tiny_notebook(nb, CLAIM + "\nimport plotly.graph_objects as go\nimport nclab.plots\n"
                          "go.Figure(go.Scatter(x=[0, 1], y=[1, 3]))")
    old = os.umask(0o022)
    try:
        out = run_notebook(nb, tmp_path / "out", smoke=True, kernel="nclab-current-python", progress=False)
    finally:
        os.umask(old)
    assert out["error"] is None and out["claims"]["seed_is_set"]["holds"]
    modes = {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes == {".json": 0o644, ".ipynb": 0o644, ".html": 0o644}
    assert not list((tmp_path / "out").glob(".*"))  # no staging folder left
    page = (tmp_path / "out" / "01_fig.html").read_text()
    srcs = re.findall(r"<script[^>]*\ssrc=[\"']([^\"']+)", page)
    assert not [s for s in srcs if s.startswith(("http:", "https:", "//")) and "plot" in s], srcs
    assert not [s for s in srcs if "require" in s], srcs  # the figures must not wait for require.js
    assert "requirejs.config" not in page and "Plotly.newPlot" in page
    head = page.split("</head>")[0]
    assert re.search(r"plotly\.js v\d", head), "plotly.js is not inlined in the page head"
    assert "mathjax" in head.lower()  # equations: MathJax from its CDN (README says so)


def test_runs_into_one_folder_do_not_corrupt_each_other(tmp_path):
    (tmp_path / "nbs").mkdir()
    _tiny_notebook(tmp_path / "nbs" / "01_slow.ipynb", CLAIM + "\nimport time\ntime.sleep(8)")
    env, out = _env(tmp_path / "nbs"), str(tmp_path / "same")
    cmd = [sys.executable, "-m", "nclab.cli", "run", "slow", "--smoke", "--out", out]
    first = subprocess.Popen(cmd + ["--seed", "1"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list((tmp_path / "same").rglob("01_slow.json")):  # the first has written its claims ...
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.1)
    # ... and is still running when the second starts
    second = subprocess.Popen(cmd + ["--seed", "2"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert all("all claims hold" in o for o in outs)
    data = json.loads((tmp_path / "same" / "01_slow.json").read_text())
    executed = nbformat.read(tmp_path / "same" / "01_slow.ipynb", as_version=4)
    seed_cell = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f"seed = {int(data['claims']['seed_is_set']['value'])}" in seed_cell.source  # JSON and notebook agree
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["01_slow.html", "01_slow.ipynb", "01_slow.json"]


def _run_until_02_is_stuck(nbs: Path, out: Path, *args: str) -> subprocess.Popen:
    """Start `nclab run --smoke` in its own session; return once 01_quick is done and 02_stuck is running."""
    proc = subprocess.Popen([sys.executable, "-m", "nclab.cli", "run", "--smoke", *args, "--out", str(out)],
                            env=_env(nbs), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    while not (out / "01_quick.json").exists() or not list(out.glob(".02_stuck*")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(3)
    return proc


def test_ctrl_c_prints_what_finished_exits_130_and_keeps_old_files(tmp_path):
    (tmp_path / "nbs").mkdir()
    _tiny_notebook(tmp_path / "nbs" / "01_quick.ipynb", CLAIM)
    _tiny_notebook(tmp_path / "nbs" / "02_stuck.ipynb", "import time\nprint('started', flush=True)\n"
                                                        "time.sleep(120)\n" + CLAIM)
    out = tmp_path / "out"
    out.mkdir()
    old = {name: f"old {name}" for name in ("02_stuck.ipynb", "02_stuck.html", "02_stuck.json")}
    for name, text in old.items():
        (out / name).write_text(text)
    proc = _run_until_02_is_stuck(tmp_path / "nbs", out)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "1 of 2 notebooks finished (01_quick)" in stderr and "seed_is_set" in stdout
    assert {name: (out / name).read_text() for name in old} == old  # the older run's trio, untouched
    assert sorted(p.name for p in out.iterdir()) == sorted([*old, "01_quick.ipynb", "01_quick.html",
                                                            "01_quick.json"])


def test_failed_rerun_removes_the_older_runs_json(tmp_path):
    current_kernel(tmp_path / "kernels")
    nb = tmp_path / "01_x.ipynb"
    _tiny_notebook(nb, CLAIM)
    run_notebook(nb, tmp_path / "out", smoke=True, kernel="nclab-current-python", progress=False, html=False)
    assert (tmp_path / "out" / "01_x.json").exists()
    _tiny_notebook(nb, "raise RuntimeError('broken now')")
    res = run_notebook(nb, tmp_path / "out", smoke=True, kernel="nclab-current-python", progress=False, html=False)
    assert "broken now" in res["error"] and not (tmp_path / "out" / "01_x.json").exists()
    assert "broken now" in (tmp_path / "out" / "01_x.ipynb").read_text()


SPAN = ("import os, time\nfrom nclab.claims import Claims\nc = Claims()\nt0 = time.time()\ntime.sleep(4)\n"
        "c.check('threads_set', float(os.environ['NCLAB_THREADS']), 0.5, '>')\n"
        "c.figure('span', {'start': t0, 'end': time.time(), 'pid': os.getppid()})\nc.write(results_path)")


def test_run_with_jobs_runs_notebooks_at_once_in_their_own_processes(tmp_path):
    (tmp_path / "nbs").mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _tiny_notebook(tmp_path / "nbs" / f"{name}.ipynb", SPAN)
    _tiny_notebook(tmp_path / "nbs" / "04_bad.ipynb", "raise RuntimeError('no luck')")
    env = {**_env(tmp_path / "nbs"), "OMP_NUM_THREADS": "4"}
    res = _nclab("run", "--smoke", "--jobs", "2", "--out", str(tmp_path / "out"), env=env, timeout=400)
    assert res.returncode == 1, res.stdout + res.stderr  # 04_bad failed; the others ran
    assert "4 notebooks (smoke, seed 0), 2 at a time" in res.stdout and "04_bad: " in res.stdout
    table = [line.split()[0] for line in res.stdout.splitlines() if line.startswith(("01_", "02_", "03_", "04_"))]
    assert table == ["01_a", "02_b", "03_c", "04_bad"]  # the claims table in notebook order, whatever ended first
    spans = [json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in ("01_a", "02_b", "03_c")]
    per_kernel = max(1, len(os.sched_getaffinity(0)) // 2)  # the CPUs shared by 2 jobs, not $OMP_NUM_THREADS
    assert all(s["claims"]["threads_set"]["value"] == per_kernel for s in spans)
    (a, b, c) = (s["figures"]["span"] for s in spans)
    assert a["start"] < b["end"] and b["start"] < a["end"]  # 01 and 02 ran at the same time
    assert len({a["pid"], b["pid"]}) == 2  # in two worker processes
    assert "no luck" in (tmp_path / "out" / "04_bad.ipynb").read_text()
    assert _nclab("run", "--jobs", "0", "--out", str(tmp_path / "o"), env=env).returncode == 2


def test_ctrl_c_sent_to_nclab_alone_reaches_the_running_notebooks(tmp_path):
    (tmp_path / "nbs").mkdir()
    _tiny_notebook(tmp_path / "nbs" / "01_quick.ipynb", CLAIM)
    _tiny_notebook(tmp_path / "nbs" / "02_stuck.ipynb", "import time\ntime.sleep(300)\n" + CLAIM)
    out = tmp_path / "out"
    proc = _run_until_02_is_stuck(tmp_path / "nbs", out, "--jobs", "2")
    os.kill(proc.pid, signal.SIGINT)  # `kill -INT`: only nclab itself, not its workers or kernels
    stdout, stderr = proc.communicate(timeout=120)  # the workers get it after nclab.runs.GRACE seconds
    assert proc.returncode == 130, stdout + stderr
    assert "1 of 2 notebooks finished (01_quick)" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["01_quick.html", "01_quick.ipynb", "01_quick.json"]
