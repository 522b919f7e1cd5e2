"""Student/instructor builds (nbgrader's ClearSolutions) and the idempotent insertion of the exercise cells;
the built student notebook executes end to end under nbval, reporting every exercise as not done."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nclab import teach
from nclab.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _ex_cells(nb):
    return [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]


def test_add_exercises_inserts_before_try_this_and_is_idempotent(tmp_path):
    for src in [p for p in NOTEBOOKS if p.stem[:2] in EXERCISES]:
        path = tmp_path / src.name
        path.write_bytes(src.read_bytes())
        before = nbformat.read(path, as_version=4)
        n = teach.add_exercises(path, colab=True)
        nb = nbformat.read(path, as_version=4)
        assert n == 1 + 3 * len(EXERCISES[src.stem[:2]]) == len(_ex_cells(nb))
        idx = [i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", [])]
        assert idx == list(range(idx[0], idx[0] + n)), "exercise cells are contiguous"
        after = nb.cells[idx[-1] + 1:]
        if any("try this" in c.source.lower() for c in before.cells if c.cell_type == "markdown"):
            assert after and "try this" in after[0].source.lower()
        colab = [c for c in nb.cells if "colab-install" in c.metadata.get("tags", [])]
        assert len(colab) == 1 and nb.cells.index(colab[0]) < idx[0]
        assert "find_spec(\"nclab\")" in colab[0].source and "%pip install" in colab[0].source
        others = [c for c in nb.cells if c not in colab and c not in _ex_cells(nb)]
        tags = lambda c: c.metadata.get("tags", [])  # noqa: E731
        kept = [c for c in before.cells if "exercise" not in tags(c) and "colab-install" not in tags(c)]
        assert [c.source for c in others] == [c.source for c in kept], "other cells untouched"
        first = nbformat.read(path, as_version=4)
        teach.add_exercises(path, colab=True)  # second run: nothing duplicated
        again = nbformat.read(path, as_version=4)
        assert [c.source for c in again.cells] == [c.source for c in first.cells]


def test_colab_cell_is_a_noop_where_nclab_is_installed():
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(teach.COLAB_CELL)
    assert "run_line_magic('pip'" in code
    calls = []
    exec(code, {"get_ipython": lambda: type("IP", (), {"run_line_magic": lambda *a: calls.append(a)})()})
    assert calls == []  # nclab is importable here: nothing installed
    assert teach.colab_url("01_seli") == ("https://colab.research.google.com/github/nclab/nclab/blob/main/"
                                           "notebooks/01_seli.ipynb")


def _fixture(folder: Path) -> Path:
    """A tiny numbered notebook with every exercise of every notebook, then a later cell that must still run
    and asserts every check's status (EXPECTED)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · tiny"), nbformat.v4.new_markdown_cell("## Try this\n- x")]
    path = folder / "01_tiny.ipynb"
    nbformat.write(nb, path)
    teach.add_exercises(path)
    nb = nbformat.read(path, as_version=4)
    cells = [c for key in EXERCISES for c in teach.exercise_cells(f"{key}_tiny")[1:]]
    nb.cells = nb.cells[:1] + cells + [nbformat.v4.new_code_cell(
        "from nclab.exercises import BY_NAME\n\nEXPECTED = 'correct'\n"
        "status = {n: ex.check(globals()[n]).status for n, ex in BY_NAME.items()}\nprint(status)\n"
        "assert set(status.values()) == {EXPECTED}, status")] + nb.cells[-1:]
    nb.cells[-2].outputs = [nbformat.v4.new_output("stream", text="stale output\n")]
    nb.cells[-2].execution_count = 1
    nbformat.write(nb, path)
    return path


def test_student_build_removes_solutions_and_outputs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    path = _fixture(src)
    out = tmp_path / "out"
    assert teach.main_student([str(out), "--src", str(src)]) == 0
    student = nbformat.read(out / "student" / path.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "np.log2(safe" not in text
    sols = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(sols) == sum(len(v) for v in EXERCISES.values())
    assert all("raise NotImplementedError" in c.source and c.source.startswith("import") for c in sols)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert (out / "instructor" / path.name).read_bytes() == path.read_bytes()


def test_markers_outside_a_solution_cell_are_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION")]
    with pytest.raises(RuntimeError, match="non-solution cell"):
        teach.student_version(nb)
    with pytest.raises(ValueError, match="src_dir="):
        teach.build_student(tmp_path / "missing", tmp_path / "o")


def test_student_and_instructor_notebooks_execute_under_nbval(tmp_path):
    """Instructor: every check passes; student: every exercise is 'not done' and the later cells still run."""
    pytest.importorskip("nbval")
    src = tmp_path / "src"
    src.mkdir()
    path = _fixture(src)
    teach.build_student(src, tmp_path / "student")
    teach.build_instructor(src, tmp_path / "instructor")
    student = tmp_path / "student" / path.name
    nb = nbformat.read(student, as_version=4)
    nb.cells[-2].source = nb.cells[-2].source.replace("EXPECTED = 'correct'", "EXPECTED = 'not done'")
    nbformat.write(nb, student)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", str(student), str(tmp_path / "instructor" / path.name)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout
