"""Student and instructor versions of the notebooks, and the insertion of the exercise cells.

One source notebook per paper holds the solutions between nbgrader's ``### BEGIN SOLUTION`` /
``### END SOLUTION`` markers (in cells carrying nbgrader's solution metadata). ``build_student`` runs
nbgrader's own ``ClearSolutions`` (solutions → a stub raising ``NotImplementedError``) and ``ClearOutput``;
``build_instructor`` copies the sources. ``add_exercises`` inserts the exercise cells (tag ``exercise``)
before a notebook's "Try this" section, idempotently.
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

import nbformat

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
TAG = "exercise"
COLAB_TAG = "colab-install"
STUB = '# YOUR CODE HERE\nraise NotImplementedError("not done yet")'
REPO = "nclab/nclab"
COLAB_CELL = ('# On Colab (or wherever nclab is missing) install it; a no-op where it is installed.\n'
              'import importlib.util\n\n'
              'if importlib.util.find_spec("nclab") is None:\n'
              f'    %pip install -q "nclab @ git+https://github.com/{REPO}@main"')


def colab_url(notebook: str, repo: str = REPO, branch: str = "main") -> str:
    """The "Open in Colab" address of ``notebooks/<notebook>.ipynb`` on GitHub."""
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{Path(notebook).stem}.ipynb"


def _notebooks(src_dir) -> list[Path]:
    src = Path(src_dir)
    if not src.is_dir():
        raise ValueError(f"src_dir={str(src)!r} is not a folder of notebooks")
    paths = sorted(src.glob(NOTEBOOK_GLOB))
    if not paths:
        raise ValueError(f"src_dir={str(src)!r} holds no numbered notebooks ({NOTEBOOK_GLOB})")
    return paths


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """nbgrader's ClearSolutions (stub ``STUB``, solution metadata enforced) then ClearOutput, on a copy."""
    try:
        from nbgrader.preprocessors import ClearOutput, ClearSolutions
    except ImportError:
        raise RuntimeError("student versions need nbgrader: pip install 'nclab[teach]'") from None

    nb = nbformat.from_dict(nb)
    resources: dict = {}
    nb, resources = ClearSolutions(code_stub={"python": STUB}, enforce_metadata=True).preprocess(nb, resources)
    nb, _ = ClearOutput().preprocess(nb, resources)
    return nb


def build_student(src_dir, out_dir) -> list[Path]:
    """Write the student version of every numbered notebook of ``src_dir`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _notebooks(src_dir):
        nb = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        written.append(out / path.name)
    return written


def build_instructor(src_dir, out_dir) -> list[Path]:
    """Instructor notebooks = the sources (solutions in place), copied into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _notebooks(src_dir):
        shutil.copyfile(path, out / path.name)
        written.append(out / path.name)
    return written


# ------------------------------------------------------------------ inserting the exercise cells
def _tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def exercise_cells(stem: str) -> list:
    """The cells of notebook ``stem``'s exercises: a heading, then per exercise its task (markdown), its
    solution cell (nbgrader metadata, markers) and its check. Every cell is tagged ``exercise``."""
    from nclab.exercises import for_notebook

    exs = for_notebook(stem)
    if not exs:
        return []
    meta = {"tags": [TAG]}
    cells = [nbformat.v4.new_markdown_cell(
        "## Exercises\n\nWrite each function where it says `YOUR CODE HERE`, then run the check below it: it "
        "calls your function on fresh random inputs, compares with nclab's reference and answers with a hint. "
        "An exercise you skip is reported *not done yet*; the rest of the notebook still runs.",
        metadata=dict(meta))]
    for ex in exs:
        grade_id = f"ex{stem[:2]}_{ex.number}_{ex.name}"
        cells.append(nbformat.v4.new_markdown_cell(f"### Exercise {ex.number} · {ex.title}\n\n{ex.task}",
                                                   metadata=dict(meta)))
        cells.append(nbformat.v4.new_code_cell(ex.solution, metadata={
            "tags": [TAG], "nbgrader": {"solution": True, "grade": False, "locked": False,
                                        "grade_id": grade_id, "schema_version": 3}}))
        cells.append(nbformat.v4.new_code_cell(
            f"from nclab.exercises import check_{ex.name}\n\ncheck_{ex.name}({ex.name})", metadata=dict(meta)))
    return cells


def _anchor(cells) -> int:
    """Index before which the exercises go: the "Try this" heading, else "References", else the end."""
    for pattern in (r"^#+ .*try this", r"^#+ .*references"):
        for i, c in enumerate(cells):
            if c.cell_type == "markdown" and re.search(pattern, c.source, re.I | re.M):
                return i
    return len(cells)


def add_exercises(path, colab: bool = False) -> int:
    """Insert (or refresh) the exercise cells of notebook ``path`` in place; with ``colab`` also a first code
    cell that installs nclab where it is missing. Idempotent; returns the number of exercise cells."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    old = [i for i, c in enumerate(nb.cells) if _tagged(c, TAG)]
    keep = [c for c in nb.cells if not _tagged(c, TAG)]
    at = old[0] if old else _anchor(keep)
    new = exercise_cells(path.stem)
    nb.cells = keep[:at] + new + keep[at:]
    if colab and not any(_tagged(c, COLAB_TAG) for c in nb.cells):
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(COLAB_CELL, metadata={"tags": [COLAB_TAG]}))
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return len(new)


# ------------------------------------------------------------------ CLI
def main_student(argv: list[str] | None = None) -> int:
    """``nclab student OUT [--src notebooks]``: OUT/student (solutions → stubs, no outputs), OUT/instructor."""
    parser = argparse.ArgumentParser(prog="nclab student", description=main_student.__doc__)
    parser.add_argument("out", help="output folder (gets student/ and instructor/)")
    parser.add_argument("--src", default=None, help="source notebooks (default: the nclab notebooks folder)")
    args = parser.parse_args(argv)
    if args.src is None:
        from nclab.cli import notebooks_dir

        args.src = notebooks_dir()
    t0 = time.perf_counter()
    student = build_student(args.src, Path(args.out) / "student")
    instructor = build_instructor(args.src, Path(args.out) / "instructor")
    print(f"{len(student)} student and {len(instructor)} instructor notebooks in {Path(args.out).resolve()} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
