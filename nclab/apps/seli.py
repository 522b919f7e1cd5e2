"""SELI apps (01): the closed-form theory app (Grams, ratio/cosine curves vs R) and the exact ridge-path app."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import array, integer, real
from nclab.apps.base import App, nan_to_none
from nclab.convex import regularized_optimum, zero_threshold
from nclab.frames import etf_geometry
from nclab.labels import class_sizes, step_sizes
from nclab.metrics import gram_distance, group_stats, normalized
from nclab.seli import seli_geometry, step_closed_form, step_gram

CURVES = {"‖w_maj‖/‖w_min‖": ("w_sq_ratio", True), "‖h_maj‖/‖h_min‖": ("h_sq_ratio", True),
          "cos(w_maj, w_maj′)": ("w_cos_maj_maj", False), "cos(w_min, w_min′)": ("w_cos_min_min", False),
          "cos(w_maj, w_min)": ("w_cos_maj_min", False)}


def seli_theory_state(k: int, R: float, k_min: int, R_max: float = 1000.0, points: int = 60) -> dict:
    """Pure: SELI Grams (scaled to unit Frobenius norm) at (k, R, k_min) and the closed-form ratio /
    cosine curves over R ∈ [1, R_max], with the ETF references (ratio 1, cosine −1/(k−1))."""
    R_max, points = real("R_max", R_max, 1.0, 1e12, lo_open=True), integer("points", points, 2, 10_000)
    Wg, Hg = step_gram(k, R, k_min)  # closed form: any real R ≥ 1
    grid = np.unique(np.concatenate([np.geomspace(1, R_max, points), [R]]))
    cfs = [step_closed_form(k, r, k_min) for r in grid]
    curves = {}
    for label, (key, is_ratio) in CURVES.items():
        vals = np.array([cf[key] for cf in cfs])
        curves[label] = np.sqrt(vals) if is_ratio else vals
    now = step_closed_form(k, R, k_min)
    return {"grams": {"W Wᵀ (SELI)": normalized(Wg), "class means (SELI)": normalized(Hg),
                      "logits W H = P": normalized(np.eye(k) - 1.0 / k),
                      "W Wᵀ (ETF)": normalized(etf_geometry([1] * k).W_gram)},
            "R_grid": grid, "curves": curves, "R": float(R), "etf_cos": -1.0 / (k - 1),
            "message": (f"k={k}, R={float(R):.6g}, k_min={k_min}: ‖w_maj‖/‖w_min‖ = {np.sqrt(now['w_sq_ratio']):.4f}, "
                        f"‖h_maj‖/‖h_min‖ = {np.sqrt(now['h_sq_ratio']):.4f}, "
                        f"cos(w_maj,w_min) = {now['w_cos_maj_min']:.4f}")}


GRAM_SCALE = dict(zmax=1.0, scale_title="G / ‖G‖_F")  # one fixed colour scale for every Gram panel
LABEL = {"description_width": "initial"}


def seli_theory_figures(state: dict) -> list:
    heat = plots.heatmaps(state["grams"], height=260, **GRAM_SCALE)
    lines = plots.ratio_cosine_figure("SELI closed forms vs imbalance", "R = n_maj/n_min", "ratio (normalized)")
    for label, (_, is_ratio) in CURVES.items():
        lines.add_scatter(x=[], y=[], mode="lines", name=label, row=1 if is_ratio else 2, col=1)
    R_end = state["R_grid"][-1]
    lines.add_scatter(x=[1, R_end], y=[1, 1], mode="lines", name="ETF ratio (=1)",
                      line=dict(dash="dash", color="gray"), row=1, col=1)
    lines.add_scatter(x=[], y=[], mode="lines", name="ETF cosine −1/(k−1)", line=dict(dash="dot", color="gray"),
                      row=2, col=1)
    lines.add_scatter(x=[1, R_end], y=[1, 1], mode="lines", name="minority collapse (cos = 1)",
                      line=dict(dash="dashdot", color="firebrick", width=1), row=2, col=1)
    plots.subplot_marker(lines, 1)
    plots.subplot_marker(lines, 2)
    lines.update_xaxes(type="log")
    figs = [heat, lines]
    apply_seli_theory(figs, state)
    return figs


def apply_seli_theory(figs: list, state: dict) -> None:
    """Write ``seli_theory_state`` output into the [heatmaps, curves] figures (trace order fixed: the five
    curves, ETF ratio, ETF cosine, minority-collapse line, the current-R marker in each panel)."""
    heat, lines = figs
    for trace, mat in zip(heat.data, state["grams"].values(), strict=True):
        trace.z = mat
    x = state["R_grid"]
    for trace, label in zip(lines.data[:len(CURVES)], CURVES, strict=True):
        trace.x, trace.y = x, nan_to_none(state["curves"][label])
    n = len(CURVES)
    lines.data[n + 1].x, lines.data[n + 1].y = [x[0], x[-1]], [state["etf_cos"]] * 2
    ratios = [state["curves"][label] for label, (_, is_ratio) in CURVES.items() if is_ratio] + [[1.0]]
    lines.data[-2].x, lines.data[-2].y = [state["R"], state["R"]], plots.positive_span(ratios)
    lines.data[-1].x, lines.data[-1].y = [state["R"], state["R"]], [-1.0, 1.0]


def seli_theory_app(k: int = 4, R: float = 10.0, k_min: int = 2) -> App:
    """Sliders k ∈ [2, 12], R ∈ [1, 1000] (log), k_min ∈ [1, k−1] → SELI Grams and closed-form curves."""
    ks = widgets.IntSlider(value=k, min=2, max=12, description="k", style=LABEL)
    # ".6g": the readout shows the R the closed forms use (891.251, not 891)
    Rs = widgets.FloatLogSlider(value=R, base=10, min=0, max=3, step=0.05, description="R = n_maj/n_min",
                                readout_format=".6g", style=LABEL)
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="k_min", style=LABEL)

    def clamp_kmin(change):  # keep k_min in [1, k−1] before the app redraws
        kms.max = change["new"] - 1
    ks.observe(clamp_kmin, names="value")
    state = seli_theory_state(k, R, k_min)
    return App({"k": ks, "R": Rs, "k_min": kms}, seli_theory_figures(state), seli_theory_state,
               apply_seli_theory, title="SELI geometry (exact)")


def ridge_path(sizes, lams, reduction: str = "mean") -> dict:
    """Exact regularized optima along a λ grid: distances to SELI/ETF and the W, H squared-norm ratios."""
    sizes = tuple(int(s) for s in class_sizes(sizes))
    lams = array("lams", lams, ndim=1)
    if np.any(lams <= 0):
        raise ValueError(f"lams must be positive regularization strengths, got min {lams.min():g}")
    return _ridge_path(sizes, tuple(float(v) for v in lams), reduction)


@functools.lru_cache(maxsize=64)
def _ridge_path(sizes: tuple, lams: tuple, reduction: str) -> dict:
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


COLLAPSE_FACTOR = 10.0  # a W ratio this many times SELI's is called minority collapse in the readout


def ridge_state(k: int, R: float, k_min: int, lam: float, n_min: int = 1, points: int = 14) -> dict:
    """Pure: exact ridge optimum at ``lam`` (mean-reduced CE) beside SELI, and the λ-path.
    λ is capped at 0.9 λ₀ (from λ₀ the optimum is Z = 0); the message says which λ was used and, when the
    majority/minority ratio has blown up, that minority collapse is why."""
    lam = real("lam", lam, 0.0, lo_open=True)
    sizes = tuple(int(s) for s in step_sizes(k, R, k_min, n_min))
    lam0 = zero_threshold(sizes)
    used = min(lam, 0.9 * lam0)
    lams = tuple(np.geomspace(1e-6, 0.9 * lam0, integer("points", points, 2, 1000)))
    path = ridge_path(sizes, lams)
    g = regularized_optimum(sizes, used)
    seli = seli_geometry(sizes)
    maj = np.asarray(sizes) > min(sizes)
    ratio = group_stats(g.W_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0
    seli_ratio = group_stats(seli.W_gram, maj)["sq_norm_ratio"] if maj.any() else 1.0
    capped = f" (capped at 0.9 λ₀; asked {lam:.3g})" if used < lam else ""
    collapse = ratio > COLLAPSE_FACTOR * seli_ratio
    why = (" — minority collapse: near λ₀ the ridge has shrunk the minority classifiers to ≈ 0 (they no longer "
           "tell the minority classes apart), so the ratio is a large number over ≈ 0" if collapse else "")
    return {"grams": {"W Wᵀ, this λ": normalized(g.W_gram), "W Wᵀ, SELI": normalized(seli.W_gram),
                      "means, this λ": normalized(g.H_gram), "means, SELI": normalized(seli.H_gram)},
            "path": path, "lam": used, "lam0": lam0, "seli_W_sq_ratio": seli_ratio, "minority_collapse": collapse,
            "message": (f"λ = {used:.3g}{capped}; Z = 0 from λ₀ = {lam0:.3g}. d_W to SELI = "
                        f"{gram_distance(g.W_gram, seli.W_gram):.4f}, ‖w_maj‖²/‖w_min‖² = {ratio:.4g} "
                        f"(SELI {seli_ratio:.4g}){why}")}


def ridge_figures(state: dict) -> list:
    heat = plots.heatmaps(state["grams"], height=250, **GRAM_SCALE)
    path = plots.curves(state["path"]["lam"], {"d_W to SELI": state["path"]["d_W"],
                                               "d_H to SELI": state["path"]["d_H"],
                                               "d_W to ETF": state["path"]["d_W_etf"]},
                        xlabel="λ (mean-reduced CE)", ylabel="Gram distance (normalized)", log_x=True,
                        dash={"d_W to ETF": "dash"}, title="distance of the ridge optimum to SELI and ETF")
    plots.add_vline(path, state["lam"], name="current λ")
    ratio = plots.curves(state["path"]["lam"], {"‖w_maj‖²/‖w_min‖²": state["path"]["W_sq_ratio"],
                                                "SELI value": np.full(len(state["path"]["lam"]),
                                                                      state["seli_W_sq_ratio"])},
                         xlabel="λ (mean-reduced CE)", ylabel="squared-norm ratio (normalized)", log_x=True,
                         log_y=True, dash={"SELI value": "dash"},
                         title="majority/minority classifier norms (blow-up near λ₀ = minority collapse)")
    plots.add_vline(ratio, state["lam"], name="current λ")
    figs = [heat, path, ratio]
    apply_ridge(figs, state)
    return figs


def apply_ridge(figs: list, state: dict) -> None:
    """Write ``ridge_state`` output into the [heatmaps, path, ratio] figures."""
    heat, path, ratio = figs
    for trace, mat in zip(heat.data, state["grams"].values(), strict=True):
        trace.z = mat
    p = state["path"]
    for trace, key in zip(path.data[:3], ("d_W", "d_H", "d_W_etf"), strict=True):
        trace.x, trace.y = p["lam"], p[key]
    ratio.data[0].x, ratio.data[0].y = p["lam"], p["W_sq_ratio"]
    ratio.data[1].x, ratio.data[1].y = p["lam"], np.full(p["lam"].size, state["seli_W_sq_ratio"])
    for fig in (path, ratio):
        fig.data[-1].x = [state["lam"], state["lam"]]


def ridge_app(k: int = 4, R: float = 10, k_min: int = 2, lam: float = 1e-2) -> App:
    """R ∈ {1, 2, 5, 10, 20, 50, 100} and a log λ slider (continuous_update=False: each move runs the solver)."""
    Rs = widgets.SelectionSlider(options=[1, 2, 5, 10, 20, 50, 100], value=R, description="R = n_maj/n_min",
                                 continuous_update=False, style=LABEL)
    lams = widgets.FloatLogSlider(value=lam, base=10, min=-6, max=-0.5, step=0.25, description="λ",
                                  readout_format=".3g", continuous_update=False, style=LABEL)
    state = ridge_state(k, R, k_min, lam)
    return App({"R": Rs, "lam": lams}, ridge_figures(state),
               lambda R, lam: ridge_state(k, R, k_min, lam), apply_ridge,
               title="Exact ridge-regularized optimum vs SELI")
