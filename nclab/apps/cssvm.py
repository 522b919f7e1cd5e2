"""CS-SVM apps (02): the γ-app (closed forms beside convex-solver markers) and the jump to the symmetric γ."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import integer, real
from nclab.apps.base import App, nan_to_none
from nclab.labels import step_sizes
from nclab.metrics import group_stats

LOSS_KINDS = ("cdt", "ldt")  # CDT and VS share the CS-SVM "cdt"; LDT is SELI at sizes n_c/δ_c²


@functools.lru_cache(maxsize=128)
def cssvm_solver_curves(kind: str, k: int, R: float, k_min: int, gammas: tuple) -> dict:
    """The eight γ-curves from the convex CS-SVM solver (markers beside the closed form), cached."""
    from nclab.convex import cs_svm
    from nclab.cssvm import GAMMA_CURVES, step_delta

    sizes = step_sizes(k, R, k_min)
    maj = sizes > sizes.min()
    out = {label: [] for label in GAMMA_CURVES}
    for g in gammas:
        geom = cs_svm(sizes, step_delta(k, R, k_min, g), kind)
        stats = {"W": group_stats(geom.W_gram, maj), "H": group_stats(geom.H_gram, maj)}
        for label, (t, key) in GAMMA_CURVES.items():
            out[label].append(stats[t]["sq_norm_ratio" if key == "sq_ratio" else key])
    return {label: np.array(v) for label, v in out.items()}


@functools.lru_cache(maxsize=128)
def _symmetric_gammas(kind: str, k: int, R: float, k_min: int) -> dict:
    from nclab.cssvm import symmetric_gamma

    sym = {}
    for target in ("W", "H"):
        try:
            sym[target] = symmetric_gamma(k, R, k_min, kind, target) if R > 1 else float("nan")
        except ValueError:
            sym[target] = float("nan")
    if kind == "ldt":
        sym["etf"] = 0.5
    return sym


def cssvm_state(kind: str, k: int, R: float, k_min: int, gamma: float, solver_points: int = 13) -> dict:
    """Pure: closed-form curves vs γ ∈ [−1.5, 1.5] for the loss ``kind`` (CDT/VS share "cdt"), solver
    markers on a coarse grid, ETF references, the current γ and the symmetric γ's."""
    from nclab.cssvm import gamma_curves, step_geometry

    if kind not in LOSS_KINDS:
        raise ValueError(f"kind={kind!r} is unknown: use one of {LOSS_KINDS}")
    k, k_min = integer("k", k, 2, 50), integer("k_min", k_min, 1, 49)
    R, gamma = real("R", R, 1.0, 1e6), real("gamma", gamma, -1.5, 1.5)
    solver_points = integer("solver_points", solver_points, 2, 200)
    geom_kind = "ldt" if kind == "ldt" else "cdt"
    grid = np.linspace(-1.5, 1.5, 121)
    coarse = tuple(np.round(np.linspace(-1.5, 1.5, solver_points), 10))
    now = step_geometry(k, R, k_min, R**gamma, geom_kind)
    sym = _symmetric_gammas(geom_kind, k, R, k_min)
    return {"gamma_grid": grid, "curves": gamma_curves(k, R, k_min, geom_kind, grid),
            "solver_gammas": np.array(coarse), "solver": cssvm_solver_curves(geom_kind, k, R, k_min, coarse),
            "gamma": float(gamma), "etf_cos": -1.0 / (k - 1), "symmetric": sym,
            "message": (f"{kind.upper()} γ={gamma:+.3f} (δ_maj/δ_min = {R**gamma:.4g}), R={R:.6g}: "
                        f"‖w_maj‖²/‖w_min‖² = {now['w_sq_ratio']:.4f}, "
                        f"‖h_maj‖²/‖h_min‖² = {now['h_sq_ratio']:.4f}; symmetric γ: "
                        + ", ".join(f"{t} {v:+.4f}" if np.isfinite(v) else f"{t} none" for t, v in sym.items()))}


def cssvm_figures(state: dict) -> list:
    """Per geometry (classifiers W, class embeddings H): squared-norm ratio (log axis, top) and the three
    cosines ([−1, 1], bottom) on separate axes; lines the closed form, black markers the convex solver."""

    figs = []
    for t in ("W", "H"):
        who = "classifiers W" if t == "W" else "class embeddings H"
        fig = plots.ratio_cosine_figure(f"{who} — lines: closed form, markers: convex solver",
                                        "γ  (δ_maj/δ_min = R^γ)", "‖maj‖²/‖min‖²")
        for label in (lab for lab in state["curves"] if lab.startswith(t)):
            row = 1 if "‖" in label else 2
            fig.add_scatter(x=[], y=[], mode="lines", name=label.split(": ")[1], legendgroup=label, row=row, col=1)
            fig.add_scatter(x=[], y=[], mode="markers", name=label.split(": ")[1] + " (solver)",
                            legendgroup=label, showlegend=False, marker=dict(size=6, color="black"), row=row, col=1)
        fig.add_scatter(x=[-1.5, 1.5], y=[1, 1], mode="lines", name="ETF ratio (=1)",
                        line=dict(dash="dash", color="gray"), row=1, col=1)
        fig.add_scatter(x=[-1.5, 1.5], y=[0, 0], mode="lines", name="ETF cosine −1/(k−1)",
                        line=dict(dash="dot", color="gray"), row=2, col=1)
        plots.subplot_marker(fig, 1)
        plots.subplot_marker(fig, 2)
        figs.append(fig)
    apply_cssvm(figs, state)
    return figs


def apply_cssvm(figs: list, state: dict) -> None:
    """Write ``cssvm_state`` output into the [W, H] figures (4 line/marker pairs, the ETF ratio and cosine,
    the current-γ marker in each panel)."""

    for fig, t in zip(figs, ("W", "H"), strict=True):
        labels = [lab for lab in state["curves"] if lab.startswith(t)]
        ratios = [[1.0]]
        for i, label in enumerate(labels):
            line, dots = fig.data[2 * i], fig.data[2 * i + 1]
            line.x, line.y = state["gamma_grid"], nan_to_none(state["curves"][label])
            dots.x, dots.y = state["solver_gammas"], nan_to_none(state["solver"][label])
            if "‖" in label:
                ratios += [state["curves"][label], state["solver"][label]]
        fig.data[-3].y = [state["etf_cos"]] * 2
        fig.data[-2].x, fig.data[-2].y = [state["gamma"], state["gamma"]], plots.positive_span(ratios)
        fig.data[-1].x, fig.data[-1].y = [state["gamma"], state["gamma"]], [-1.0, 1.0]


def cssvm_app(kind: str = "cdt", k: int = 4, R: float = 10.0, k_min: int = 2, gamma: float = 0.0) -> App:
    """Loss kind, k, R, k_min (re-solve on release) and γ → the eight curves; a button jumps to the
    symmetric γ (H norms, W norms, or the LDT ETF)."""
    kinds = widgets.ToggleButtons(options=[("CDT / VS", "cdt"), ("LDT", "ldt")], value=kind, description="loss")
    style = {"description_width": "initial"}
    ks = widgets.IntSlider(value=k, min=3, max=10, description="k", continuous_update=False, style=style)
    Rs = widgets.FloatLogSlider(value=R, base=10, min=0, max=3, step=0.05, description="R = n_maj/n_min",
                                readout_format=".6g", continuous_update=False, style=style)
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="k_min", continuous_update=False,
                            style=style)
    gs = widgets.FloatSlider(value=gamma, min=-1.5, max=1.5, step=0.001, description="γ", readout_format=".3f",
                             style=style)
    ks.observe(lambda ch: setattr(kms, "max", ch["new"] - 1), names="value")
    app = App({"kind": kinds, "k": ks, "R": Rs, "k_min": kms, "gamma": gs},
              cssvm_figures(cssvm_state(kind, k, R, k_min, gamma)), cssvm_state, apply_cssvm,
              title="CS-SVM geometry vs γ")
    target = widgets.Dropdown(options=[("equal H norms", "H"), ("equal W norms", "W"), ("ETF (LDT)", "etf")],
                              value="H", description="symmetric", style=style)
    button = widgets.Button(description="make it symmetric")

    def jump(_):
        g = jump_to_symmetric(app.state, target.value)
        if g is None:
            app.status.value = f"no symmetric γ for target {target.value!r} with this loss and R"
            return
        if target.value == "etf":
            kinds.value = "ldt"
        gs.value = round(g, 3)  # on the slider's grid, so the readout shows the γ used

    button.on_click(jump)
    app.extra = [target, button]
    return app


def jump_to_symmetric(state: dict, target: str) -> float | None:
    """The γ the "make it symmetric" button moves to (clipped to the slider's [−1.5, 1.5]), or None."""
    if target == "etf":
        return 0.5
    g = state["symmetric"].get(target, float("nan"))
    return None if not np.isfinite(g) else float(np.clip(g, -1.5, 1.5))
