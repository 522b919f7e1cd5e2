"""MCL apps (07): MCL/DaMCL histograms + detector ROC, and the boosted-decoding α app."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab.apps.base import App


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
    h.update_layout(template=plots.template(), barmode="overlay", height=320, xaxis_title="context length ℓ (tokens)",
                    yaxis_title="positions (count)", yaxis_type="log", title="minimum context length per position")
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


class MCLApp(App):
    """The MCL app with a *model* selector: ``add_model(name, cache)`` swaps in (and selects) the cached
    distributions of another model — e.g. the exact oracle first, the trained transformer once it is trained."""

    def __init__(self, caches: dict, short: int = 4):
        if not caches:
            raise ValueError("caches is empty: pass at least one model name → probability_cache(...)")
        self.caches = dict(caches)
        style = {"description_width": "initial"}
        names = list(self.caches)
        controls = {
            "delta": widgets.FloatSlider(value=0.2, min=0.0, max=0.9, step=0.05, description="margin δ",
                                         readout_format=".2f", continuous_update=False, style=style),
            "step": widgets.SelectionSlider(options=[1, 2, 4, 8], value=1, description="schedule step ℓ",
                                            continuous_update=False, style=style),
            "div": widgets.Dropdown(options=["jsd", "tv", "kl"], value="jsd", description="divergence", style=style),
            "threshold": widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.1,
                                                description="DaMCL threshold ε", readout_format=".3f",
                                                continuous_update=False, style=style),
            "model": widgets.Dropdown(options=names, value=names[-1], description="model", style=style)}
        state = mcl_state(self.caches[names[-1]], 0.2, 1, "jsd", 0.1, short)

        def state_fn(model, **values):
            st = mcl_state(self.caches[model], short=short, **values)
            return {**st, "model": model, "message": f"<b>{model}</b> — {st['message']}"}

        super().__init__(controls, mcl_figures(state), state_fn, apply_mcl, title="MCL and DaMCL")

    def add_model(self, name: str, cache: dict) -> dict:
        """Add (or replace) the model ``name`` with its ``probability_cache`` and show it; returns the new state."""
        if not isinstance(cache, dict) or "probs" not in cache:
            raise ValueError(f"cache for model {name!r} must be a probability_cache(...) dict, got {type(cache)}")
        self.caches[name] = cache
        sel = self.controls["model"]
        if name not in sel.options:
            sel.options = list(self.caches)  # may reset the selection (and redraw): the cache is already in place
        if sel.value != name:
            sel.value = name  # observed: redraws
        else:
            self.update()
        return self.state


def mcl_app(cache: dict, short: int = 4, model: str = "model") -> MCLApp:
    """δ, schedule step, divergence, threshold and model → MCL/DaMCL histograms and the detector ROC (no
    forwards: every truncation's distribution is cached). ``app.add_model(name, cache)`` swaps in another model."""
    return MCLApp({model: cache}, short=short)


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
    slider = widgets.SelectionSlider(options=list(curve["alpha"]), value=state["current"], description="boost α",
                                    style={"description_width": "initial"})
    return App({"alpha": slider}, [fig], lambda alpha: boost_state(curve, alpha), apply,
               title="Long-context boosted decoding")
