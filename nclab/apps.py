"""Interactive apps: ipywidgets controls + plotly FigureWidgets, updated in place.

Each app = a *pure* state function (control values → arrays to draw, testable without a kernel) and
an apply function writing that state into figures inside ``batch_update``.
"""

from __future__ import annotations

import contextlib
import functools
import time

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab.convex import regularized_optimum, zero_threshold
from nclab.frames import etf_geometry
from nclab.labels import step_sizes
from nclab.metrics import gram_distance, group_stats, normalized
from nclab.seli import seli_geometry, step_closed_form, step_gram


class App:
    """Controls (name → widget) driving figures through ``state_fn(**values)`` and
    ``apply_fn(figures, state)``; ``last_update_ms`` records the latest update's wall time."""

    def __init__(self, controls: dict, figures: list, state_fn, apply_fn, title: str = ""):
        self.controls = controls
        self.figures = [plots.as_widget(f) for f in figures]
        self.state_fn, self.apply_fn = state_fn, apply_fn
        self.status = widgets.HTML()
        self.title = title
        self.last_update_ms = float("nan")
        self.state = None
        self.extra: list = []  # further widgets (buttons) shown beside the controls
        for w in controls.values():
            w.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _on_change(self, change) -> None:
        self.update()

    def update(self) -> dict:
        """Recompute the state from the controls and redraw every figure in one batch."""
        t0 = time.perf_counter()
        try:
            self.state = self.state_fn(**self.values())
        except ValueError as err:  # defensive: controls are constrained, but never draw garbage
            self.status.value = f"<span style='color:#b00'>{err}</span>"
            return {}
        with contextlib.ExitStack() as stack:
            for fig in self.figures:
                stack.enter_context(fig.batch_update())
            self.apply_fn(self.figures, self.state)
        self.last_update_ms = 1e3 * (time.perf_counter() - t0)
        self.status.value = self.state.get("message", "") + f" <small>(update {self.last_update_ms:.0f} ms)</small>"
        return self.state

    def widget(self) -> widgets.Widget:
        head = [widgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        controls = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        return widgets.VBox([*head, controls, *([widgets.HBox(self.extra)] if self.extra else []), self.status,
                             *[plots.view(f) for f in self.figures]])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())


def _nan_to_none(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


# ---------------------------------------------------------------- SELI theory app
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
        trace.x, trace.y = x, _nan_to_none(state["curves"][label])
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


# ---------------------------------------------------------------- ridge app
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


# ---------------------------------------------------------------- CS-SVM app
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

    geom_kind = "ldt" if kind == "ldt" else "cdt"
    grid = np.linspace(-1.5, 1.5, 121)
    coarse = tuple(np.round(np.linspace(-1.5, 1.5, solver_points), 10))
    now = step_geometry(k, R, k_min, R**gamma, geom_kind)
    sym = _symmetric_gammas(geom_kind, k, R, k_min)
    return {"gamma_grid": grid, "curves": gamma_curves(k, R, k_min, geom_kind, grid),
            "solver_gammas": np.array(coarse), "solver": cssvm_solver_curves(geom_kind, k, R, k_min, coarse),
            "gamma": float(gamma), "etf_cos": -1.0 / (k - 1), "symmetric": sym,
            "message": (f"{kind.upper()} γ={gamma:+.2f}: ‖w_maj‖²/‖w_min‖² = {now['w_sq_ratio']:.4f}, "
                        f"‖h_maj‖²/‖h_min‖² = {now['h_sq_ratio']:.4f}; symmetric γ: "
                        + ", ".join(f"{t} {v:+.4f}" if np.isfinite(v) else f"{t} none" for t, v in sym.items()))}


def cssvm_figures(state: dict) -> list:
    figs = []
    for t in ("W", "H"):
        fig = plots.curves([], {}, xlabel="γ  (δ_maj/δ_min = R^γ)", ylabel="ratio / cosine",
                           title=f"{'classifiers' if t == 'W' else 'class embeddings'} — lines: closed form, "
                                 "markers: convex solver", height=340)
        for label in (lab for lab in state["curves"] if lab.startswith(t)):
            fig.add_scatter(x=[], y=[], mode="lines", name=label.split(": ")[1], legendgroup=label)
            fig.add_scatter(x=[], y=[], mode="markers", name=label.split(": ")[1] + " (solver)",
                            legendgroup=label, showlegend=False, marker=dict(size=6, color="black"))
        fig.add_scatter(x=[-1.5, 1.5], y=[1, 1], mode="lines", name="ETF ratio", line=dict(dash="dash", color="gray"))
        fig.add_scatter(x=[-1.5, 1.5], y=[0, 0], mode="lines", name="ETF cosine", line=dict(dash="dot", color="gray"))
        plots.add_vline(fig, state["gamma"], name="current γ")
        figs.append(fig)
    apply_cssvm(figs, state)
    return figs


def apply_cssvm(figs: list, state: dict) -> None:
    """Write ``cssvm_state`` output into the [W, H] figures (4 line/marker pairs, 2 references, marker)."""
    for fig, t in zip(figs, ("W", "H"), strict=True):
        labels = [lab for lab in state["curves"] if lab.startswith(t)]
        for i, label in enumerate(labels):
            line, dots = fig.data[2 * i], fig.data[2 * i + 1]
            line.x, line.y = state["gamma_grid"], _nan_to_none(state["curves"][label])
            dots.x, dots.y = state["solver_gammas"], _nan_to_none(state["solver"][label])
        fig.data[-2].y = [state["etf_cos"]] * 2
        fig.data[-1].x = [state["gamma"], state["gamma"]]


def cssvm_app(kind: str = "cdt", k: int = 4, R: float = 10.0, k_min: int = 2, gamma: float = 0.0) -> App:
    """Loss kind, k, R, k_min (re-solve on release) and γ → the eight curves; a button jumps to the
    symmetric γ (H norms, W norms, or the LDT ETF)."""
    kinds = widgets.ToggleButtons(options=[("CDT / VS", "cdt"), ("LDT", "ldt")], value=kind, description="loss")
    ks = widgets.IntSlider(value=k, min=3, max=10, description="k", continuous_update=False)
    Rs = widgets.FloatLogSlider(value=R, base=10, min=0, max=3, step=0.05, description="R", continuous_update=False)
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="k_min", continuous_update=False)
    gs = widgets.FloatSlider(value=gamma, min=-1.5, max=1.5, step=0.01, description="γ")
    ks.observe(lambda ch: setattr(kms, "max", ch["new"] - 1), names="value")
    app = App({"kind": kinds, "k": ks, "R": Rs, "k_min": kms, "gamma": gs},
              cssvm_figures(cssvm_state(kind, k, R, k_min, gamma)), cssvm_state, apply_cssvm,
              title="CS-SVM geometry vs γ")
    target = widgets.Dropdown(options=[("equal H norms", "H"), ("equal W norms", "W"), ("ETF (LDT)", "etf")],
                              value="H", description="symmetric")
    button = widgets.Button(description="make it symmetric")

    def jump(_):
        g = jump_to_symmetric(app.state, target.value)
        if g is None:
            app.status.value = f"no symmetric γ for target {target.value!r} with this loss and R"
            return
        if target.value == "etf":
            kinds.value = "ldt"
        gs.value = g

    button.on_click(jump)
    app.extra = [target, button]
    return app


def jump_to_symmetric(state: dict, target: str) -> float | None:
    """The γ the "make it symmetric" button moves to (clipped to the slider's [−1.5, 1.5]), or None."""
    if target == "etf":
        return 0.5
    g = state["symmetric"].get(target, float("nan"))
    return None if not np.isfinite(g) else float(np.clip(g, -1.5, 1.5))


# ---------------------------------------------------------------- SCL apps
@functools.lru_cache(maxsize=128)
def _scl_gram_cached(sizes: tuple, tau: float, relu: bool) -> np.ndarray:
    from nclab.convex import scl_gram

    return scl_gram(sizes, tau, relu)


def scl_theory_state(k: int, R: float, k_min: int, tau: float, relu: bool, n_min: int = 2) -> dict:
    """Pure: exact class-mean Gram of the SCL optimum (convex, cached) for step-imbalanced sizes, its
    cosine summary, distance to the OF, and (ReLU) the optimal value vs the closed formula."""
    from nclab.scl import class_objective, optimal_value

    sizes = tuple(int(s) for s in step_sizes(k, R, k_min, n_min))
    G = _scl_gram_cached(sizes, float(tau), bool(relu))
    maj = np.asarray(sizes) > min(sizes)
    stats = group_stats(G, maj) if maj.any() else {"cos_maj_maj": float(np.mean(G[~np.eye(k, dtype=bool)]))}
    value = class_objective(G, sizes, tau)
    formula = optimal_value(sizes, tau)
    d_of = gram_distance(G, np.eye(k))
    msg = (f"sizes {list(sizes)}, τ={tau:g}, {'ReLU' if relu else 'no ReLU'}: d(Gram, OF) = {d_of:.2e}; "
           + ", ".join(f"{key.replace('cos_', 'cos ')} = {v:+.3f}" for key, v in stats.items() if key.startswith("cos"))
           + (f"; optimum {value:.6f} vs formula {formula:.6f}" if relu else ""))
    return {"grams": {"class-mean Gram (exact)": G, "orthogonal frame": np.eye(k)}, "d_OF": d_of,
            "value": value, "formula": formula, "stats": stats, "message": msg}


def scl_theory_figures(state: dict) -> list:
    fig = plots.heatmaps(state["grams"], height=300)
    apply_scl_theory([fig], state)
    return [fig]


def apply_scl_theory(figs: list, state: dict) -> None:
    for trace, mat in zip(figs[0].data, state["grams"].values(), strict=True):
        trace.z = mat


def scl_theory_app(k: int = 4, R: float = 10, k_min: int = 2, tau: float = 1.0, relu: bool = True) -> App:
    """k, R, k_min, τ (re-solve on release) and a ReLU switch → exact Gram of class means."""
    ks = widgets.IntSlider(value=k, min=2, max=8, description="k", continuous_update=False)
    Rs = widgets.SelectionSlider(options=[1, 2, 5, 10, 20, 50, 100], value=R, description="R",
                                 continuous_update=False)
    kms = widgets.IntSlider(value=k_min, min=1, max=k - 1, description="k_min", continuous_update=False)
    taus = widgets.FloatLogSlider(value=tau, base=10, min=-1, max=1, step=0.1, description="τ",
                                  continuous_update=False)
    relus = widgets.Checkbox(value=relu, description="ReLU (h ≥ 0)")
    ks.observe(lambda ch: setattr(kms, "max", ch["new"] - 1), names="value")
    return App({"k": ks, "R": Rs, "k_min": kms, "tau": taus, "relu": relus},
               scl_theory_figures(scl_theory_state(k, R, k_min, tau, relu)), scl_theory_state, apply_scl_theory,
               title="Exact SCL geometry (convex program)")


def batching_state(scheme: str, binding: bool, sizes: tuple = (16, 16, 4, 4), batch_size: int = 8,
                   seed: int = 0, epochs: int = 20) -> dict:
    """Pure: the checker's verdict for a batching scheme (± binding) and the class-meeting matrix."""
    from nclab.labels import labels_from_sizes
    from nclab.scl import check_batches, meeting_matrix, schedule

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
    schemes = widgets.Dropdown(options=["full", "reshuffle", "partition", "stratified", "never_meet"],
                               value=scheme, description="batching")
    bind = widgets.Checkbox(value=binding, description="batch-binding")
    state = batching_state(scheme, binding)
    fig = plots.heatmaps(state["grams"], height=280, zmid=None)
    return App({"scheme": schemes, "binding": bind}, [fig],
               lambda scheme, binding: batching_state(scheme, binding), apply_scl_theory, title="Batching lab")


# ---------------------------------------------------------------- prototypes app
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
               [plots.heatmaps(state["grams"], height=280)], prototypes_state, apply_scl_theory,
               title="Prototypes steer the SCL geometry")


# ---------------------------------------------------------------- NTP app
@functools.lru_cache(maxsize=64)
def _ntp_solution(key: bytes, shape: tuple, pi_key: bytes, lam: float) -> np.ndarray:
    from nclab.convex import ntp_regularized_optimum

    return ntp_regularized_optimum(np.frombuffer(key).reshape(shape), np.frombuffer(pi_key), lam)


def ntp_state(data, log10_lam: float, L_mm: np.ndarray | None = None) -> dict:
    """Pure (solver cached per λ): the exact regularized logits at λ = 10^log10_lam, split into the
    in-support part (vs the log-ratio solution L_in) and the orthogonal part (vs the max-margin L_mm),
    with CE − entropy, ‖in − L_in‖ and cos(orthogonal, L_mm)."""
    from nclab.convex import ntp_max_margin
    from nclab.ntp import decompose, in_support_logits, ntp_loss

    lam = 10.0 ** float(log10_lam)
    L = _ntp_solution(data.P.tobytes(), data.P.shape, data.pi.tobytes(), lam)
    L_mm = ntp_max_margin(data.S) if L_mm is None else L_mm
    inside, orth = decompose(L, data.S)
    L_in = in_support_logits(data)
    cos = float(np.sum(orth * L_mm) / (np.linalg.norm(orth) * np.linalg.norm(L_mm)))
    scale = float(np.sum(orth * L_mm) / np.sum(L_mm * L_mm))
    return {"grams": {f"logits L (λ={lam:.0e})": L, "in-support part": inside, "L_in (log-ratios)": L_in,
                      "orthogonal part": orth, f"{scale:.2f} × L_mm": scale * L_mm},
            "gap": ntp_loss(L, data) - data.entropy(), "in_err": float(np.linalg.norm(inside - L_in)), "cos": cos,
            "message": (f"λ = {lam:.1e}: CE − entropy = {ntp_loss(L, data) - data.entropy():.2e}, "
                        f"‖in-support − L_in‖ = {np.linalg.norm(inside - L_in):.2e}, "
                        f"cos(orthogonal, L_mm) = {cos:.4f}, orthogonal ≈ {scale:.2f} × L_mm")}


def ntp_app(data, log10_lam: float = -3.0) -> App:
    """λ slider (log10, re-solves on release; cached) → logits = in-support (finite) + growing max-margin part."""
    from nclab.convex import ntp_max_margin

    L_mm = ntp_max_margin(data.S)
    lam = widgets.FloatSlider(value=log10_lam, min=-7, max=-1, step=0.5, description="log10 λ",
                              continuous_update=False)
    state = ntp_state(data, log10_lam, L_mm)
    return App({"log10_lam": lam}, [plots.heatmaps(state["grams"], height=300)],
               lambda log10_lam: ntp_state(data, log10_lam, L_mm), _apply_titled_heatmaps,
               title="Exact NTP-UFM optimum: sparse + low-rank")


def _apply_titled_heatmaps(figs: list, state: dict) -> None:
    for trace, mat in zip(figs[0].data, state["grams"].values(), strict=True):
        trace.z = mat
    for ann, name in zip(figs[0].layout.annotations, state["grams"], strict=True):
        ann.text = name


def ntp_data_state(m: int, V: int, patterns: int, max_support: int, seed: int) -> dict:
    """Pure: a synthetic NTP instance's support pattern and probabilities (contexts sorted by support group)."""
    from nclab.ntp import synthetic

    patterns = min(patterns, m)
    data = synthetic(m, V, patterns, (1, min(max_support, V)), (1, 4), seed=seed)
    order = np.argsort(data.support_groups(), kind="stable")
    return {"grams": {"support S (words × contexts)": data.S[:, order].astype(float),
                      "next-token probabilities P": data.P[:, order]},
            "message": (f"m={m} contexts, V={V} words, {patterns} support patterns: entropy bound "
                        f"Σ π_j H(p_j) = {data.entropy():.4f}")}


def ntp_data_app(m: int = 20, V: int = 10, patterns: int = 7, max_support: int = 3, seed: int = 0) -> App:
    """Sliders for the synthetic data model → support and probability heatmaps."""
    controls = {"m": widgets.IntSlider(value=m, min=2, max=60, description="contexts m"),
                "V": widgets.IntSlider(value=V, min=3, max=30, description="words V"),
                "patterns": widgets.IntSlider(value=patterns, min=1, max=20, description="patterns"),
                "max_support": widgets.IntSlider(value=max_support, min=1, max=6, description="max |S_j|"),
                "seed": widgets.IntText(value=seed, description="seed")}
    state = ntp_data_state(m, V, patterns, max_support, seed)
    return App(controls, [plots.heatmaps(state["grams"], height=280, zmid=None)], ntp_data_state,
               _apply_titled_heatmaps, title="NTP data lab")


# ---------------------------------------------------------------- DAREx apps
def darex_theory_state(p: float, q: float, delta_mean: float, delta_std: float, x_scale: float,
                       seed: int = 0, draws: int = 400) -> dict:
    """Pure: predicted vs Monte-Carlo mean/variance of one layer's output change (8 neurons × 256
    inputs, Δ ~ N(mean, std), x ~ scale·N(1, ½)), E[Σ δh²] vs q with q*, and DARE's variance vs p."""
    from nclab.darex import output_change_mc, output_change_stats, q_star

    rng = np.random.default_rng(seed)
    D = rng.normal(delta_mean, delta_std, (8, 256))
    x = x_scale * rng.normal(1.0, 0.5, 256)
    q = max(q, 1e-3)
    mean, var = output_change_stats(D, x, p, q)
    mc_mean, mc_var = output_change_mc(D, x, p, q, draws=draws, seed=seed)
    qs = np.linspace(max(1 - p, 1e-3), 1.0, 80)
    risk = [float(np.sum(sum(output_change_stats(D, x, p, qq)[i] ** (1 + (i == 0)) for i in (0, 1)))) for qq in qs]
    ps = np.linspace(0.0, 0.995, 80)
    dare_var = [float(np.sum(output_change_stats(D, x, pp)[1])) for pp in ps]
    qs_ = q_star(D, x, p)
    return {"neurons": np.arange(8), "mean": mean, "var": var, "mc_mean": mc_mean, "mc_var": mc_var,
            "qs": qs, "risk": np.array(risk), "q": q, "q_star": qs_, "ps": ps, "dare_var": np.array(dare_var),
            "p": p, "message": (f"p={p:g}, q={q:g} (DARE: {1 - p:g}); q* = {qs_:.4f}; Σ Var predicted "
                                f"{var.sum():.3g} vs Monte-Carlo {mc_var.sum():.3g}")}


def darex_theory_figures(state: dict) -> list:
    import plotly.graph_objects as go

    a = go.Figure()
    for name in ("mean", "mc_mean", "var", "mc_var"):
        a.add_scatter(x=[], y=[], mode="markers" if name.startswith("mc") else "lines+markers", name=name)
    a.update_layout(template=plots.template(), height=300, title="output change per neuron: formula vs Monte-Carlo",
                    xaxis_title="neuron")
    b = plots.curves([], {"E Σ δh² vs q": []}, xlabel="q", log_y=True, title="expected squared change vs q")
    b.add_scatter(x=[], y=[], mode="markers", name="q*", marker=dict(size=10, symbol="star"))
    plots.add_vline(b, state["q"], name="current q")
    c = plots.curves(state["ps"], {"DARE Σ Var δh (q = 1 − p)": state["dare_var"]}, xlabel="p", log_y=True,
                     title="DARE's variance blows up as p → 1")
    plots.add_vline(c, state["p"], name="current p")
    figs = [a, b, c]
    apply_darex_theory(figs, state)
    return figs


def apply_darex_theory(figs: list, state: dict) -> None:
    a, b, c = figs
    for trace, name in zip(a.data, ("mean", "mc_mean", "var", "mc_var"), strict=True):
        trace.x, trace.y = state["neurons"], state[name]
    b.data[0].x, b.data[0].y = state["qs"], state["risk"]
    qstar = min(max(state["q_star"], state["qs"][0]), 1.0)
    b.data[1].x, b.data[1].y = [qstar], [float(np.interp(qstar, state["qs"], state["risk"]))]
    b.data[-1].x = [state["q"], state["q"]]
    c.data[0].x, c.data[0].y = state["ps"], state["dare_var"]
    c.data[-1].x = [state["p"], state["p"]]


def darex_theory_app(p: float = 0.99, q: float = 0.1, delta_mean: float = 0.0, delta_std: float = 0.01,
                     x_scale: float = 1.0) -> App:
    """Sliders p, q (kept ≥ 1−p), Δ mean/std and input scale → formula vs Monte-Carlo, q*, DARE blow-up."""
    ps = widgets.FloatSlider(value=p, min=0.0, max=0.995, step=0.005, description="p")
    qs = widgets.FloatSlider(value=max(q, 1 - p), min=0.005, max=1.0, step=0.005, description="q")
    ms = widgets.FloatSlider(value=delta_mean, min=-0.05, max=0.05, step=0.005, description="Δ mean")
    ss = widgets.FloatSlider(value=delta_std, min=0.001, max=0.1, step=0.001, description="Δ std")
    xs = widgets.FloatSlider(value=x_scale, min=0.1, max=5.0, step=0.1, description="x scale")

    def keep_q_valid(change):
        qs.min = max(0.005, round(1 - change["new"], 3))
    ps.observe(keep_q_valid, names="value")
    keep_q_valid({"new": p})
    return App({"p": ps, "q": qs, "delta_mean": ms, "delta_std": ss, "x_scale": xs},
               darex_theory_figures(darex_theory_state(p, max(q, 1 - p), delta_mean, delta_std, x_scale)),
               darex_theory_state, apply_darex_theory, title="DARE / DAREx-q: one layer's output change")


def flowchart_app() -> App:
    """The method-selection flowchart as controls → a recommendation (``darex.recommend``)."""
    from nclab.darex import recommend

    controls = {"p": widgets.FloatSlider(value=0.99, min=0.0, max=0.999, step=0.001, description="p"),
                "delta_scale": widgets.ToggleButtons(options=["small", "large"], description="deltas"),
                "labels": widgets.Checkbox(value=True, description="labeled validation data"),
                "can_refinetune": widgets.Checkbox(value=False, description="can re-fine-tune")}
    return App(controls, [], lambda **v: {"message": "<b>Recommendation:</b> " + recommend(**v)},
               lambda figs, state: None, title="Which delta-pruning method?")


# ---------------------------------------------------------------- MCL apps
def mcl_state(cache: dict, delta: float, step: int, div: str, threshold: float, short: int = 4) -> dict:
    """Pure: MCL / DaMCL histograms, the fraction within ``short``, and the detector ROC, from cached
    per-position distributions for every length (``cache``: "probs" list of (T_t×V), "targets", "truth")."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from nclab.mcl import damcl_from_probs, mcl_from_probs, score_from_probs

    mcls, damcls, scores = [], [], []
    for P, target in zip(cache["probs"], cache["targets"], strict=True):
        t = P.shape[0]
        rows = [i for i in range(t - 1) if (i + 1) % step == 0 or i == 0] + [t - 1]
        lengths = [i + 1 for i in rows]
        Q = P[rows]
        m = mcl_from_probs(Q, lengths, target, delta)
        mcls.append(-1 if m is None else m)
        damcls.append(damcl_from_probs(Q, lengths, div, threshold))
        scores.append(score_from_probs(Q, lengths, short, div))
    mcls, damcls, scores = np.array(mcls), np.array(damcls), np.array(scores)
    truth_long = np.asarray(cache["truth"]) > short
    fpr, tpr, _ = roc_curve(truth_long, scores)
    auroc = float(roc_auc_score(truth_long, scores))
    ev = mcls > 0
    frac = float(np.mean(mcls[ev] <= short)) if ev.any() else float("nan")
    return {"mcl": mcls[ev], "damcl": damcls, "fpr": fpr, "tpr": tpr, "auroc": auroc, "short_fraction": frac,
            "message": (f"δ={delta:g}, schedule step {step}, {div.upper()} ≤ {threshold:g}: {100 * frac:.1f} % of "
                        f"evaluated positions need ≤ {short} tokens; detector AUROC {auroc:.3f}")}


def mcl_figures(state: dict) -> list:
    import plotly.graph_objects as go

    h = go.Figure()
    h.add_histogram(x=[], name="MCL", opacity=0.6, xbins=dict(size=1))
    h.add_histogram(x=[], name="DaMCL", opacity=0.6, xbins=dict(size=1))
    h.update_layout(template=plots.template(), barmode="overlay", height=320, xaxis_title="context length",
                    yaxis_type="log", title="minimum context length per position")
    r = plots.curves([], {"ROC": []}, xlabel="false positive rate", ylabel="true positive rate", height=320,
                     title="long/short detector")
    r.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="gray"))
    figs = [h, r]
    apply_mcl(figs, state)
    return figs


def apply_mcl(figs: list, state: dict) -> None:
    h, r = figs
    h.data[0].x, h.data[1].x = state["mcl"], state["damcl"]
    r.data[0].x, r.data[0].y = state["fpr"], state["tpr"]
    r.data[0].name = f"ROC (AUROC {state['auroc']:.3f})"


def mcl_app(cache: dict, short: int = 4) -> App:
    """δ, schedule step, divergence and threshold → MCL/DaMCL histograms and the detector ROC (no forwards:
    every truncation's distribution is cached)."""
    controls = {"delta": widgets.FloatSlider(value=0.2, min=0.0, max=0.9, step=0.05, description="δ"),
                "step": widgets.SelectionSlider(options=[1, 2, 4, 8], value=1, description="schedule step"),
                "div": widgets.Dropdown(options=["jsd", "tv", "kl"], value="jsd", description="divergence"),
                "threshold": widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.1,
                                                    description="threshold")}
    state = mcl_state(cache, 0.2, 1, "jsd", 0.1, short)
    return App(controls, mcl_figures(state), lambda **v: mcl_state(cache, short=short, **v), apply_mcl,
               title="MCL and DaMCL")


def boost_state(curve: dict, alpha: float) -> dict:
    """Pure: plain vs boosted accuracy curves over α with the current α marked."""
    i = int(np.argmin(np.abs(np.asarray(curve["alpha"]) - alpha)))
    return {**curve, "current": float(curve["alpha"][i]),
            "message": (f"α = {curve['alpha'][i]:g}: recall accuracy plain {curve['plain'][i]:.3f} → "
                        f"boosted {curve['boosted'][i]:.3f}")}


def boost_app(curve: dict) -> App:
    """α slider over a precomputed accuracy curve (``curve``: "alpha", "plain", "boosted")."""
    state = boost_state(curve, curve["alpha"][len(curve["alpha"]) // 2])
    fig = plots.curves(state["alpha"], {"plain sampling": state["plain"], "boosted when the detector fires":
                                        state["boosted"]}, xlabel="boost strength α", ylabel="recall accuracy",
                       title="long-context positions", height=320)
    plots.add_vline(fig, state["current"], name="current α")

    def apply(figs, st):
        figs[0].data[-1].x = [st["current"], st["current"]]
    slider = widgets.SelectionSlider(options=list(curve["alpha"]), value=state["current"], description="α")
    return App({"alpha": slider}, [fig], lambda alpha: boost_state(curve, alpha), apply,
               title="Long-context boosted decoding")
