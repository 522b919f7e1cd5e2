"""``nclab`` command: list the notebooks, run them headlessly with papermill, sweep them on Dask, collect claims.

    nclab list
    nclab run [NAMES ...] [--smoke] [--seed S] [--out DIR] [--jobs N]
    nclab sweep [NAMES ...] [--seeds A-B | --seeds 0,3,7] [-p name=v1,v2 ...] [--smoke] --out DIR
                [--workers N | --scheduler tcp://host:port] [--retry-failed]
    nclab sweep report DIR [--markdown FILE]
    nclab student OUT [--src DIR]          (student + instructor notebooks)
    nclab site OUT [--from results]        (offline course site)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from nclab.claims import atomic_write

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


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
        if not name.strip():
            raise ValueError(f"notebook name {name!r} is empty: give a part of a name, or no name for all")
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
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--log-level=ERROR"],
        "display_name": f"Python ({sys.executable})", "language": "python"}))
    if str(tmpdir) not in os.environ.get("JUPYTER_PATH", "").split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(tmpdir), os.environ.get("JUPYTER_PATH")]))
    return name


# ---------------------------------------------------------------- HTML pages that render offline
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{%- if resources.nclab_plotlyjs -%}
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript">{{ resources.nclab_plotlyjs }}</script>
{%- endif -%}
{%- endblock html_head_js_requirejs -%}
"""


def offline_notebook(nb) -> bool:
    """Rewrite plotly outputs in place so they draw with an inline plotly.js: each figure's HTML calls
    ``Plotly.newPlot`` directly (no require.js, no CDN); the CDN loader outputs are dropped. True if any figure."""
    import plotly.io as pio

    found = False
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                spec = data[PLOTLY_MIME]
                data["text/html"] = pio.to_html(spec, include_plotlyjs=False, full_html=False, validate=False,
                                                config=spec.get("config"))
                found = True
            elif "cdn.plot.ly" in str(data.get("text/html", "")):
                continue  # plotly's "notebook_connected" loader: points require.js at the CDN
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    return found


def export_html(executed: Path) -> str:
    """The executed notebook as one HTML page (JupyterLab look) whose plotly figures render without network:
    plotly.js is inlined once, require.js is not loaded. Equations still use MathJax from its CDN."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    nb = nbformat.read(str(executed), as_version=4)
    has_plotly = offline_notebook(nb)
    exporter = HTMLExporter(template_name="lab", template_file="nclab_offline.html.j2",
                            extra_loaders=[DictLoader({"nclab_offline.html.j2": _OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"nclab_plotlyjs": get_plotlyjs() if has_plotly else ""})
    return body


# ---------------------------------------------------------------- nclab run
def _commit(staging: Path, out_dir: Path, names: list[str]) -> None:
    """Move each staged file over its namesake in ``out_dir``; remove namesakes this run did not produce, so
    an old HTML or JSON never sits beside a new notebook. SIGINT is held back until all files are moved."""
    block = hasattr(signal, "pthread_sigmask")
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for name in names:
            if (staging / name).exists():
                os.replace(staging / name, out_dir / name)
            else:
                (out_dir / name).unlink(missing_ok=True)
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_notebook(path: Path, out_dir: Path, *, smoke: bool, seed: int = 0, kernel: str | None = None,
                 html: bool = True, progress: bool = True) -> dict:
    """Execute one notebook with papermill (cwd = its folder, widget state not stored) into a private staging
    folder inside ``out_dir``, then move the executed copy, its HTML page and its claims JSON into ``out_dir``
    together: runs into the same folder never see each other's half-written files. Returns the claims dict."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{path.stem}.", suffix=".staging"))
    names = [path.name, f"{path.stem}.html", f"{path.stem}.json"]
    try:
        results, executed = (staging / names[2]).resolve(), staging / names[0]
        t0 = time.perf_counter()
        error = None
        try:
            pm.execute_notebook(str(path), str(executed), kernel_name=kernel, cwd=str(path.parent),
                                parameters={"smoke": smoke, "seed": seed, "results_path": str(results)},
                                progress_bar=progress, store_widget_state=False)
        except PapermillExecutionError as exc:  # the failing cell's exception
            if exc.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
                raise KeyboardInterrupt from exc
            error = f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, could not start, …
            error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        seconds = time.perf_counter() - t0
        if html and executed.exists():
            atomic_write(staging / names[1], export_html(executed))
        if executed.exists():
            os.chmod(executed, 0o666 & ~_umask())
        data = json.loads(results.read_text()) if results.exists() else {"claims": {}, "figures": {}}
        _commit(staging, out_dir, names)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    data.update({"notebook": path.stem, "seconds": seconds, "error": error})
    return data


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def writable_dir(out: Path) -> Path:
    """Create ``out`` if needed and check a file can be written there; UsageError otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return out


def chosen_notebooks(names: list[str]) -> list[Path]:
    """``select`` over ``list_notebooks()``, with its errors as UsageError."""
    try:
        return select(names, list_notebooks())
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None


def cmd_run(args) -> int:
    chosen = chosen_notebooks(args.names)
    out = writable_dir(Path(args.out))
    runs = []
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} is not allowed: use 1 or more")
    cpus = _cpu_count()
    jobs = min(args.jobs or cpus, len(chosen))
    with tempfile.TemporaryDirectory() as tmp:
        kernel = current_kernel(Path(tmp))
        try:
            if jobs > 1:
                from nclab.runs import run_reporting

                run_reporting(chosen, out, smoke=args.smoke, seed=args.seed, kernel=kernel, jobs=jobs, cpus=cpus,
                              runs=runs)
            else:
                for i, path in enumerate(chosen, 1):
                    print(f"[{i}/{len(chosen)}] {path.stem} ({'smoke' if args.smoke else 'full'}, seed "
                          f"{args.seed}) ...", flush=True)
                    runs.append(run_notebook(path, out, smoke=args.smoke, seed=args.seed, kernel=kernel))
                    print(f"    {runs[-1]['seconds']:.1f} s" + (f", FAILED: {runs[-1]['error']}"
                                                               if runs[-1]["error"] else ""), flush=True)
        except KeyboardInterrupt:
            done = ", ".join(r["notebook"] for r in runs) or "none"
            print(f"\ninterrupted: {len(runs)} of {len(chosen)} notebooks finished ({done}); "
                  f"the interrupted notebooks left their previous files in {out.resolve()} untouched", file=sys.stderr)
            if runs:
                print(claims_table(runs)[0])
            return 130
    table, ok = claims_table(runs)
    print(table)
    print(f"\nexecuted notebooks, HTML and JSON in {out.resolve()}")
    print("all claims hold" if ok else "SOME CLAIMS FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------- nclab sweep
def _client(args):
    """A Dask client: to ``--scheduler`` (UsageError if unreachable), else a LocalCluster of ``--workers``
    processes with one thread each. Returns (client, cluster or None, description)."""
    import logging

    from distributed import Client, LocalCluster

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise UsageError(f"--scheduler {args.scheduler}: cannot connect ({str(err).splitlines()[0]})") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"scheduler {args.scheduler} ({n} workers now)"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # inherited by the worker processes and their kernels
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.CRITICAL)
    return Client(cluster), cluster, f"LocalCluster ({args.workers} worker processes × 1 thread)"


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cmd_sweep(args) -> int:
    from nclab import robustness, sweep

    chosen = chosen_notebooks(args.names)
    try:
        seeds = sweep.parse_seeds(args.seeds)
        axes = sweep.parse_axes(args.p)
        points = {p.stem: sweep.notebook_points(p, seeds, axes, args.smoke) for p in chosen}
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers} is not allowed: use 1 or more")
    args.workers = args.workers or _cpu_count()
    out = writable_dir(Path(args.out))
    todo, skipped = sweep.plan(chosen, points, out, args.retry_failed)
    total = sum(len(v) for v in points.values())
    print(f"sweep: {len(chosen)} notebooks, {total} points ({'smoke' if args.smoke else 'full'}); "
          f"skipping {skipped} already finished, {len(todo)} to run", flush=True)
    result = {"ran": 0, "failed": 0, "interrupted": False}
    if todo:
        client, cluster, where = _client(args)
        print(f"running on {where}", flush=True)
        t0 = time.perf_counter()
        try:
            result = sweep.run_sweep(todo, out, client, progress=not args.quiet)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        seconds = time.perf_counter() - t0
        print(f"points ran: {result['ran']} in {seconds:.1f} s ({result['failed']} failed)", flush=True)
    summary = robustness.report(out)
    if result["interrupted"]:
        print(f"interrupted: {result['ran']} of {len(todo)} points finished and are kept in {out}/points; "
              f"run the same command again to finish the rest", file=sys.stderr)
        return 130
    return _print_summary(summary, out)


def _print_summary(summary: dict, out: Path) -> int:
    all_hold = True
    for key, c in summary["claims"].items():
        all_hold &= c["holds"] == c["points"]
        print(f"{key:60s} holds {c['holds']:3d}/{c['points']:<3d}" + ("" if c["holds"] == c["points"]
                                                                    else f"  worst {c['worst_point']}"))
    for f in summary["failed_points"]:
        print(f"FAILED {f['notebook']}/{f['point']}: {f['error']}")
    print(f"report: {out / 'robustness.json'}, {out / 'robustness.html'}")
    return 0 if all_hold and not summary["failed_points"] else 1


def cmd_report(args) -> int:
    from nclab import robustness

    try:
        summary = robustness.report(Path(args.dir), markdown=args.markdown)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if args.markdown:
        print(f"wrote {args.markdown}")
    return _print_summary(summary, Path(args.dir))


# ---------------------------------------------------------------- entry point
def _parsers():
    parser = argparse.ArgumentParser(prog="nclab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="show the notebooks")
    sub.add_parser("student", help="write student + instructor notebooks: `nclab student OUT [--src DIR]`")
    sub.add_parser("site", help="build the offline course site: `nclab site OUT [--from results]`")
    run = sub.add_parser("run", help="execute notebooks headlessly and check their claims")
    run.add_argument("names", nargs="*", help="notebook names or parts of them (default: all)")
    run.add_argument("--smoke", action="store_true", help="small parameters (each notebook < 60 s)")
    run.add_argument("--out", default="results", help="folder for executed notebooks, HTML and JSON")
    run.add_argument("--seed", type=int, default=0, help="the notebooks' seed parameter (default 0)")
    run.add_argument("--jobs", type=int, help="notebooks at once, each in its own process (default: the CPUs)")
    sw = sub.add_parser("sweep", help="run notebooks over seeds and parameters on Dask; `nclab sweep report DIR`",
                        description="Each (notebook, parameter point) is one papermill run on a Dask worker; "
                                    "finished points are kept, so re-running resumes. `nclab sweep report DIR "
                                    "[--markdown FILE]` rewrites the report of a sweep folder.")
    sw.add_argument("names", nargs="*", help="notebook names or parts of them (default: all)")
    sw.add_argument("--seeds", default="0", help="A-B (inclusive) or a list 0,3,7 (default 0)")
    sw.add_argument("-p", action="append", default=[], metavar="NAME=V1,V2",
                    help="a parameter axis; values cast to the type of the notebook's default (repeatable)")
    sw.add_argument("--smoke", action="store_true", help="small parameters (each notebook < 60 s)")
    sw.add_argument("--out", required=True, help="sweep folder: points/<notebook>/<point-id>/ and the report")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: the CPU count)")
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--retry-failed", action="store_true", help="run again the points that failed before")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    rep = argparse.ArgumentParser(prog="nclab sweep report", description="write DIR/robustness.json and .html")
    rep.add_argument("dir", help="a sweep folder (--out of nclab sweep)")
    rep.add_argument("--markdown", help="also write the table as Markdown here, e.g. docs/robustness.md")
    return parser, rep


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, report_parser = _parsers()
    try:
        if argv[:2] == ["sweep", "report"]:
            return cmd_report(report_parser.parse_args(argv[2:]))
        if argv[:1] == ["student"]:  # student/instructor notebooks (nbgrader): nclab.teach
            from nclab.teach import main_student

            return main_student(argv[1:])
        if argv[:1] == ["site"]:  # the offline course site: nclab.site
            from nclab.site import main_site

            return main_site(argv[1:])
        args = parser.parse_args(argv)
        if args.cmd == "list":
            for p in chosen_notebooks([]):
                print(p.stem)
            return 0
        return cmd_run(args) if args.cmd == "run" else cmd_sweep(args)
    except UsageError as err:
        print(f"nclab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
