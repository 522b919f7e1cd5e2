"""SELI apps (01): the closed-form theory app (Grams, ratio/cosine curves vs R) and the exact ridge-path app."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab.apps.base import App, nan_to_none
from nclab.convex import regularized_optimum, zero_threshold
from nclab.frames import etf_geometry
from nclab.labels import step_sizes
from nclab.metrics import gram_distance, group_stats, normalized
from nclab.seli import seli_geometry, step_closed_form, step_gram

CURVES = {"‖w_maj‖/‖w_min‖": ("w_sq_ratio", True), "‖h_maj‖/‖h_min‖": ("h_sq_ratio", True),
          "cos(w_maj, w_maj′)": ("w_cos_maj_maj", False), "cos(w_min, w_min′)": ("w_cos_min_min", False),
          "cos(w_maj, w_min)": ("w_cos_maj_min", False)}


def seli_theory_state(k: int, R: float, k_min: int, R_max: float = 1000.0, points: int = 60) -> dict:
    """Pure: SELI Grams (scaled to unit Frobenius norm) at (k, R, k_min) and the closed-form ratio /
    cosine curves over R ∈ [1, R_max], with the ETF references (ratio 1, cosine −1/(k−1))."""
    Wg, Hg = step_gram(k, R, k_min)  # closed form: any real R ≥ 1
    grid = np.unique(np.concatenate([np.geomspace(1, R_max, points), [R]]))
    cfs = [step_closed_form(k, r, k_min) for r in grid]
    curves = {}
    for label, (key, is_ratio) in CURVES.items():
        vals = np.array([cf[key] for cf in cfs])
        curves[label] = np.sqrt(vals) if is_ratio else vals
    now = step_closed_form(k, R, k_min)
    return {"grams": {"W Wᵀ (SELI)": normalized(Wg), "class-mean Gram (SELI)": normalized(Hg),
                      "logits W H_c = P": normalized(np.eye(k) - 1.0 / k),
                      "simplex ETF": normalized(etf_geometry([1] * k).W_gram)},
            "R_grid": grid, "curves": curves, "R": float(R), "etf_cos": -1.0 / (k - 1),
            "message": (f"k={k}, R={R:g}, k_min={k_min}: ‖w_maj‖/‖w_min‖ = {np.sqrt(now['w_sq_ratio']):.4f}, "
                        f"‖h_maj‖/‖h_min‖ = {np.sqrt(now['h_sq_ratio']):.4f}, "
                        f"cos(w_maj,w_min) = {now['w_cos_maj_min']:.4f}")}


def seli_theory_figures(state: dict) -> list:
    heat = plots.heatmaps(state["grams"], height=260)
    lines = plots.curves(state["R_grid"], {}, xlabel="R = n_maj/n_min", ylabel="ratio / cosine", log_x=True,
                         height=360, title="SELI closed forms vs imbalance")
    for label in CURVES:
        lines.add_scatter(x=[], y=[], mode="lines", name=label)
    lines.add_scatter(x=[1, state["R_grid"][-1]], y=[1, 1], mode="lines", name="ETF ratio (=1)",
                      line=dict(dash="dash", color="gray"))
    lines.add_scatter(x=[], y=[], mode="lines", name="ETF cosine −1/(k−1)", line=dict(dash="dot", color="gray"))
    lines.add_scatter(x=[1, state["R_grid"][-1]], y=[1, 1], mode="lines", name="minority collapse (cos = 1)",
                      line=dict(dash="dashdot", color="firebrick", width=1))
    plots.add_vline(lines, state["R"], name="current R")
    figs = [heat, lines]
    apply_seli_theory(figs, state)
    return figs


def apply_seli_theory(figs: list, state: dict) -> None:
    """Write ``seli_theory_state`` output into the [heatmaps, curves] figures (trace order fixed)."""
    heat, lines = figs
    for trace, mat in zip(heat.data, state["grams"].values(), strict=True):
        trace.z = mat
    x = state["R_grid"]
    for trace, label in zip(lines.data[:len(CURVES)], CURVES, strict=True):
        trace.x, trace.y = x, nan_to_none(state["curves"][label])
    n = len(CURVES)
    lines.data[n + 1].x, lines.data[n + 1].y = [x[0], x[-1]], [state["etf_cos"]] * 2
    lines.data[-1].x = [state["R"], state["R"]]


def seli_theory_app(k: int = 4, R: float = 10.0, k_min: int = 2) -> App:
    """Sliders k ∈ [2, 12], R ∈ [1, 1000] (log), k_min ∈ [1, k−1] → SELI Grams and closed-form curves."""
    ks = widgets.IntSlider(value=k, min=2, max=12, description="k")
    Rs = widgets.FloatLogSlider(value=R, base=10, min=0, max=3, step=0.05, description="R")
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="k_min")

    def clamp_kmin(change):  # keep k_min in [1, k−1] before the app redraws
        kms.max = change["new"] - 1
    ks.observe(clamp_kmin, names="value")
    state = seli_theory_state(k, R, k_min)
    return App({"k": ks, "R": Rs, "k_min": kms}, seli_theory_figures(state), seli_theory_state,
               apply_seli_theory, title="SELI geometry (exact)")


@functools.lru_cache(maxsize=64)
def ridge_path(sizes: tuple, lams: tuple, reduction: str = "mean") -> dict:
    """Exact regularized optima along a λ grid: distances to SELI/ETF and the W, H squared-norm ratios."""
    seli, etf = seli_geometry(sizes), etf_geometry(sizes)
    maj = np.asarray(sizes) > min(sizes)
    out = {"lam": np.array(lams), "d_W": [], "d_H": [], "d_W_etf": [], "W_sq_ratio": [], "H_sq_ratio": []}
    for lam in lams:
        g = regularized_optimum(sizes, lam, reduction)
        out["d_W"].append(gram_distance(g.W_gram, seli.W_gram))
        out["d_H"].append(gram_distance(g.H_gram, seli.H_gram))
        out["d_W_etf"].append(gram_distance(g.W_gram, etf.W_gram))
        out["W_sq_ratio"].append(group_stats(g.W_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0)
        out["H_sq_ratio"].append(group_stats(g.H_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0)
    return {key: np.asarray(v) for key, v in out.items()}


def ridge_state(k: int, R: float, k_min: int, log10_lam: float, n_min: int = 1, points: int = 14) -> dict:
    """Pure: exact ridge optimum at λ = 10^log10_lam (mean-reduced CE) beside SELI, and the λ-path.
    λ is capped below λ₀ (where the optimum is Z = 0)."""
    sizes = tuple(int(s) for s in step_sizes(k, R, k_min, n_min))
    lam0 = zero_threshold(sizes)
    lam = min(10.0 ** log10_lam, 0.9 * lam0)
    lams = tuple(np.geomspace(1e-6, 0.9 * lam0, points))
    path = ridge_path(sizes, lams)
    g = regularized_optimum(sizes, lam)
    seli = seli_geometry(sizes)
    maj = np.asarray(sizes) > min(sizes)
    ratio = group_stats(g.W_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0
    return {"grams": {f"W Wᵀ at λ={lam:.2g}": normalized(g.W_gram), "W Wᵀ (SELI)": normalized(seli.W_gram),
                      f"class-mean Gram at λ={lam:.2g}": normalized(g.H_gram),
                      "class-mean Gram (SELI)": normalized(seli.H_gram)},
            "path": path, "lam": lam, "lam0": lam0,
            "seli_W_sq_ratio": group_stats(seli.W_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0,
            "message": (f"λ={lam:.3g} (Z = 0 from λ₀={lam0:.3g}): d_W to SELI = "
                        f"{gram_distance(g.W_gram, seli.W_gram):.4f}, ‖w_maj‖²/‖w_min‖² = {ratio:.4f}")}


def ridge_figures(state: dict) -> list:
    heat = plots.heatmaps(state["grams"], height=250)
    path = plots.curves(state["path"]["lam"], {"d_W to SELI": state["path"]["d_W"],
                                               "d_H to SELI": state["path"]["d_H"],
                                               "d_W to ETF": state["path"]["d_W_etf"]},
                        xlabel="λ (mean-reduced CE)", ylabel="normalized Gram distance", log_x=True,
                        dash={"d_W to ETF": "dash"}, title="ridge bends the geometry")
    plots.add_vline(path, state["lam"], name="current λ")
    ratio = plots.curves(state["path"]["lam"], {"‖w_maj‖²/‖w_min‖²": state["path"]["W_sq_ratio"],
                                                "SELI value": np.full(len(state["path"]["lam"]),
                                                                      state["seli_W_sq_ratio"])},
                         xlabel="λ", ylabel="squared-norm ratio", log_x=True, log_y=True,
                         dash={"SELI value": "dash"})
    plots.add_vline(ratio, state["lam"], name="current λ")
    figs = [heat, path, ratio]
    apply_ridge(figs, state)
    return figs


def apply_ridge(figs: list, state: dict) -> None:
    """Write ``ridge_state`` output into the [heatmaps, path, ratio] figures."""
    heat, path, ratio = figs
    for trace, mat in zip(heat.data, state["grams"].values(), strict=True):
        trace.z = mat
    for ann, name in zip(heat.layout.annotations, state["grams"], strict=True):
        ann.text = name
    p = state["path"]
    for trace, key in zip(path.data[:3], ("d_W", "d_H", "d_W_etf"), strict=True):
        trace.x, trace.y = p["lam"], p[key]
    ratio.data[0].x, ratio.data[0].y = p["lam"], p["W_sq_ratio"]
    ratio.data[1].x, ratio.data[1].y = p["lam"], np.full(p["lam"].size, state["seli_W_sq_ratio"])
    for fig in (path, ratio):
        fig.data[-1].x = [state["lam"], state["lam"]]


def ridge_app(k: int = 4, R: float = 10, k_min: int = 2, log10_lam: float = -2.0) -> App:
    """λ slider (log10, continuous_update=False: each move runs the solver) and R ∈ {1, 2, 5, 10, 20, 50, 100}."""
    lam = widgets.FloatSlider(value=log10_lam, min=-6, max=-0.5, step=0.25, description="log10 λ",
                              continuous_update=False)
    Rs = widgets.SelectionSlider(options=[1, 2, 5, 10, 20, 50, 100], value=R, description="R",
                                 continuous_update=False)
    state = ridge_state(k, R, k_min, log10_lam)
    app = App({"R": Rs, "log10_lam": lam}, ridge_figures(state),
              lambda R, log10_lam: ridge_state(k, R, k_min, log10_lam), apply_ridge,
              title="Exact ridge-regularized optimum vs SELI")
    return app
