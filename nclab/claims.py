"""Numerical claims of a notebook: every ``holds`` is computed from a measured value, a threshold and
a comparison, then written as JSON {"claims": {name: {value, threshold, op, holds}}, "figures": {…}}."""

from __future__ import annotations

import json
import math
import operator
import os
import tempfile
from pathlib import Path

import numpy as np

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Claims:
    """Collects claims and headline figures; ``assert_all`` fails loudly listing what did not hold."""

    def __init__(self, notebook: str = ""):
        self.notebook = notebook
        self.claims: dict[str, dict] = {}
        self.figures: dict[str, object] = {}

    def check(self, name: str, value, threshold, op: str = "<", why: str = "") -> bool:
        """Record claim ``value op threshold`` (op in <, <=, >, >=); NaN never holds."""
        if op not in _OPS:
            raise ValueError(f"op={op!r} is not allowed: use one of {sorted(_OPS)}")
        value, threshold = float(value), float(threshold)
        holds = (not math.isnan(value)) and bool(_OPS[op](value, threshold))
        self.claims[name] = {"value": value, "threshold": threshold, "op": op, "holds": holds, "why": why}
        return holds

    def figure(self, name: str, value) -> None:
        """Record a headline figure (numbers, arrays, dicts: stored as JSON-ready Python values)."""
        self.figures[name] = _jsonable(value)

    def to_dict(self) -> dict:
        return {"notebook": self.notebook, "claims": self.claims, "figures": self.figures}

    def write(self, path) -> Path | None:
        """Write the JSON atomically (temp file + rename); ``None`` path writes nothing."""
        if path is None:
            return None
        return atomic_write(path, json.dumps(self.to_dict(), indent=2))

    def table(self) -> str:
        """Plain-text table: claim, value, op, threshold, holds."""
        rows = [f"{'claim':40s} {'value':>12s} op {'threshold':>10s}  holds"]
        for name, c in self.claims.items():
            rows.append(f"{name:40s} {c['value']:12.4g} {c['op']:2s} {c['threshold']:10.3g}  {c['holds']}")
        return "\n".join(rows)

    def assert_all(self) -> None:
        """Raise AssertionError naming every claim that does not hold."""
        bad = [f"{n}: {c['value']:.4g} {c['op']} {c['threshold']:.3g} is false"
               for n, c in self.claims.items() if not c["holds"]]
        if bad:
            raise AssertionError("claims that do not hold:\n" + "\n".join(bad))


def atomic_write(path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder + ``os.replace`` (readers never see a
    partial file); the file gets the usual permissions 0666 & ~umask (mkstemp alone would give 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
