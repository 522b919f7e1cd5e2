"""Common bad-input tests for every public function of nclab (in the spirit of scikit-learn's check_estimator).

Every public callable (a module's ``__all__``, else the functions/classes it defines whose names do not start
with ``_``) gets one valid *baseline* call built from a table of example values by parameter name; then each
parameter whose kind is known from its name (sizes, k, probabilities, τ/λ/lr, labels, matrices, choices…)
is replaced in turn by bad values of that kind. Outcomes of an attempt:

  clear      ValueError/TypeError whose message names the parameter          (pass)
  message    ValueError/TypeError that does not name it                      (fail)
  raw        any other exception (IndexError, RuntimeError, cvxpy/torch…)     (fail)
  nan        returned NaN/inf where the baseline's answer is finite           (fail: silent NaN)
  accepted   returned an answer for an invalid input                          (fail: wrong answer accepted)
  hang       no answer within the per-call timeout                            (fail)

Calls run in one worker process per module; the parent kills a worker that exceeds the per-call timeout,
records the hang and restarts it after that attempt. ``python -m tests.test_common_inputs [modules…]`` prints
the table and every failure. New public functions are covered automatically (or listed as "no baseline").
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import re
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("clear", "allowed", "message", "raw", "nan", "accepted", "hang")
FAILURES = OUTCOMES[2:]
CALL_TIMEOUT = 8.0  # seconds per bad-input call (a valid call here takes well under a second)
BASELINE_TIMEOUT = 90.0  # a valid baseline call may load data or train a few steps (first call: lazy imports)
START_TIMEOUT = 120.0  # importing torch/cvxpy on a loaded 2-core machine

# Every module's failures fail the test (the first rounds kept a list of modules still being fixed; none is left).

# Callables that are not entry points for user values, with the reason (printed in the report).
SKIP = {
    "Geometry": "result container (built by the solvers)", "UFMResult": "result container",
    "SphereResult": "result container", "MCLResult": "result container", "Verdict": "result container",
    "BatchSchedule": "built by scl.schedule", "TrainingDiverged": "exception class",
    "StaticFigure": "widget (tests/test_plots_apps.py)", "as_widget": "widget (tests/test_plots_apps.py)",
    "view": "widget (tests/test_plots_apps.py)", "App": "widget base class (tests/test_plots_apps.py)",
    "HFCausalLM": "needs a transformers model (optional adapter)",
    "transfer_pipeline": "trains two networks (minutes): tests/test_darex.py",
    "evaluate_methods": "needs transfer_pipeline's output", "scl_representations": "trains networks (minutes)",
    "main_site": "command line (argv): tests/test_site.py", "main_student": "command line (argv): tests/test_teach.py",
    "summarize": "reads a sweep's point records: tests/test_sweep.py",
    "thresholds": "reads a sweep's point records: tests/test_sweep.py",
}
SKIP_PATTERNS = (r"_app$", r"_figures$", r"^apply_")  # widget builders / figure writers of nclab.apps

# "Bad" values that are in fact valid for one function (outcome "allowed", with the reason, not a failure).
_TORCH_NAN = "a torch loss propagates NaN/inf from its input tensor (trainers stop with TrainingDiverged)"
ALLOWED = {
    ("nclab.frames", "orthogonal_frame", "k", "1"): "one unit vector is an orthogonal frame (I_1)",
    ("nclab.losses", "make_loss", "tau", "0"): "τ = 0 turns logit adjustment off: plain CE",
    **{("nclab.losses", f, p, lab): _TORCH_NAN for f, p in (("cross_entropy", "logits"), ("supcon", "features"))
       for lab in ("NaN entry", "inf entry")},
    **{("nclab.prototypes", "fixed_classifier_ce", "features", lab): _TORCH_NAN for lab in ("NaN entry", "inf entry")},
    ("nclab.mcl", "boosted_probs", "alpha", "0"): "α = 0 turns boosting off: plain decoding, the baseline it is "
                                                   "compared with",
}


def public_callables(module) -> list[tuple[str, object]]:
    """(name, object) for the module's ``__all__`` or, without one, what it defines not starting with ``_``."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n, o in vars(module).items() if not n.startswith("_") and
                 getattr(o, "__module__", None) == module.__name__ and callable(o)]
    return [(n, getattr(module, n)) for n in names if callable(getattr(module, n))]


def modules() -> list[str]:
    import nclab
    import nclab.apps

    names = ["nclab._threads"] + [m.name for m in pkgutil.iter_modules(nclab.__path__, "nclab.")
                                  if not m.name.rsplit(".", 1)[1].startswith("_") and not m.ispkg]
    names += [m.name for m in pkgutil.iter_modules(nclab.apps.__path__, "nclab.apps.")]
    return [n for n in names if n not in ("nclab.cli",)]  # the CLI has its own tests (argv, exit codes)


# ------------------------------------------------------------------ valid example values (by parameter name)
def _valid() -> dict:
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [3, 3, 2, 2])  # k = 4, n = 10
    etf = (np.eye(4) - 0.25) * 4 / 3
    P = np.array([[0.5, 1.0], [0.5, 0.0], [0.0, 0.0]])
    return {
        "sizes": lambda: [5, 5, 2, 2], "class_sizes": lambda: [5, 5, 2, 2], "k": lambda: 4, "k_min": lambda: 2,
        "R": lambda: 10.0, "n_min": lambda: 1, "n_max": lambda: 20, "gamma": lambda: 0.5, "delta_ratio": lambda: 2.0,
        "tau": lambda: 1.0, "lam": lambda: 0.1, "y": lambda: y.copy(), "ytr": lambda: y.copy(), "yte": lambda: y.copy(),
        "H": lambda: rng.standard_normal((3, 10)), "Htr": lambda: rng.standard_normal((3, 10)),
        "Hte": lambda: rng.standard_normal((3, 10)), "W": lambda: rng.standard_normal((4, 3)),
        "A": lambda: np.array([[2.0, 1.0], [1.0, 2.0]]), "B": lambda: np.array([[1.0, 0.0], [0.0, 3.0]]),
        "G": lambda: etf.copy(), "gram": lambda: etf.copy(), "M": lambda: np.eye(4) - 0.25,
        "majority": lambda: np.array([True, True, False, False]), "P": lambda: P.copy(),
        "pi": lambda: np.array([0.5, 0.5]), "S": lambda: P > 0, "L": lambda: rng.standard_normal((3, 2)),
        "delta": lambda: np.array([2.0, 2.0, 1.0, 1.0]), "gammas": lambda: (-0.5, 0.0, 0.5),
        "n_per_class": lambda: 3, "length": lambda: 20, "seed": lambda: 0,
        "logits": lambda: torch.randn(10, 4, dtype=torch.float64),
        "features": lambda: torch.nn.functional.normalize(torch.randn(10, 4, dtype=torch.float64), dim=1),
        "prototypes": lambda: np.eye(4), "n_w": lambda: 2, "iters": lambda: 5, "epochs": lambda: 2,
        "steps": lambda: 2, "progress": lambda: False, "d": lambda: 4, "x": lambda: rng.standard_normal(5),
        "Delta": lambda: rng.standard_normal((3, 5)), "points": lambda: 5, "draws": lambda: 20,
        "lengths": lambda: [1, 2, 4], "tokens": lambda: "a b c a b d a b c".split(),
        "context_length": lambda: 1, "V": lambda: 6, "m": lambda: 6, "patterns": lambda: 3,
        "max_support": lambda: 2, "r": lambda: 1, "groups": lambda: np.array([0, 0, 1]),
        "entries": lambda: {f"{t}_{k}": v for t in "wh" for k, v in
                            (("maj_sq", 2.0), ("min_sq", 1.0), ("maj_maj", 0.5), ("min_min", 0.2), ("maj_min", -0.3))},
        "k_maj": lambda: 2, "mats": lambda: {"a": np.eye(2)}, "series": lambda: {"s": np.arange(3.0)},
        "histories": lambda: {"run": {"step": [0, 1, 2], "d": [1.0, 0.5, 0.2]}}, "keys": lambda: ["d"],
        "notebook": lambda: "nb", "name": lambda: "light", "log10_lam": lambda: -2.0, "p": lambda: 0.5,
        "q": lambda: 0.5, "delta_mean": lambda: 0.0, "delta_std": lambda: 0.01, "x_scale": lambda: 1.0,
        "alpha": lambda: 0.5, "p_full": lambda: np.array([0.7, 0.2, 0.1]), "p_short": lambda: np.array([0.3, 0.4, 0.3]),
        "nonneg": lambda: False, "relu": lambda: True, "binding": lambda: False, "preset": lambda: "ETF",
        "batch_size": lambda: 5,
    }


def _overrides() -> dict:
    """Per-function baselines where the name table does not fit: (module, function) → {param: factory}."""
    import numpy as np
    import torch

    def mlp():
        from nclab.nets import MLP

        return MLP(4, 4, hidden=8, depth=1, feat_dim=4, seed=0)

    y = np.repeat(np.arange(4), [3, 3, 2, 2])
    ty = lambda: torch.as_tensor(y)  # noqa: E731
    X = np.random.default_rng(1).standard_normal((10, 4))
    data = lambda: __import__("nclab.ntp", fromlist=["x"]).NTPData(np.array([[0.5, 1.0], [0.5, 0.0]]))  # noqa: E731
    return {
        ("nclab.frames", "psd_sqrt"): {}, ("nclab.metrics", "normalized"): {},
        ("nclab.data", "take_sizes"): {"X": lambda: X.copy(), "sizes": lambda: [2, 2, 1, 1]},
        ("nclab.data", "step_imbalanced"): {"k": lambda: 4, "k_min": lambda: 2, "R": lambda: 2.0, "n_min": lambda: 2},
        ("nclab.nets", "MLP"): {"in_dim": lambda: 4, "k": lambda: 4, "hidden": lambda: 8, "feat_dim": lambda: 4},
        ("nclab.nets", "train_classifier"): {"model": mlp, "X": lambda: X.copy(), "epochs": lambda: 2},
        ("nclab.nets", "last_layer"): {"model": mlp, "X": lambda: X.copy()},
        ("nclab.nets", "embed"): {"model": lambda: mlp().double(), "X": lambda: X.copy()},
        ("nclab.nets", "imbalanced_last_layer"): {"epochs": lambda: 2, "hidden": lambda: 8, "R": lambda: 2.0,
                                                  "n_min": lambda: 2},
        ("nclab.nets", "ContrastiveMLP"): {"in_dim": lambda: 4},
        ("nclab.nets", "ContextMLP"): {"V": lambda: 2, "context_length": lambda: 1},
        ("nclab.losses", "cross_entropy"): {"y": ty}, ("nclab.losses", "supcon"): {"y": ty},
        ("nclab.losses", "make_loss"): {"kind": lambda: "la"},
        ("nclab.losses", "get_loss"): {"loss": lambda: "ce"},
        ("nclab.losses", "LogitAdjustedCE"): {"omega": lambda: np.ones(4), "Delta": lambda: np.ones(4),
                                              "iota": lambda: np.zeros(4), "delta": lambda: np.ones(4)},
        ("nclab.prototypes", "fixed_classifier_ce"): {"y": ty},
        ("nclab.prototypes", "prototype_set"): {"kind": lambda: "etf"},
        ("nclab.prototypes", "ProtoSupCon"): {"prototypes": lambda: np.eye(4)},
        ("nclab.cssvm", "gamma_curves"): {"kind": lambda: "cdt"},
        ("nclab.convex", "cs_svm"): {"kind": lambda: "cdt"},
        ("nclab.convex", "scl_gram_samples"): {"y": lambda: np.array([0, 0, 1, 1])},
        ("nclab.plots", "curves"): {"x": lambda: np.arange(3.0)},
        ("nclab.plots", "add_vline"): {"fig": lambda: __import__("plotly.graph_objects", fromlist=["x"]).Figure(),
                                       "x": lambda: 1.0},
        ("nclab.scl", "schedule"): {"kind": lambda: "full"},
        ("nclab.scl", "check_batches"): {"batches": lambda: [np.arange(10)]},
        ("nclab.scl", "meeting_matrix"): {"batches": lambda: [np.arange(10)]},
        ("nclab.ntp", "in_support_logits"): {"data": data},
        ("nclab.ntp", "NTPData"): {}, ("nclab.ntp", "subspace_collapse"): {"H": lambda: np.eye(3)},
        ("nclab.ntp", "synthetic"): {},
        ("nclab.ntp", "ntp_loss"): {"data": data, "L": lambda: np.zeros((2, 2))},
        ("nclab.ntp", "toy_corpus"): {"sentences": lambda: 20},
        ("nclab.ntp", "decompose"): {"L": lambda: np.ones((3, 2)), "S": lambda: np.array([[1, 1], [1, 0], [0, 0]]) > 0},
        ("nclab.ntp", "from_tokens"): {},
        ("nclab.ufm", "train_ufm"): {"y": lambda: np.repeat(np.arange(4), [3, 3, 2, 2]), "steps": lambda: 3,
                                     "record": lambda: 2},
        ("nclab.ufm", "log_schedule"): {"steps": lambda: 100, "points": lambda: 5},
        ("nclab.ufm", "train_sphere_ufm"): {"loss": lambda: __import__("nclab.losses", fromlist=["x"]).SupCon(1.0),
                                            "epochs": lambda: 2, "record": lambda: 2},
        ("nclab.ufm", "project_sphere"): {"H": lambda: torch.randn(4, 3, dtype=torch.float64)},
        ("nclab.mcl", "divergence"): {"p": lambda: np.array([[0.5, 0.5]]), "q": lambda: np.array([[0.9, 0.1]])},
        ("nclab.mcl", "check_schedule"): {"schedule": lambda: [1, 2, 4]},
        ("nclab.mcl", "mcl_from_probs"): {"P": lambda: np.array([[0.4, 0.6], [0.9, 0.1], [0.95, 0.05]]),
                                          "target": lambda: 0},
        ("nclab.mcl", "damcl_from_probs"): {"P": lambda: np.array([[0.4, 0.6], [0.9, 0.1], [0.95, 0.05]])},
        ("nclab.mcl", "score_from_probs"): {"P": lambda: np.array([[0.4, 0.6], [0.9, 0.1], [0.95, 0.05]]),
                                            "short": lambda: 2},
        ("nclab.mcl", "boosted_probs"): {},
        ("nclab.mcl", "truncation_batch"): {"prefix": lambda: np.array([0, 3, 5, 2]), "schedule": lambda: [1, 2]},
        ("nclab.mcl", "TinyTransformer"): {"V": lambda: 6, "max_len": lambda: 8, "d": lambda: 8, "heads": lambda: 2,
                                           "layers": lambda: 1},
        ("nclab.darex", "q_grid"): {"p": lambda: 0.9},
        ("nclab.darex", "q_e"): {"p": lambda: 0.9, "delta": lambda: torch.ones(3, 5)},
        ("nclab.darex", "q_star"): {"p": lambda: 0.9}, ("nclab.darex", "output_change_stats"): {"p": lambda: 0.9},
        ("nclab.darex", "output_change_mc"): {"p": lambda: 0.9},
        ("nclab.darex", "recommend"): {"p": lambda: 0.9, "delta_scale": lambda: "small", "labels": lambda: True,
                                       "can_refinetune": lambda: False},
        ("nclab.darex", "dare"): {"delta": lambda: {"w": torch.ones(3, 3)}, "p": lambda: 0.5},
        ("nclab.darex", "magnitude_prune"): {"delta": lambda: {"w": torch.ones(3, 3)}, "p": lambda: 0.5},
        ("nclab.darex", "to_sparse"): {"delta": lambda: {"w": torch.ones(3, 3)}},
        ("nclab.darex", "storage_bytes"): {"obj": lambda: {"w": torch.ones(3, 3)}},
        ("nclab.darex", "extract_delta"): {"pre": lambda: {"w": torch.zeros(2)}, "ft": lambda: {"w": torch.ones(2)}},
        ("nclab.darex", "apply_delta"): {"pre": lambda: {"w": torch.zeros(2)}, "delta": lambda: {"w": torch.ones(2)}},
        ("nclab.data", "KeyRecallLanguage"): {},
        ("nclab.apps.seli", "seli_theory_state"): {"points": lambda: 5},
        ("nclab.apps.seli", "ridge_state"): {"points": lambda: 3, "R": lambda: 2.0},
        ("nclab.apps.seli", "ridge_path"): {"sizes": lambda: (2, 1), "lams": lambda: (0.1,)},
        ("nclab.apps.cssvm", "cssvm_state"): {"kind": lambda: "cdt", "solver_points": lambda: 2, "R": lambda: 2.0},
        ("nclab.apps.cssvm", "cssvm_solver_curves"): {"kind": lambda: "cdt", "gammas": lambda: (0.0,),
                                                      "R": lambda: 2.0},
        ("nclab.apps.scl", "scl_theory_state"): {"R": lambda: 2.0},
        ("nclab.apps.scl", "batching_state"): {"scheme": lambda: "partition", "epochs": lambda: 2},
        ("nclab.apps.ntp", "ntp_data_state"): {"seed": lambda: 0},
        ("nclab.apps.darex", "darex_theory_state"): {"p": lambda: 0.9, "q": lambda: 0.1},
        ("nclab.apps.prototypes", "prototypes_state"): {"preset": lambda: "ETF", "n_w": lambda: 1,
                                                        "R": lambda: 2, "relu": lambda: False},
        ("nclab.apps.prototypes", "prototype_geometry"): {"preset": lambda: "ETF", "n_w": lambda: 1,
                                                          "R": lambda: 2, "relu": lambda: False, "epochs": lambda: 2},
        ("nclab.apps.base", "nan_to_none"): {"a": lambda: np.array([1.0, np.nan])},
    }


# ------------------------------------------------------------------ bad values by parameter kind
_SIZE = {"n", "d", "V", "m", "n_min", "n_max", "in_dim", "hidden", "depth", "feat_dim", "emb", "context_length",
         "patterns", "max_len", "heads", "layers", "points", "solver_points", "grid_points", "draws", "samples",
         "seeds", "restarts", "sentences", "n_per_class", "length", "n_keys", "n_fillers", "short", "r",
         "batch_size", "batch", "epochs", "steps", "iters", "record", "pre_epochs", "ft_epochs", "k_maj",
         "max_support", "k_min", "start", "positions", "target", "t", "n_w", "test_per_class", "step"}
_PROB = {"p", "q", "rho", "peak", "p_adj", "p_intransitive", "underuse", "momentum"}
_POS = {"tau", "lam", "lr", "ft_lr", "delta_ratio", "step0", "x_scale", "init_scale", "R", "R_max", "alpha"}
_NONNEG = {"weight_decay", "feature_penalty", "reg", "delta_std", "threshold", "scale"}
_REAL = {"gamma", "log10_lam", "delta_mean", "zmid"}
_SIZES = {"sizes", "class_sizes"}
_LABELS = {"y", "ytr", "yte"}
_MATRIX = {"A", "B", "G", "H", "W", "M", "X", "P", "L", "S", "gram", "prototypes", "Htr", "Hte", "Delta", "pi",
           "features", "logits", "p_full", "p_short"}
_CHOICE = {"kind", "reduction", "source", "div", "metric", "optimizer", "mode", "target", "preset", "scheme",
           "delta_scale", "frequencies"}


def kind_of(name: str, default) -> str | None:
    if isinstance(default, bool):
        return None
    if isinstance(default, str):
        return "choice" if name in _CHOICE or name == "target" else None
    if name in ("k",):
        return "k"
    if name == "seed":
        return "seed"
    for kind, names in (("size", _SIZE), ("prob", _PROB), ("pos", _POS), ("nonneg", _NONNEG), ("real", _REAL),
                        ("sizes", _SIZES), ("labels", _LABELS), ("matrix", _MATRIX), ("choice", _CHOICE)):
        if name in names:
            return kind
    return None


def bad_values(kind: str, name: str, baseline, default) -> list[tuple[str, object]]:
    """(label, value) pairs that are invalid for a parameter of this kind."""
    import numpy as np

    nan, inf = float("nan"), float("inf")
    if kind == "k":
        vals = [("1", 1), ("0", 0), ("-1", -1), ("2.5", 2.5), ("'4'", "4"), ("1e30", 10**30)]
    elif kind == "size":
        vals = [("-1", -1), ("2.5", 2.5), ("nan", nan), ("'4'", "4"), ("1e30", 10**30)]
        if name not in ("n_w", "test_per_class", "start", "target"):
            vals.insert(0, ("0", 0))
    elif kind == "seed":
        vals = [("-1", -1), ("2.5", 2.5), ("'0'", "0")]
    elif kind == "prob":
        vals = [("-0.1", -0.1), ("1.5", 1.5), ("nan", nan)]
    elif kind == "pos":
        vals = [("0", 0.0), ("-1", -1.0), ("nan", nan), ("inf", inf), ("'x'", "x")]
        if name in ("R", "R_max"):
            vals.append(("0.5", 0.5))
    elif kind == "nonneg":
        vals = [("-1", -1.0), ("nan", nan), ("inf", inf)]
    elif kind == "real":
        vals = [("nan", nan), ("inf", inf), ("'x'", "x")]
    elif kind == "sizes":
        vals = [("[5]", [5]), ("[]", []), ("[5,0]", [5, 0]), ("[5,-2]", [5, -2]), ("[5,2.5]", [5, 2.5]),
                ("[5,nan]", [5, nan]), ("['a','b']", ["a", "b"]), ("2-D", [[5, 5], [2, 2]]), ("[10,1e20]", [10, 1e20])]
    elif kind == "labels":
        vals = [("[]", np.array([], dtype=int)), ("non-integer", [0, 1, 2.5]), ("negative", [-1, 0, 1]),
                ("strings", ["a", "b", "c"]), ("2-D", [[0, 1], [1, 0]]), ("wrong length", _drop_last(baseline))]
    elif kind == "matrix":
        vals = [("NaN entry", _poison(baseline, nan)), ("inf entry", _poison(baseline, inf)),
                ("strings", [["a", "b"], ["c", "d"]]), ("empty", _empty_like(baseline))]
    elif kind == "choice":
        vals = [("'nope'", "nope"), ("3", 3)]
    else:
        return []
    return [(lab, v) for lab, v in vals if not _same(v, default)]


def _same(v, default) -> bool:
    try:
        return type(v) is type(default) and bool(v == default)
    except Exception:
        return False


def _poison(x, value):
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        out = x.clone().to(torch.float64)
        out.view(-1)[0] = value
        return out
    a = np.array(x, dtype=float)
    a.reshape(-1)[0] = value
    return a


def _empty_like(x):
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return torch.zeros((0,) * x.ndim, dtype=x.dtype)
    return np.zeros((0,) * max(1, np.ndim(x)))


def _drop_last(x):
    import numpy as np

    return np.asarray(x)[:-1]


# ------------------------------------------------------------------ attempts and their outcomes
def attempts(module_name: str) -> tuple[list[dict], list[dict]]:
    """(attempts, notes): one attempt per (function, parameter, bad value); notes list skipped callables,
    missing baselines and failed baseline calls."""
    import re as _re

    module = importlib.import_module(module_name)
    valid, over = _valid(), _overrides()
    out, notes = [], []
    for fname, obj in public_callables(module):
        widget = module_name.startswith("nclab.apps.") and any(_re.search(p, fname) for p in SKIP_PATTERNS)
        if fname in SKIP or widget:
            notes.append({"func": fname, "note": "skipped: " + SKIP.get(fname, "widget builder (apps)")})
            continue
        if module_name == "nclab._checks":
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            notes.append({"func": fname, "note": "no signature"})
            continue
        table = {**valid, **over.get((module_name, fname), {})}
        base, missing = {}, []
        params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        for p in params:
            if p.name in over.get((module_name, fname), {}) or (p.default is p.empty and p.name in table):
                base[p.name] = table[p.name]
            elif p.default is p.empty:
                missing.append(p.name)
            elif p.name in ("progress", "epochs", "steps", "iters", "draws", "record") and p.name in table:
                base[p.name] = table[p.name]
        if missing:
            notes.append({"func": fname, "note": f"no baseline value for {missing}"})
            continue
        for p in params:
            kind = kind_of(p.name, p.default)
            if kind is None:
                continue
            ref = base[p.name]() if p.name in base else p.default
            default = None if p.default is p.empty else p.default
            for label, value in bad_values(kind, p.name, ref, default):
                if label == "wrong length" and not any(kind_of(q.name, q.default) == "matrix" for q in params):
                    continue  # a label vector alone has no length to disagree with
                out.append({"func": fname, "param": p.name, "label": label, "value": value, "base": base})
        out.append({"func": fname, "param": None, "label": "baseline", "value": None, "base": base})
    return out, notes


def _has_nonfinite(x, depth: int = 0) -> bool:
    import numpy as np
    import torch

    if depth > 4:
        return False
    if isinstance(x, bool | str | bytes) or x is None:
        return False
    if isinstance(x, int | float | complex | np.number):
        return not np.isfinite(x)
    if isinstance(x, torch.Tensor):
        return x.is_floating_point() and not bool(torch.isfinite(x).all())
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "fc" and not bool(np.isfinite(x).all())
    if isinstance(x, dict):
        return any(_has_nonfinite(v, depth + 1) for v in x.values())
    if isinstance(x, list | tuple):
        return any(_has_nonfinite(v, depth + 1) for v in x[:1000])
    if hasattr(x, "__dataclass_fields__"):
        return any(_has_nonfinite(getattr(x, f), depth + 1) for f in x.__dataclass_fields__)
    return False


def names_param(message: str, param: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(param)}(?![A-Za-z0-9])", message) is not None


def run_attempt(module, a: dict, baseline_nonfinite: bool) -> dict:
    import warnings

    obj = getattr(module, a["func"])
    kwargs = {k: f() for k, f in a["base"].items()}
    if a["param"] is not None:
        kwargs[a["param"]] = a["value"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = obj(**kwargs)
    except (ValueError, TypeError) as err:
        if a["param"] is None:
            return {"outcome": "baseline_error", "detail": f"{type(err).__name__}: {err}"[:300]}
        ok = names_param(str(err), a["param"])
        return {"outcome": "clear" if ok else "message", "detail": f"{type(err).__name__}: {err}"[:300]}
    except BaseException as err:  # noqa: BLE001 - every other exception is the finding
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        kind = "baseline_error" if a["param"] is None else "raw"
        return {"outcome": kind, "detail": f"{type(err).__module__}.{type(err).__name__}: {err}"[:300]}
    if a["param"] is None:
        return {"outcome": "baseline_ok", "nonfinite": _has_nonfinite(result)}
    if _has_nonfinite(result) and not baseline_nonfinite:
        return {"outcome": "nan", "detail": "returned NaN/inf"}
    return {"outcome": "accepted", "detail": f"returned {type(result).__name__}"}


def worker(module_name: str, start: int, known: dict) -> None:
    """Run the module's attempts from ``start``, one JSON line per attempt (BEGIN before, RESULT after);
    ``known`` = {function: baseline answer has NaN (bool) or None if the baseline failed} from earlier runs."""
    os.environ.setdefault("NCLAB_THREADS", "1")
    os.environ.setdefault("NCLAB_PLOT", "static")
    module = importlib.import_module(module_name)
    items, notes = attempts(module_name)
    # baselines first, so each attempt knows whether NaN is already in a valid answer
    nonfinite = dict(known)
    order = [i for i, a in enumerate(items) if a["param"] is None] + [i for i, a in enumerate(items) if a["param"]]
    print(json.dumps({"ready": len(items), "notes": notes}), flush=True)
    for pos, i in enumerate(order):
        if pos < start:
            continue
        a = items[i]
        print(json.dumps({"begin": pos, "baseline": a["param"] is None}), flush=True)
        if a["param"] is not None and nonfinite.get(a["func"]) is None:
            res = {"outcome": "no_baseline"}
        else:
            res = run_attempt(module, a, bool(nonfinite.get(a["func"])))
        if a["param"] is None:
            nonfinite[a["func"]] = res.get("nonfinite", None) if res["outcome"] == "baseline_ok" else None
        print(json.dumps({"pos": pos, "func": a["func"], "param": a["param"], "label": a["label"], **res}),
              flush=True)


class _Lines:
    """Lines of a worker's stdout with a deadline (select on the raw fd + our own buffer, so no line waits
    in a Python buffer while select says the pipe is empty)."""

    def __init__(self, proc):
        self.fd, self.buf = proc.stdout.fileno(), b""

    def read(self, deadline: float) -> str | None:
        """The next JSON line; None on timeout, "" at end of output."""
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.startswith(b"{"):
                    return line.decode()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return ""
                self.buf += chunk


def run_module(module_name: str, timeout: float = CALL_TIMEOUT, env: dict | None = None) -> dict:
    """All attempts of one module through (re)started workers; returns {"records": [...], "notes": [...]}."""
    records, notes, start, total = [], [], 0, None
    restarts = 0
    while total is None or start < total:
        known = {r["func"]: (r.get("nonfinite") if r["outcome"] == "baseline_ok" else None)
                 for r in records if r["param"] is None and r["func"] is not None}
        cmd = [sys.executable, "-m", "tests.test_common_inputs", "--worker", module_name, str(start), json.dumps(known)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                env={**os.environ, **(env or {})})
        lines = _Lines(proc)
        try:
            line = lines.read(time.monotonic() + START_TIMEOUT)
            if not line:
                notes.append({"func": "*", "note": f"worker did not start (import of {module_name} failed or hung)"})
                return {"records": records, "notes": notes}
            head = json.loads(line)
            total = head["ready"]
            if start == 0:
                notes = head["notes"]
            current, limit = None, timeout
            while True:
                line = lines.read(time.monotonic() + (limit if current is not None else 30))
                if line is None or line == "":
                    break
                msg = json.loads(line)
                if "begin" in msg:
                    current = msg["begin"]
                    limit = max(timeout, BASELINE_TIMEOUT) if msg.get("baseline") else timeout
                    continue
                records.append(msg)
                start, current = msg["pos"] + 1, None
            if current is not None:  # timed out (or the worker died) inside a call
                records.append({"pos": current, "func": None, "param": None, "label": None, "outcome": "hang",
                                "detail": f"no answer within {limit:g} s"})
                start = current + 1
            elif start < total:
                break
        finally:
            proc.kill()
            proc.wait()
        restarts += 1
        if restarts > 50:
            break
    _name_hangs(module_name, records)
    for r in records:
        reason = ALLOWED.get((module_name, r["func"], r["param"], r["label"]))
        if reason and r["outcome"] in FAILURES:
            r.update(outcome="allowed", detail=f"{r['outcome']}: {reason}")
    return {"records": records, "notes": notes}


def _name_hangs(module_name: str, records: list) -> None:
    """Fill function/parameter of hang records (the worker died before it could say)."""
    if not any(r["outcome"] == "hang" for r in records):
        return
    items, _ = attempts(module_name)
    order = [a for a in items if a["param"] is None] + [a for a in items if a["param"]]
    for r in records:
        if r["outcome"] == "hang" and r["pos"] < len(order):
            a = order[r["pos"]]
            r.update(func=a["func"], param=a["param"], label=a["label"])
            if a["param"] is None:  # a valid call that did not finish: a coverage gap, not a bad-input finding
                r.update(outcome="baseline_error", detail=f"baseline call timed out ({r['detail']})")


def run_all(names: list[str], timeout: float = CALL_TIMEOUT, jobs: int = 2) -> dict[str, dict]:
    """run_module for every module, ``jobs`` at a time (threads driving worker processes)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda m: run_module(m, timeout), names))
    return dict(zip(names, results, strict=True))


def table(results: dict[str, dict]) -> str:
    """Attempts by outcome per module, then every failure and every coverage note."""
    head = f"{'module':24s}" + "".join(f"{o:>9s}" for o in OUTCOMES) + f"{'no-base':>9s}"
    rows, total = [head], Counter()
    fails, notes = [], []
    for mod, res in results.items():
        c = Counter(r["outcome"] for r in res["records"] if r["param"] is not None or r["outcome"] == "hang")
        nb = sum(1 for r in res["records"] if r["outcome"] == "no_baseline")
        total.update(c)
        total["no-base"] += nb
        rows.append(f"{mod:24s}" + "".join(f"{c.get(o, 0):9d}" for o in OUTCOMES) + f"{nb:9d}")
        for r in res["records"]:
            if r["outcome"] in FAILURES:
                fails.append(f"  {mod}.{r['func']}({r['param']}={r['label']}): {r['outcome']} — "
                             f"{r.get('detail', '')[:160]}")
            if r["outcome"] == "baseline_error":
                notes.append(f"  {mod}.{r['func']}: baseline call failed — {r['detail'][:160]}")
        notes += [f"  {mod}.{n['func']}: {n['note']}" for n in res["notes"]]
    rows.append(f"{'TOTAL':24s}" + "".join(f"{total.get(o, 0):9d}" for o in OUTCOMES) + f"{total['no-base']:9d}")
    text = "\n".join(rows)
    text += f"\n\nfailures ({len(fails)}):\n" + ("\n".join(fails) or "  none")
    text += f"\n\nnot covered ({len(notes)}):\n" + ("\n".join(notes) or "  none")
    return text


def failures(results: dict[str, dict]) -> list[str]:
    return [f"{mod}.{r['func']}({r['param']}={r['label']}): {r['outcome']} — {r.get('detail', '')[:200]}"
            for mod, res in results.items() for r in res["records"]
            if r["outcome"] in FAILURES]


# ------------------------------------------------------------------ tests
_BROKEN = '''
import math, time
from nclab._checks import integer, real

def good(k: int):
    return integer("k", k, 2)

def hangs(k: int):
    k = integer("k", k)
    while k < 2:  # an impossible request looping forever (as ntp.synthetic did)
        time.sleep(0.01)
    return k

def silent_nan(tau: float):
    return math.sqrt(tau) if tau >= 0 else float("nan")

def accepts(k: int):
    return [0] * 3

def raw(sizes):
    return sizes[0] + sizes[3]  # IndexError for a short list

def vague(lam: float):
    if not lam > 0:
        raise ValueError("bad value")
    return lam

def internal_name(tau: float):
    return real("temperature", tau, 0.0, lo_open=True)
'''


def test_harness_catches_every_kind_of_failure(tmp_path, monkeypatch):
    (tmp_path / "broken_mod.py").write_text(_BROKEN)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.syspath_prepend(str(tmp_path))
    res = run_module("broken_mod", timeout=2.0)
    by = {}
    for r in res["records"]:
        by.setdefault(r["func"], Counter())[r["outcome"]] += 1
    assert set(by["good"]) == {"clear", "baseline_ok"}, by["good"]
    assert by["hangs"]["hang"] >= 1
    assert by["silent_nan"]["nan"] >= 1
    assert by["accepts"]["accepted"] >= 1
    assert by["raw"]["raw"] >= 1
    assert by["vague"]["message"] >= 1
    assert by["internal_name"]["message"] >= 1 and by["internal_name"]["clear"] == 0
    assert failures({"broken_mod": res})


def test_kinds_cover_the_bad_values_of_issue_14():
    assert [lab for lab, _ in bad_values("k", "k", 4, None)][:4] == ["1", "0", "-1", "2.5"]
    assert {lab for lab, _ in bad_values("prob", "p", 0.5, None)} == {"-0.1", "1.5", "nan"}
    assert "0" not in [lab for lab, _ in bad_values("pos", "lam", 0.1, 0.0)]  # λ = 0 is valid where it is the default


def test_public_functions_of_every_module_reject_bad_input_clearly():
    results = run_all(modules())
    print("\n" + table(results))
    baseline_errors = [f"{m}.{r['func']}: {r['detail']}" for m, res in results.items() for r in res["records"]
                       if r["outcome"] == "baseline_error"]
    assert not baseline_errors, "\n".join(baseline_errors)
    bad = failures(results)
    assert not bad, f"{len(bad)} bad-input failures:\n" + "\n".join(bad)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bad-input table for nclab's public functions")
    ap.add_argument("modules", nargs="*", help="modules (default: all)")
    ap.add_argument("--worker", nargs=3, metavar=("MODULE", "START", "KNOWN"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=CALL_TIMEOUT)
    ap.add_argument("--json", help="also write the records to this JSON file")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), json.loads(args.worker[2]))
        return 0
    t0 = time.monotonic()
    results = run_all(args.modules or modules(), args.timeout)
    print(table(results))
    print(f"\n{time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 1 if failures(results) else 0


if __name__ == "__main__":
    sys.exit(main())
