"""Sweeps on Dask distributed: a function or a notebook over a parameter grid, one task per point.

    map_grid(fn, {"seed": range(10), "R": [10, 100]})          # in-process, or client=Client(...)
    run_sweep(points, out, client)                              # notebooks: one papermill run per point

A grid is the Cartesian product of its axes (points = ∏ len(axis)). Notebook points are written by the client,
one folder ``out/points/<notebook>/<point-id>/`` per point (executed notebook + ``point.json``), each made in a
staging folder and renamed into place, so a re-run executes only the points that have no folder yet.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from nclab.claims import atomic_write

RESERVED = ("smoke", "seed", "results_path")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


# ---------------------------------------------------------------- grids and the function API
def grid(axes: dict | Iterable[dict]) -> list[dict]:
    """Points of a grid: the product of ``{name: values}`` axes (first axis slowest), or a list of dicts as is."""
    if isinstance(axes, dict):
        names, values = list(axes), [list(v) if isinstance(v, Iterable) and not isinstance(v, str) else [v]
                                     for v in axes.values()]
        for name, vals in zip(names, values, strict=True):
            if not vals:
                raise ValueError(f"axes[{name!r}] is empty: every axis needs at least one value")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    points = list(axes)
    if not all(isinstance(p, dict) for p in points):
        raise ValueError("axes must be a dict {name: values} or a list of dicts {name: value}")
    return points


def point_id(params: dict) -> str:
    """Stable folder name of a point: readable ``k=v,…`` (in the given order) + 8 hex digits of the sorted JSON."""
    readable = ",".join(f"{k}={v}" for k, v in params.items())
    readable = re.sub(r"[^A-Za-z0-9._=,+-]", "_", readable)[:80]
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def _call(fn: Callable, params: dict) -> dict:
    """One record: the point's parameters, then fn's dict (or {"result": value}), or {"error": text}."""
    record = dict(params)
    try:
        out = fn(**params)
    except Exception as exc:  # a failing point is a record, not the end of the sweep
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    record.update(out if isinstance(out, dict) else {"result": out})
    return record


def map_grid(fn: Callable, axes: dict | Iterable[dict], *, client=None, progress: bool = True,
             frame: bool | None = None, retries: int = 1):
    """``fn(**point)`` for every point of ``grid(axes)``: on a Dask ``client`` (one task per point) or in-process
    when ``client`` is None. Returns records in grid order (params + results; ``error`` if fn raised) — a pandas
    DataFrame when ``frame`` is True, or None and pandas is installed."""
    from tqdm.auto import tqdm

    points = grid(axes)
    if client is None:
        records = [_call(fn, p) for p in tqdm(points, desc="sweep", unit="point", disable=not progress)]
    else:
        from distributed import as_completed

        futures = client.map(_call, [fn] * len(points), points, pure=False, retries=retries)
        index = {f.key: i for i, f in enumerate(futures)}
        records: list = [None] * len(points)
        with tqdm(total=len(points), desc="sweep", unit="point", disable=not progress) as bar:
            for fut in as_completed(futures):
                try:
                    records[index[fut.key]] = fut.result()
                except Exception as exc:  # the worker died too often: keep the point, say why
                    records[index[fut.key]] = {**points[index[fut.key]], "error": f"{type(exc).__name__}: {exc}"}
                bar.update()
    if frame is None:
        try:
            import pandas  # noqa: F401
        except ImportError:
            frame = False
        else:
            frame = True
    if frame:
        import pandas as pd

        return pd.DataFrame.from_records(records)
    return records


# ---------------------------------------------------------------- notebook parameters
def parameters_of(path: Path) -> dict:
    """The literals assigned in a notebook's cell tagged ``parameters``: {name: default}."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            found = {}
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        found[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        found[node.targets[0].id] = None
            return found
    raise ValueError(f"notebook {Path(path).name} has no cell tagged 'parameters'")


def cast_value(name: str, text: str, default):
    """``text`` as the type of the notebook's literal ``default`` (bool, int, float, str, list/tuple/dict)."""
    kind = type(default)
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"-p {name}={text!r}: not a {kind.__name__} like the notebook's default {default!r}") from None
    if default is not None and not isinstance(value, kind):
        raise ValueError(f"-p {name}={text!r}: not a {kind.__name__} like the notebook's default {default!r}")
    return value


def parse_seeds(text: str) -> list[int]:
    """Seeds from 'A-B' (inclusive, A ≤ B), '0,3,7' or '5'; non-negative integers."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d+\s*-\s*\d+", text):
            a, b = (int(t) for t in text.split("-"))
            if a > b:
                raise ValueError
            return list(range(a, b + 1))
        seeds = [int(t) for t in text.split(",")]
        if not seeds or min(seeds) < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"--seeds {text!r} is not allowed: use A-B with 0 ≤ A ≤ B, or a list like 0,3,7") from None
    return list(dict.fromkeys(seeds))


def parse_axes(specs: list[str]) -> dict[str, list[str]]:
    """``-p name=v1,v2`` options → {name: [raw values]} (sorted by name, so point-ids do not depend on order)."""
    axes = {}
    for spec in specs:
        name, eq, values = spec.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier() or not values:
            raise ValueError(f"-p {spec!r} is not allowed: use -p name=v1,v2")
        if name in RESERVED:
            raise ValueError(f"-p {name}=… is not allowed: use --seeds / --smoke (results_path is set by nclab)")
        axes[name] = _split_values(values)
    return dict(sorted(axes.items()))


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets, so list values like [0.1,0.01] stay whole."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [v for v in out + [cur] if v.strip()]


def notebook_points(path: Path, seeds: list[int], axes: dict[str, list[str]], smoke: bool) -> list[dict]:
    """All parameter points of one notebook: smoke × seeds × the product of the -p axes (cast to its types)."""
    defaults = parameters_of(path)
    typed = {}
    for name, raw in axes.items():
        if name not in defaults:
            raise ValueError(f"-p {name}: notebook {path.stem} has no parameter {name!r} "
                             f"(its parameters: {', '.join(k for k in defaults if k not in RESERVED)})")
        typed[name] = [cast_value(name, v, defaults[name]) for v in raw]
    return grid({"smoke": [smoke], "seed": seeds, **typed})


# ---------------------------------------------------------------- one notebook point (runs on a worker)
_KERNEL_DIR: str | None = None


def _worker_kernel() -> str:
    """A kernelspec for this worker's Python, registered once per process."""
    global _KERNEL_DIR
    from nclab.cli import current_kernel

    if _KERNEL_DIR is None:
        _KERNEL_DIR = tempfile.mkdtemp(prefix="nclab-kernel-")
        atexit.register(shutil.rmtree, _KERNEL_DIR, True)
    return current_kernel(Path(_KERNEL_DIR))


def execute_point(nb_text: str, name: str, params: dict, cwd: str | None = None, threads: int = 1) -> dict:
    """Execute one notebook (its JSON text) with papermill at ``params`` on this machine; return the point's
    record with the executed notebook as text. A notebook error is part of the record, not an exception."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    for var in THREAD_VARS:  # the kernel inherits these: one BLAS/torch thread per worker thread
        os.environ[var] = str(threads)
    kernel = _worker_kernel()
    with tempfile.TemporaryDirectory(prefix="nclab-point-") as tmp:
        src, dst, res = Path(tmp) / "in.ipynb", Path(tmp) / f"{name}.ipynb", Path(tmp) / "claims.json"
        src.write_text(nb_text, encoding="utf-8")
        error, t0 = None, time.perf_counter()
        try:
            pm.execute_notebook(str(src), str(dst), parameters={**params, "results_path": str(res)},
                                kernel_name=kernel, cwd=cwd if cwd and Path(cwd).is_dir() else tmp,
                                progress_bar=False, store_widget_state=False)
        except PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}" + (f" (cell {exc.exec_count})" if exc.exec_count else "")
        seconds = time.perf_counter() - t0
        claims = json.loads(res.read_text()) if res.exists() else {}
        executed = dst.read_text(encoding="utf-8") if dst.exists() else None
    return {"notebook": name, "point": point_id(params), "params": params, "claims": claims.get("claims", {}),
            "figures": claims.get("figures", {}), "error": error, "seconds": seconds,
            "host": socket.gethostname(), "executed": executed}


# ---------------------------------------------------------------- points on disk (written by the client)
def point_dir(out: Path, notebook: str, params: dict) -> Path:
    return Path(out) / "points" / notebook / point_id(params)


def finished_points(out: Path) -> list[dict]:
    """Every finished point under ``out/points`` (its point.json), sorted by notebook and point-id."""
    found = []
    for file in sorted(Path(out).glob("points/*/*/point.json")):
        if not file.parent.name.startswith("."):
            found.append(json.loads(file.read_text(encoding="utf-8")))
    return found


def write_point(out: Path, record: dict) -> Path:
    """Write a point's folder (executed notebook + point.json) in a staging folder, then rename it into place."""
    final = point_dir(out, record["notebook"], record["params"])
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".staging"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        if record.get("executed"):
            atomic_write(staging / f"{record['notebook']}.ipynb", record["executed"])
        meta = {k: v for k, v in record.items() if k != "executed"}
        atomic_write(staging / "point.json", json.dumps(meta, indent=2, default=_json_default))
        old = None
        if final.exists():  # a failed point run again: swap the folders, then drop the old one
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _json_default(x):
    return x.item() if hasattr(x, "item") else str(x)


# ---------------------------------------------------------------- the notebook sweep (client side)
def plan(notebooks: list[Path], points: dict[str, list[dict]], out: Path, retry_failed: bool = False):
    """Split the points into (to run, skipped): a point is skipped when its folder has a point.json
    (and it did not fail, or ``retry_failed`` is False)."""
    todo, skipped = [], 0
    for path in notebooks:
        for params in points[path.stem]:
            meta = point_dir(out, path.stem, params) / "point.json"
            if meta.exists() and not (retry_failed and json.loads(meta.read_text()).get("error")):
                skipped += 1
            else:
                todo.append((path, params))
    return todo, skipped


def run_sweep(todo: list[tuple[Path, dict]], out: Path, client, *, progress: bool = True, retries: int = 2,
              log=print) -> dict:
    """Submit every (notebook, params) point to ``client``; write each as it finishes. Returns counts
    {"ran", "failed", "interrupted"}; Ctrl-C cancels what is still running and keeps what finished."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    texts = {path: path.read_text(encoding="utf-8") for path, _ in todo}
    futures = {}
    for path, params in todo:
        key = f"nclab-point-{path.stem}-{point_id(params)}-{os.getpid()}-{time.time_ns()}"
        fut = client.submit(execute_point, texts[path], path.stem, params, str(path.parent.resolve()),
                            key=key, pure=False, retries=retries)
        futures[fut] = (path, params)
    ran = failed = 0
    bar = tqdm(total=len(futures), desc="sweep", unit="point", disable=not progress, file=sys.stderr)
    try:
        for fut in as_completed(list(futures)):
            path, params = futures[fut]
            try:
                record = fut.result()
            except Exception as exc:  # retries used up (e.g. a worker died every time): record why
                record = {"notebook": path.stem, "point": point_id(params), "params": params, "claims": {},
                          "figures": {}, "error": f"{type(exc).__name__}: {exc}", "seconds": None,
                          "host": None, "executed": None}
            write_point(out, record)
            ran += 1
            if record["error"]:
                failed += 1
                bar.write(f"  {path.stem} {record['point']}: FAILED: {record['error']}")
            bar.update()
    except KeyboardInterrupt:
        bar.close()
        client.cancel(list(futures))
        return {"ran": ran, "failed": failed, "interrupted": True}
    bar.close()
    return {"ran": ran, "failed": failed, "interrupted": False}
