"""DAREx apps (06): the output-change theory app (formula vs Monte-Carlo, q*) and the flowchart."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import integer, real
from nclab.apps.base import App


def darex_theory_state(p: float, q: float, delta_mean: float, delta_std: float, x_scale: float,
                       seed: int = 0, draws: int = 400) -> dict:
    """Pure: predicted vs Monte-Carlo mean/variance of one layer's output change (8 neurons × 256
    inputs, Δ ~ N(mean, std), x ~ scale·N(1, ½)), E[Σ δh²] vs q with q*, and DARE's variance vs p."""
    from nclab.darex import output_change_mc, output_change_stats, q_star

    p, q = real("p", p, 0.0, 1.0, hi_open=True), real("q", q, 0.0, 1.0)
    delta_mean, delta_std = real("delta_mean", delta_mean, -1.0, 1.0), real("delta_std", delta_std, 0.0, 1.0)
    x_scale, seed = real("x_scale", x_scale, 0.0, 100.0, lo_open=True), integer("seed", seed, 0)
    rng = np.random.default_rng(seed)
    D = rng.normal(delta_mean, delta_std, (8, 256))
    x = x_scale * rng.normal(1.0, 0.5, 256)
    q = max(q, 1e-3)
    mean, var = output_change_stats(D, x, p, q)
    mc_mean, mc_var = output_change_mc(D, x, p, q, draws=draws, seed=seed)
    qs = np.linspace(max(1 - p, 1e-3), 1.0, 80)
    risk = [float(np.sum(sum(output_change_stats(D, x, p, qq)[i] ** (1 + (i == 0)) for i in (0, 1)))) for qq in qs]
    ps = np.concatenate([np.linspace(0.0, 0.99, 100), 1 - np.logspace(-2, -3, 21)[1:]])  # dense as p → 1
    dare_var = [float(np.sum(output_change_stats(D, x, pp)[1])) for pp in ps]
    qs_ = q_star(D, x, p)
    return {"neurons": np.arange(8), "mean": mean, "var": var, "mc_mean": mc_mean, "mc_var": mc_var,
            "qs": qs, "risk": np.array(risk), "q": q, "q_star": qs_, "ps": ps, "dare_var": np.array(dare_var),
            "p": p, "message": (f"p={p:g}, q={q:g} (DARE: {1 - p:g}); q* = {qs_:.4f}; Σ Var predicted "
                                f"{var.sum():.3g} vs Monte-Carlo {mc_var.sum():.3g}")}


def darex_theory_figures(state: dict) -> list:
    """Three figures: mean and variance per neuron (formula vs Monte-Carlo) on separate axes; E Σ δh² vs q
    with q* and the current q; DARE's Σ Var vs p with the current p."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    a = make_subplots(rows=1, cols=2, subplot_titles=("mean E[δh_i]", "variance Var[δh_i]"), horizontal_spacing=0.12)
    for col in (1, 2):  # traces: mean formula, mean MC, variance formula, variance MC
        a.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="formula", legendgroup="formula",
                               showlegend=col == 1, line=dict(color="#1f77b4")), row=1, col=col)
        a.add_trace(go.Scatter(x=[], y=[], mode="markers", name="Monte-Carlo", legendgroup="mc",
                               showlegend=col == 1, marker=dict(color="#d62728", symbol="x", size=9)), row=1, col=col)
        a.update_xaxes(title_text="neuron i", dtick=1, row=1, col=col)
    a.update_yaxes(title_text="E[δh_i]", row=1, col=1)
    a.update_yaxes(title_text="Var[δh_i]", row=1, col=2)
    a.update_layout(template=plots.template(), height=320, title="one layer's output change: formula vs Monte-Carlo",
                    margin=dict(l=40, r=20, t=70, b=40))
    b = plots.curves([], {"Σ_i E[δh_i²]": []}, xlabel="q (survivors rescaled by 1/q)",
                     ylabel="expected squared change Σ_i E[δh_i²]", log_y=True, title="expected squared change vs q")
    b.add_scatter(x=[], y=[], mode="markers", name="q*", marker=dict(size=12, symbol="star"))
    plots.add_vline(b, state["q"], name="current q")
    c = plots.curves(state["ps"], {"DARE Σ_i Var[δh_i] (q = 1 − p)": state["dare_var"]}, xlabel="drop rate p",
                     ylabel="Σ_i Var[δh_i]", log_y=True, title="DARE's variance blows up as p → 1")
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
    """Sliders p, q (kept ≥ 1−p), Δ mean/std and input scale → formula vs Monte-Carlo, q*, DARE blow-up.
    Readouts show the value used (3 decimals for p and q); Δ std and x scale span decades (log sliders)."""
    wide = {"description_width": "initial"}
    ps = widgets.FloatSlider(value=p, min=0.0, max=0.999, step=0.001, description="drop rate p",
                             readout_format=".3f", continuous_update=False, style=wide)
    qs = widgets.FloatSlider(value=max(q, 1 - p), min=0.001, max=1.0, step=0.001, description="q (rescale 1/q)",
                             readout_format=".3f", continuous_update=False, style=wide)
    ms = widgets.FloatSlider(value=delta_mean, min=-0.05, max=0.05, step=0.001, description="Δ mean",
                             readout_format=".3f", continuous_update=False, style=wide)
    ss = widgets.FloatLogSlider(value=delta_std, base=10, min=-3, max=-1, step=0.1, description="Δ std",
                                readout_format=".2g", continuous_update=False, style=wide)
    xs = widgets.FloatLogSlider(value=x_scale, base=10, min=-1, max=np.log10(5.0), step=0.05,
                                description="input scale", readout_format=".2g", continuous_update=False, style=wide)

    def keep_q_valid(change):
        qs.min = max(0.001, round(1 - change["new"], 3))
    ps.observe(keep_q_valid, names="value")
    keep_q_valid({"new": p})
    return App({"p": ps, "q": qs, "delta_mean": ms, "delta_std": ss, "x_scale": xs},
               darex_theory_figures(darex_theory_state(p, max(q, 1 - p), delta_mean, delta_std, x_scale)),
               darex_theory_state, apply_darex_theory, title="DARE / DAREx-q: one layer's output change")


def flowchart_app() -> App:
    """The method-selection flowchart as controls → a recommendation (``darex.recommend``)."""
    from nclab.darex import recommend

    wide = {"description_width": "initial"}
    controls = {"p": widgets.FloatSlider(value=0.99, min=0.0, max=0.999, step=0.001, description="drop rate p",
                                         readout_format=".3f", style=wide),
                "delta_scale": widgets.ToggleButtons(options=["small", "large"], description="deltas", style=wide),
                "labels": widgets.Checkbox(value=True, description="labeled validation data", style=wide),
                "can_refinetune": widgets.Checkbox(value=False, description="can re-fine-tune", style=wide)}
    return App(controls, [], lambda **v: {"message": "<b>Recommendation:</b> " + recommend(**v)},
               lambda figs, state: None, title="Which delta-pruning method?")
