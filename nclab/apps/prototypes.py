"""Prototype apps (04): learned class-mean Gram vs prototype Gram and the CE-limit Gram."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab.apps.base import App, apply_heatmaps
from nclab.metrics import gram_distance

PROTOTYPE_PRESETS = {"ETF": ("etf", None), "OF": ("of", None),
                     "two pairs (cos ½ within)": ("gram", ((1, .5, 0, 0), (.5, 1, 0, 0), (0, 0, 1, .5), (0, 0, .5, 1)))}


@functools.lru_cache(maxsize=256)
def prototype_geometry(preset: str, n_w: int, tau: float, R: int, relu: bool, epochs: int = 400,
                       seed: int = 0) -> dict:
    """Learned class-mean Gram of the UFM (k = 4, sizes [4R, 4R, 4, 4], d = 8) trained by projected
    gradient with prototypes, beside the prototype Gram and the CE-limit Gram (cached per setting)."""
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


def prototypes_state(preset: str, n_w: int, tau: float, R: int, relu: bool) -> dict:
    """Pure (cached training): the three Grams (cosines) and their distances."""
    g = prototype_geometry(preset, int(n_w), float(tau), int(R), bool(relu))

    def cos(G):
        d = np.sqrt(np.diag(G))
        return G / np.outer(d, d)

    msg = (f"{preset}, n_w={n_w}, τ={tau:g}, R={R}, {'ReLU' if relu else 'no ReLU'}: "
           f"d(learned, prototypes) = {gram_distance(g['learned'], g['prototypes']):.3f}, "
           f"d(learned, CE limit) = {gram_distance(g['learned'], g['ce_limit']):.3f}")
    return {"grams": {"learned class means": cos(g["learned"]), "prototypes": g["prototypes"],
                      "CE-limit (n_w → ∞)": cos(g["ce_limit"])}, "message": msg}


def prototypes_app(preset: str = "ETF", n_w: int = 16, tau: float = 1.0, R: int = 4, relu: bool = False) -> App:
    """Prototype preset, n_w, τ, R, ReLU (each re-trains on release; results cached) → three Gram heatmaps."""
    pre = widgets.Dropdown(options=list(PROTOTYPE_PRESETS), value=preset, description="prototypes")
    nws = widgets.SelectionSlider(options=[0, 1, 2, 4, 16, 64, 256], value=n_w, description="n_w",
                                  continuous_update=False)
    taus = widgets.SelectionSlider(options=[0.1, 0.2, 0.5, 1.0, 2.0], value=tau, description="τ",
                                   continuous_update=False)
    Rs = widgets.SelectionSlider(options=[1, 2, 4, 8], value=R, description="R", continuous_update=False)
    relus = widgets.Checkbox(value=relu, description="ReLU (h ≥ 0)")
    state = prototypes_state(preset, n_w, tau, R, relu)
    return App({"preset": pre, "n_w": nws, "tau": taus, "R": Rs, "relu": relus},
               [plots.heatmaps(state["grams"], height=280)], prototypes_state, apply_heatmaps,
               title="Prototypes steer the SCL geometry")
