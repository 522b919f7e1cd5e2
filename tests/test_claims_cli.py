import json
import math
from pathlib import Path

import nbformat
import pytest

from nclab.claims import Claims
from nclab.cli import claims_table, current_kernel, list_notebooks, main, run_notebook, select


def test_claims_compute_holds_and_write_json(tmp_path):
    c = Claims("nb")
    assert c.check("small", 1e-7, 1e-6) is True
    assert c.check("big", 2.0, 1.0, "<") is False
    assert c.check("nan", math.nan, 1.0, "<") is False
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
