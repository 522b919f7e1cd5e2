"""SCL apps (03): the exact class-level Gram app (τ, ReLU) and the batching lab (schedule verdicts)."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import integer, real
from nclab.apps.base import App, apply_heatmaps
from nclab.labels import step_sizes
from nclab.metrics import gram_distance, group_stats


@functools.lru_cache(maxsize=128)
def _scl_gram_cached(sizes: tuple, tau: float, relu: bool) -> np.ndarray:
    from nclab.convex import scl_gram

    return scl_gram(sizes, tau, relu)


def scl_theory_state(k: int, R: float, k_min: int, tau: float, relu: bool, n_min: int = 2) -> dict:
    """Pure: exact class-mean Gram of the SCL optimum (convex, cached) for step-imbalanced sizes, its
    cosine summary, distance to the OF, and (ReLU) the optimal value vs the closed formula."""
    from nclab.scl import class_objective, optimal_value

    sizes = tuple(int(s) for s in step_sizes(k, R, k_min, n_min))
    G = _scl_gram_cached(sizes, real("tau", tau, 0.01, 10.0), bool(relu))
    maj = np.asarray(sizes) > min(sizes)
    stats = group_stats(G, maj) if maj.any() else {"cos_maj_maj": float(np.mean(G[~np.eye(k, dtype=bool)]))}
    value = class_objective(G, sizes, tau)
    formula = optimal_value(sizes, tau)
    d_of = gram_distance(G, np.eye(k))
    msg = (f"sizes {list(sizes)}, τ={tau:g}, {'ReLU' if relu else 'no ReLU'}: d(Gram, OF) = {d_of:.2e}; "
           + ", ".join(f"{key.replace('cos_', 'cos ').replace('_', '–')} = {v:+.3f}"
                       for key, v in stats.items() if key.startswith("cos"))
           + (f"; optimum {value:.6f} vs formula {formula:.6f}" if relu else ""))
    return {"grams": {"class-mean Gram (exact)": G, "orthogonal frame": np.eye(k)}, "d_OF": d_of,
            "value": value, "formula": formula, "stats": stats, "message": msg}


def scl_theory_figures(state: dict) -> list:
    fig = plots.heatmaps(state["grams"], height=320, zmax=1.0, scale_title="cosine of class means")
    plots.class_axes(fig)
    apply_heatmaps([fig], state)
    return [fig]


def scl_theory_app(k: int = 4, R: float = 10, k_min: int = 2, tau: float = 1.0, relu: bool = False) -> App:
    """k, R, k_min, τ (re-solve on release) and a ReLU switch → exact Gram of class means. Opens without
    ReLU, where the sliders move the geometry; with ReLU every setting gives the identity (the OF)."""
    style = {"description_width": "initial"}
    ks = widgets.IntSlider(value=k, min=2, max=8, description="classes k", continuous_update=False, style=style)
    Rs = widgets.SelectionSlider(options=[1, 2, 5, 10, 20, 50, 100], value=R, description="imbalance R",
                                 continuous_update=False, style=style)
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="minority classes k_min",
                            continuous_update=False, style=style)
    taus = widgets.FloatLogSlider(value=tau, base=10, min=-1, max=1, step=0.1, description="temperature τ",
                                  readout_format=".3g", continuous_update=False, style=style)
    relus = widgets.Checkbox(value=relu, description="ReLU (h ≥ 0)", style=style)
    ks.observe(lambda ch: setattr(kms, "max", ch["new"] - 1), names="value")
    return App({"k": ks, "R": Rs, "k_min": kms, "tau": taus, "relu": relus},
               scl_theory_figures(scl_theory_state(k, R, k_min, tau, relu)), scl_theory_state, apply_heatmaps,
               title="Exact SCL geometry (convex program)")


def batching_state(scheme: str, binding: bool, sizes: tuple = (16, 16, 4, 4), batch_size: int = 8,
                   seed: int = 0, epochs: int = 20) -> dict:
    """Pure: the checker's verdict for a batching scheme (± binding) and the class-meeting matrix."""
    from nclab.labels import labels_from_sizes
    from nclab.scl import SCHEMES, check_batches, meeting_matrix, schedule

    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r} is unknown: use one of {list(SCHEMES)}")
    epochs = integer("epochs", epochs, 1, 1000)
    y = labels_from_sizes(sizes)
    sched = schedule(scheme, y, batch_size=batch_size, seed=seed, binding=binding)
    support = sched.support(epochs)
    verdict = check_batches(support, y)
    color = "#070" if verdict.unique else "#b00"
    return {"grams": {"batches where classes meet (first epochs)": meeting_matrix(support, y).astype(float)},
            "unique": verdict.unique, "verdict": str(verdict),
            "message": f"<span style='color:{color}'>{sched.kind}: {verdict}</span>"}


def batching_app(scheme: str = "partition", binding: bool = False) -> App:
    """Scheme dropdown ± batch-binding → the uniqueness verdict (conditions (i)/(ii)) and meeting counts."""
    style = {"description_width": "initial"}
    schemes = widgets.Dropdown(options=["full", "reshuffle", "partition", "stratified", "never_meet"],
                               value=scheme, description="batching", style=style)
    bind = widgets.Checkbox(value=binding, description="batch-binding", style=style)
    state = batching_state(scheme, binding)
    fig = plots.heatmaps(state["grams"], height=320, zmid=None, scale_title="number of shared batches")
    plots.class_axes(fig)
    return App({"scheme": schemes, "binding": bind}, [fig],
               lambda scheme, binding: batching_state(scheme, binding), apply_heatmaps, title="Batching lab")
