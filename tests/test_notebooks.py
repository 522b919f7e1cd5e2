"""Every notebook runs headlessly with smoke=True and every claim it records holds."""

import pytest

from nclab.cli import current_kernel, list_notebooks, notebooks_dir, run_notebook

NOTEBOOKS = list_notebooks(notebooks_dir())


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    return current_kernel(tmp_path_factory.mktemp("jupyter"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke_claims_hold(path, kernel, tmp_path):
    result = run_notebook(path, tmp_path, smoke=True, kernel=kernel, html=False, progress=False)
    print(f"{path.stem}: {result['seconds']:.1f} s")
    assert result["error"] is None, result["error"]
    assert result["claims"], "the notebook recorded no claims"
    failed = {n: c for n, c in result["claims"].items() if not c["holds"]}
    assert not failed, failed
