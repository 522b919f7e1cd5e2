"""``nclab`` command: list the notebooks, run them headlessly with papermill, collect their claims.

    nclab list
    nclab run [NAMES ...] [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def notebooks_dir() -> Path:
    """``$NCLAB_NOTEBOOKS``, else ./notebooks, else the notebooks/ folder beside the package."""
    env = os.environ.get("NCLAB_NOTEBOOKS")
    if env:
        return Path(env)
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "notebooks"


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (NN_name.ipynb), sorted."""
    folder = notebooks_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder} (set NCLAB_NOTEBOOKS)")
    return sorted(folder.glob(NOTEBOOK_GLOB))


def select(names: list[str], available: list[Path]) -> list[Path]:
    """Notebooks whose stem contains each given name ('01', 'seli', '01_seli'); all when none given."""
    if not names:
        return available
    chosen = []
    for name in names:
        hits = [p for p in available if name in p.stem]
        if not hits:
            raise ValueError(f"notebook {name!r} not found: choose from {[p.stem for p in available]}")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def current_kernel(tmpdir: Path) -> str:
    """Register a kernelspec for *this* Python in a temporary Jupyter path; return its name."""
    name = "nclab-current-python"
    spec = tmpdir / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(tmpdir), os.environ.get("JUPYTER_PATH")]))
    return name


def run_notebook(path: Path, out_dir: Path, *, smoke: bool, seed: int = 0, kernel: str | None = None,
                 html: bool = True, progress: bool = True) -> dict:
    """Execute one notebook with papermill (cwd = its folder, widget state not stored), write the
    executed copy, its HTML page and its claims JSON into ``out_dir``; return the claims dict."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    results = (out_dir / f"{path.stem}.json").resolve()
    results.unlink(missing_ok=True)
    executed = out_dir / path.name
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(path), str(executed), kernel_name=kernel, cwd=str(path.parent),
                            parameters={"smoke": smoke, "seed": seed, "results_path": str(results)},
                            progress_bar=progress, store_widget_state=False)
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    seconds = time.perf_counter() - t0
    if html and executed.exists():
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
        (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    data = json.loads(results.read_text()) if results.exists() else {"claims": {}, "figures": {}}
    data.update({"notebook": path.stem, "seconds": seconds, "error": error})
    return data


def claims_table(runs: list[dict]) -> tuple[str, bool]:
    """Text table (notebook, claim, value, threshold, holds) and whether everything held."""
    lines = [f"{'notebook':24s} {'claim':40s} {'value':>11s} op {'threshold':>10s} holds"]
    ok = True
    for run in runs:
        if run["error"] or not run["claims"]:
            ok = False
            lines.append(f"{run['notebook']:24s} {'(notebook failed: ' + str(run['error']) + ')':40s}")
        for name, c in run["claims"].items():
            ok &= bool(c["holds"])
            lines.append(f"{run['notebook']:24s} {name:40s} {c['value']:11.4g} {c.get('op', ''):2s} "
                         f"{c['threshold']:10.3g} {'yes' if c['holds'] else 'NO'}")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nclab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="show the notebooks")
    run = sub.add_parser("run", help="execute notebooks headlessly and check their claims")
    run.add_argument("names", nargs="*", help="notebook names or parts of them (default: all)")
    run.add_argument("--smoke", action="store_true", help="small parameters (each notebook < 60 s)")
    run.add_argument("--out", default="results", help="folder for executed notebooks, HTML and JSON")
    run.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    available = list_notebooks()
    if args.cmd == "list":
        for p in available:
            print(p.stem)
        return 0
    try:
        chosen = select(args.names, available)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        kernel = current_kernel(Path(tmp))
        for i, path in enumerate(chosen, 1):
            print(f"[{i}/{len(chosen)}] {path.stem} ({'smoke' if args.smoke else 'full'}) ...", flush=True)
            runs.append(run_notebook(path, out, smoke=args.smoke, seed=args.seed, kernel=kernel))
            print(f"    {runs[-1]['seconds']:.1f} s" + (f", FAILED: {runs[-1]['error']}" if runs[-1]["error"] else ""))
    table, ok = claims_table(runs)
    print(table)
    print(f"\nexecuted notebooks, HTML and JSON in {out.resolve()}")
    print("all claims hold" if ok else "SOME CLAIMS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
