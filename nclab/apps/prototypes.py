"""Prototype apps (04): learned class-mean Gram vs prototype Gram and the CE-limit Gram."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import integer, real
from nclab.apps.base import App, apply_heatmaps
from nclab.metrics import gram_distance

PROTOTYPE_PRESETS = {"ETF": ("etf", None), "OF": ("of", None),
                     "two pairs (cos ½ within)": ("gram", ((1, .5, 0, 0), (.5, 1, 0, 0), (0, 0, 1, .5), (0, 0, .5, 1)))}


def prototype_geometry(preset: str, n_w: int, tau: float, R: int, relu: bool, epochs: int = 400,
                       seed: int = 0) -> dict:
    """Learned class-mean Gram of the UFM (k = 4, sizes [4R, 4R, 4, 4], d = 8) trained by projected
    gradient with prototypes, beside the prototype Gram and the CE-limit Gram (cached per setting)."""
    if not isinstance(preset, str) or preset not in PROTOTYPE_PRESETS:
        raise ValueError(f"preset={preset!r} is unknown: use one of {list(PROTOTYPE_PRESETS)}")
    return _prototype_geometry(preset, integer("n_w", n_w, 0, 10_000), real("tau", tau, 0.0, 100.0, lo_open=True),
                               integer("R", R, 1, 1000), bool(relu), integer("epochs", epochs, 1, 100_000),
                               integer("seed", seed, 0))


@functools.lru_cache(maxsize=256)
def _prototype_geometry(preset: str, n_w: int, tau: float, R: int, relu: bool, epochs: int, seed: int) -> dict:
    from nclab.labels import labels_from_sizes
    from nclab.metrics import class_mean_gram
    from nclab.prototypes import ProtoSupCon, ce_limit_embeddings, prototype_set
    from nclab.ufm import train_sphere_ufm

    kind, gram = PROTOTYPE_PRESETS[preset]
    W = prototype_set(kind, 4, 8, gram=None if gram is None else np.array(gram))
    y = labels_from_sizes([4 * R, 4 * R, 4, 4])
    run = train_sphere_ufm(y, d=8, loss=ProtoSupCon(W, n_w, tau), nonneg=relu, epochs=epochs, seed=seed,
                           record=5, progress=False)
    G = class_mean_gram(run.H, y)
    Hc = ce_limit_embeddings(W, tau, nonneg=relu)
    return {"learned": G, "prototypes": W @ W.T, "ce_limit": Hc @ Hc.T}


PAIRS = [(0, 1), (2, 3), (0, 2), (0, 3), (1, 2), (1, 3)]
PAIR_NAMES = ["0–1 (maj–maj)", "2–3 (min–min)", "0–2", "0–3", "1–2", "1–3"]


def prototypes_state(preset: str, n_w: int, tau: float, R: int, relu: bool) -> dict:
    """Pure (cached training): the three Grams (cosines), their distances, and the six pairwise cosines of
    each (classes 0, 1 are the majorities, 2, 3 the minorities) for the bar chart."""
    g = prototype_geometry(preset, n_w, tau, R, relu)

    def cos(G):
        d = np.sqrt(np.diag(G))
        return G / np.outer(d, d)

    grams = {"learned class means": cos(g["learned"]), "prototypes": g["prototypes"],
             "CE-limit (n_w → ∞)": cos(g["ce_limit"])}
    pair_cos = {name: np.array([G[i, j] for i, j in PAIRS]) for name, G in grams.items()}
    d_proto, d_ce = gram_distance(g["learned"], g["prototypes"]), gram_distance(g["learned"], g["ce_limit"])
    msg = (f"{preset}, n_w={n_w}, τ={tau:g}, R={R}, {'ReLU' if relu else 'no ReLU'}: "
           f"minority–minority cosine {pair_cos['learned class means'][1]:+.2f}; "
           f"d(learned, prototypes) = {d_proto:.3f}, d(learned, CE limit) = {d_ce:.3f}")
    return {"grams": grams, "pair_cos": pair_cos, "d_prototypes": d_proto, "d_ce_limit": d_ce, "message": msg}


def prototypes_figures(state: dict) -> list:
    """Heatmaps of the three cosine Grams on one fixed scale [−1, 1], and the pairwise cosines as bars."""
    import plotly.graph_objects as go

    heat = plots.heatmaps(state["grams"], height=320, zmax=1.0, scale_title="cosine")
    plots.class_axes(heat)
    bars = go.Figure([go.Bar(x=PAIR_NAMES, y=v, name=name) for name, v in state["pair_cos"].items()])
    bars.update_layout(template=plots.template(), height=300, barmode="group", margin=dict(l=40, r=20, t=40, b=40),
                       title="cosine of each pair of class means", xaxis_title="class pair",
                       yaxis_title="cosine", yaxis_range=[-1, 1])
    return [heat, bars]


def apply_prototypes(figs: list, state: dict) -> None:
    apply_heatmaps(figs, state)
    for trace, v in zip(figs[1].data, state["pair_cos"].values(), strict=True):
        trace.y = v


def prototypes_app(preset: str = "ETF", n_w: int = 0, tau: float = 1.0, R: int = 8, relu: bool = False) -> App:
    """Prototype preset, n_w, τ, R, ReLU (each re-trains on release; results cached) → three Gram heatmaps and
    the pairwise cosines. Opens at n_w = 0 with R = 8, where the minority classes nearly merge (cosine ≈ +0.5):
    raising n_w pulls them apart towards the prototypes."""
    style = {"description_width": "initial"}
    pre = widgets.Dropdown(options=list(PROTOTYPE_PRESETS), value=preset, description="prototypes", style=style)
    nws = widgets.SelectionSlider(options=[0, 1, 2, 4, 16, 64, 256], value=n_w, description="copies n_w",
                                  continuous_update=False, style=style)
    taus = widgets.SelectionSlider(options=[0.1, 0.2, 0.5, 1.0, 2.0], value=tau, description="temperature τ",
                                   continuous_update=False, style=style)
    Rs = widgets.SelectionSlider(options=[1, 2, 4, 8], value=R, description="imbalance R", continuous_update=False,
                                 style=style)
    relus = widgets.Checkbox(value=relu, description="ReLU (h ≥ 0)", style=style)
    state = prototypes_state(preset, n_w, tau, R, relu)
    return App({"preset": pre, "n_w": nws, "tau": taus, "R": Rs, "relu": relus}, prototypes_figures(state),
               prototypes_state, apply_prototypes, title="Prototypes steer the SCL geometry")
