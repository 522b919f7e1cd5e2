"""Every notebook runs headlessly with smoke=True at seed 0 and at one other seed, and every claim it records holds
(a claim must hold at ≥ 19 of 20 seeds, so a second seed catches claims tuned to seed 0)."""

import json

import pytest

from nclab.cli import current_kernel, list_notebooks, notebooks_dir, run_notebook

NOTEBOOKS = list_notebooks(notebooks_dir())
SEEDS = (0, 1)


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    return current_kernel(tmp_path_factory.mktemp("jupyter"))


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke_claims_hold(path, seed, kernel, tmp_path):
    result = run_notebook(path, tmp_path, smoke=True, seed=seed, kernel=kernel, html=False, progress=False)
    print(f"{path.stem} seed {seed}: {result['seconds']:.1f} s")
    assert result["error"] is None, result["error"]
    assert result["claims"], "the notebook recorded no claims"
    failed = {n: c for n, c in result["claims"].items() if not c["holds"]}
    assert not failed, failed
    noise = stderr_outputs(tmp_path / path.name)
    assert not noise, f"warnings or other stderr output in front of the student: {noise[:3]}"


def stderr_outputs(executed) -> list[str]:
    """Text a student would see on stderr (warnings, log lines) in an executed notebook, one entry per cell."""
    nb = json.loads(executed.read_text())
    return [f"cell {i}: " + "".join(o.get("text", ""))[:300] for i, c in enumerate(nb["cells"])
            for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
