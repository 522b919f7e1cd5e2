"""Repository conventions: stripped notebooks with one literal `parameters` cell, ruff, Binder files,
README ⇄ CI command, torch pin."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _tool(name):
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stripped_and_one_literal_parameters_cell(path):
    assert subprocess.run([_tool("nbstripout"), "--verify", str(path)]).returncode == 0, "has outputs"
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = set()
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        ast.literal_eval(node.value)  # plain literals only
        names.add(node.targets[0].id)
    assert {"smoke", "seed", "results_path"} <= names


def test_ruff_clean():
    proc = subprocess.run([_tool("ruff"), "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("env", ["environment.yml", "binder/environment.yml"])
def test_conda_environments(env):
    spec = yaml.safe_load((ROOT / env).read_text())
    deps = [d for d in spec["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in deps
    for pkg in ("anywidget", "ipywidgets", "plotly"):
        assert any(d.startswith(pkg) for d in deps), pkg
    assert any(d.startswith("pytorch") and "cpu" in d for d in deps), "needs a CPU pytorch"
    assert "conda-forge" in spec["channels"]


def test_binder_postbuild_installs_without_deps():
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "set -e" in text and "--no-deps" in text and "labextension" not in text.replace("no labextension", "")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert len(commands) == 2, "README must give exactly two set-up commands"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == [commands[1]]


def test_torch_pin_admits_local_wheel():
    from packaging.specifiers import SpecifierSet

    text = (ROOT / "pyproject.toml").read_text()
    spec = re.search(r'"torch([^"]*)"', text).group(1)
    assert "2.13.0" in SpecifierSet(spec)
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_layout_paper_apps_stand_alone_and_modules_stay_short():
    """Each paper's app module imports no other paper's app module; no module grows past ~400 lines."""
    apps = ROOT / "nclab" / "apps"
    papers = {p.stem for p in apps.glob("*.py")} - {"__init__", "base"}
    assert {"seli", "cssvm", "scl", "prototypes", "ntp", "darex", "mcl"} <= papers
    assert not (ROOT / "nclab" / "apps.py").exists()
    for paper in papers:
        others = {f"nclab.apps.{o}" for o in papers - {paper}}
        assert not _imports(apps / f"{paper}.py") & others, f"apps/{paper}.py imports another paper's apps"
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "nclab").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over 420 lines (split by what they hold): {long}"
