"""Machinery of the checked exercises: run a student's function on fresh seeded inputs, compare it with the
nclab reference and with known wrong variants, and answer with a specific hint (never an exception).

A check returns a ``Feedback`` (status "correct", "not done", "wrong" or "error"); it displays itself in a
notebook and is truthy only when correct. A stub that raises ``NotImplementedError`` is reported "not done yet".
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ICONS = {"correct": "✓", "not done": "…", "wrong": "✗", "error": "✗"}


@dataclass
class Feedback:
    """Outcome of one check: ``label`` ("exercise 2 (sel_matrix)"), ``status`` and the hint ``message``."""

    label: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{ICONS[self.status]} {self.label}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        colour = {"correct": "#1a7f37", "not done": "#9a6700", "wrong": "#cf222e", "error": "#cf222e"}[self.status]
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px"><b>{ICONS[self.status]} '
                f'{html.escape(self.label)}</b>: {html.escape(self.message)}</div>')


@dataclass
class Spec:
    """One checked function: ``cases(rng)`` → list of argument tuples, ``reference(*args)``, ``variants`` =
    [(hint, wrong_fn), …] (typical mistakes), ``view`` maps an output before comparing (e.g. to a Gram)."""

    number: int
    name: str
    cases: Callable
    reference: Callable
    variants: list = field(default_factory=list)
    view: Callable | None = None
    rtol: float = 1e-6
    atol: float = 1e-9

    @property
    def label(self) -> str:
        return f"exercise {self.number} ({self.name})"


def as_array(x):
    """Torch tensors, numbers and arrays → float ndarray (real part if the imaginary part is round-off); None stays."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        if np.abs(arr.imag).max(initial=0) > 1e-8 * max(1.0, np.abs(arr.real).max(initial=0)):
            return arr
        arr = arr.real
    if arr.dtype == object:
        return arr
    return arr.astype(float)


def _close(a, b, spec: Spec) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype == object or b.dtype == object or np.iscomplexobj(a) != np.iscomplexobj(b):
        return False
    return bool(np.allclose(a, b, rtol=spec.rtol, atol=spec.atol, equal_nan=True))


def _view(spec: Spec, out):
    out = as_array(out)
    if spec.view is not None and out is not None and out.dtype != object and not np.iscomplexobj(out):
        try:
            return as_array(spec.view(out))
        except Exception:  # a wrongly shaped output: compare the raw array (the shape hint will say why)
            return out
    return out


def _describe(args) -> str:
    parts = []
    for a in args:
        arr = as_array(a) if not isinstance(a, list | tuple | str) else None
        if arr is not None and arr.ndim >= 1:
            parts.append(f"array{tuple(arr.shape)}")
        else:
            parts.append(repr(a) if not isinstance(a, float) else f"{a:.3g}")
    return "(" + ", ".join(parts) + ")"


def run(spec: Spec, fn: Callable, seed: int = 0, trials: int = 4) -> Feedback:
    """Call ``fn`` on ``trials`` sets of fresh inputs (seeded), compare with the reference and the variants."""
    if not callable(fn):
        return Feedback(spec.label, "error", f"pass your function itself (got {type(fn).__name__}), "
                                             f"e.g. check_{spec.name}({spec.name})")
    rng = np.random.default_rng([seed, spec.number, 2024])
    cases = [c for _ in range(trials) for c in spec.cases(rng)]
    got, want = [], []
    for args in cases:
        want.append(_view(spec, spec.reference(*copy.deepcopy(args))))
        try:
            with np.errstate(all="ignore"):  # NaN from a wrong formula gets its own hint below
                out = fn(*copy.deepcopy(args))
        except NotImplementedError:
            return Feedback(spec.label, "not done", "not done yet — replace the `raise NotImplementedError` "
                                                    "line with your code, then run this check again.")
        except Exception as exc:  # report, never crash the notebook
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return Feedback(spec.label, "error", f"your function raised {type(exc).__name__}: {exc} "
                                                 f"(line {where.lineno}) on input {_describe(args)}.")
        got.append(_view(spec, out))
    if all(_close(g, w, spec) for g, w in zip(got, want, strict=True)):
        return Feedback(spec.label, "correct", f"correct on {len(cases)} fresh random inputs.")
    for hint, wrong in spec.variants:
        with np.errstate(all="ignore"):
            outs = [_view(spec, wrong(*copy.deepcopy(args))) for args in cases]
        if all(_close(g, o, spec) for g, o in zip(got, outs, strict=True)):
            return Feedback(spec.label, "wrong", hint)
    return Feedback(spec.label, "wrong", _generic(got, want, cases, spec))


def _generic(got, want, cases, spec: Spec) -> str:
    """A hint from the first case where the answer differs: None, shape, NaN, transposed, a constant factor."""
    i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not _close(g, w, spec))
    g, w, where = got[i], want[i], f"on input {_describe(cases[i])}"
    if g is None or w is None:
        return f"expected {'None' if w is None else 'a value'} but got {'None' if g is None else 'a value'} {where}."
    if g.dtype == object or np.iscomplexobj(g):
        return f"your result is not a real number array (dtype {g.dtype}) {where}."
    if g.shape != w.shape:
        if g.ndim == 2 and g.T.shape == w.shape and np.allclose(g.T, w, rtol=spec.rtol, atol=spec.atol):
            return f"your result is transposed: expected shape {w.shape}, got {g.shape}."
        return f"expected shape {w.shape}, got {g.shape} {where}."
    if not np.all(np.isfinite(g)) and np.all(np.isfinite(w)):
        return f"your result contains NaN or inf {where} (a log or square root of 0 or of a negative number?)."
    wf, gf = w.ravel(), g.ravel()
    big = np.abs(wf) > 1e-9 * max(1.0, np.abs(wf).max())
    if big.any():
        ratios = gf[big] / wf[big]
        if np.allclose(ratios, ratios[0], rtol=1e-6) and np.allclose(gf[~big], 0, atol=1e-9):
            c = float(ratios[0])
            if np.isclose(c, -1):
                return f"right magnitude, wrong sign {where}: check the sign of your formula."
            return (f"off by a constant factor {c:.6g} {where}: check normalization (a mean vs a sum, "
                    f"a missing 1/n, τ or log base).")
    err = float(np.max(np.abs(g - w)))
    return f"not the expected values {where}: largest error {err:.3g}. Re-read the formula in the task."
