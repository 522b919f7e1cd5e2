"""Numerical claims of a notebook: every ``holds`` is computed from a measured value, a threshold and
a comparison, then written as JSON {"claims": {name: {value, threshold, op, holds}}, "figures": {…}}."""

from __future__ import annotations

import html
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

    def check(self, name: str, value, threshold, op: str = "<", why: str = "", says: str = "") -> Verdict:
        """Record claim ``value op threshold`` (op in <, <=, >, >=); NaN never holds. ``says`` is the claim in
        words (shown in the table), ``why`` where the threshold comes from (shown as a note)."""
        if op not in _OPS:
            raise ValueError(f"op={op!r} is not allowed: use one of {sorted(_OPS)}")
        value, threshold = float(value), float(threshold)
        holds = (not math.isnan(value)) and bool(_OPS[op](value, threshold))
        self.claims[name] = {"value": value, "threshold": threshold, "op": op, "holds": holds, "why": why,
                             "says": says}
        return Verdict(name, self.claims[name])

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

    def _repr_html_(self) -> str:
        """The claims as an HTML table (claim in words, measured, needed, ✓/✗) with the thresholds' reasons
        as numbered notes below it; Jupyter shows it when ``claims`` ends a cell."""
        rows, notes = [], []
        for name, c in self.claims.items():
            mark = "✓" if c["holds"] else "✗"
            ref = ""
            if c.get("why"):
                notes.append(html.escape(c["why"]))
                ref = f"<sup>{len(notes)}</sup>"
            said = html.escape(c.get("says") or name.replace("_", " "))
            rows.append(f"<tr><td style='text-align:left'>{said}{ref}<br><code>{html.escape(name)}</code></td>"
                        f"<td>{_num(c['value'])}</td><td>{html.escape(c['op'])} {_num(c['threshold'])}</td>"
                        f"<td style='color:{'#1a7f37' if c['holds'] else '#b00'}'><b>{mark}</b></td></tr>")
        held = sum(c["holds"] for c in self.claims.values())
        head = ("<tr><th style='text-align:left'>claim</th><th>measured</th><th>needed</th><th>holds</th></tr>")
        foot = "".join(f"<li>{n}</li>" for n in notes)
        return (f"<p><b>{held} of {len(self.claims)} claims hold.</b></p><table>{head}{''.join(rows)}</table>"
                + (f"<details><summary><small>where the thresholds come from</small></summary><ol><small>{foot}"
                   "</small></ol></details>" if foot else ""))

    def assert_all(self) -> None:
        """Raise AssertionError naming every claim that does not hold."""
        bad = [f"{n}: {c['value']:.4g} {c['op']} {c['threshold']:.3g} is false"
               for n, c in self.claims.items() if not c["holds"]]
        if bad:
            raise AssertionError("claims that do not hold:\n" + "\n".join(bad))


class Verdict:
    """What ``Claims.check`` returns: true when the claim holds; shows as one readable line, not ``True``."""

    def __init__(self, name: str, claim: dict):
        self.name, self.claim = name, claim

    def __bool__(self) -> bool:
        return bool(self.claim["holds"])

    def __repr__(self) -> str:
        c = self.claim
        said = c.get("says") or self.name.replace("_", " ")
        return f"{'✓' if c['holds'] else '✗'} {said}: {_num(c['value'])} {c['op']} {_num(c['threshold'])}"


def _num(x: float) -> str:
    """Short number: 4 significant digits, exponent form for very small/large values."""
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 or not math.isfinite(x) else f"{x:.2e}"


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
