"""NTP apps (05): the data lab (supports, probabilities) and the exact λ-path app."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from nclab import plots
from nclab._checks import integer
from nclab.apps.base import App, apply_heatmaps


@functools.lru_cache(maxsize=64)
def _ntp_solution(key: bytes, shape: tuple, pi_key: bytes, lam: float) -> np.ndarray:
    from nclab.convex import ntp_regularized_optimum

    return ntp_regularized_optimum(np.frombuffer(key).reshape(shape), np.frombuffer(pi_key), lam)


def ntp_state(data, log10_lam: float, L_mm: np.ndarray | None = None) -> dict:
    """Pure (solver cached per λ): the exact regularized logits at λ = 10^log10_lam, split into the
    in-support part (vs the log-ratio solution L_in; ``grams``, finite) and the orthogonal part (vs the
    max-margin L_mm; ``growing``, with L itself), with CE − entropy, ‖in − L_in‖ and cos(orthogonal, L_mm)."""
    from nclab.convex import ntp_max_margin
    from nclab.ntp import decompose, in_support_logits, ntp_loss

    lam = 10.0 ** float(log10_lam)
    L = _ntp_solution(data.P.tobytes(), data.P.shape, data.pi.tobytes(), lam)
    L_mm = ntp_max_margin(data.S) if L_mm is None else L_mm
    inside, orth = decompose(L, data.S)
    L_in = in_support_logits(data)
    cos = float(np.sum(orth * L_mm) / (np.linalg.norm(orth) * np.linalg.norm(L_mm)))
    scale = float(np.sum(orth * L_mm) / np.sum(L_mm * L_mm))
    return {"grams": {"in-support part": inside, "L_in (log-ratios)": L_in},
            "growing": {f"logits L (λ={lam:.0e})": L, "orthogonal part": orth, f"{scale:.2f} × L_mm": scale * L_mm},
            "gap": ntp_loss(L, data) - data.entropy(), "in_err": float(np.linalg.norm(inside - L_in)), "cos": cos,
            "message": (f"λ = {lam:.1e}: CE − entropy = {ntp_loss(L, data) - data.entropy():.2e}, "
                        f"‖in-support − L_in‖ = {np.linalg.norm(inside - L_in):.2e}, "
                        f"cos(orthogonal, L_mm) = {cos:.4f}, orthogonal ≈ {scale:.2f} × L_mm")}


def apply_ntp(figs: list, state: dict) -> None:
    """Write the finite (in-support) panels into the first figure and the growing ones into the second."""
    for fig, key in zip(figs, ("grams", "growing"), strict=True):
        for trace, mat in zip(fig.data, state[key].values(), strict=True):
            trace.z = mat
        for ann, name in zip(fig.layout.annotations, state[key], strict=True):
            ann.text = name


def ntp_app(data, lam: float = 1e-3) -> App:
    """λ slider (log scale, re-solves on release; cached) → logits = in-support (finite) + growing max-margin
    part. Two rows of heatmaps, each on one fixed symmetric colour scale for every λ: the finite part (scale
    from L_in) and the growing part (scale from the smallest λ the slider reaches)."""
    from nclab.convex import ntp_max_margin

    L_mm = ntp_max_margin(data.S)
    control = widgets.FloatLogSlider(value=lam, base=10, min=-7, max=-1, step=0.5, description="λ",
                                     readout_format=".1e", continuous_update=False,
                                     style={"description_width": "initial"})
    state = ntp_state(data, np.log10(control.value), L_mm)
    finite = 1.05 * max(float(np.abs(state["grams"]["L_in (log-ratios)"]).max()), 1e-12)
    growing = 1.05 * max(float(np.abs(np.asarray(m)).max()) for m in ntp_state(data, -7.0, L_mm)["growing"].values())
    figs = [plots.heatmaps(state["grams"], height=280, zmax=finite, scale_title="logit (finite part)"),
            plots.heatmaps(state["growing"], height=280, zmax=max(growing, 1e-12), scale_title="logit")]
    return App({"lam": control}, figs, lambda lam: ntp_state(data, np.log10(lam), L_mm), apply_ntp,
               title="Exact NTP-UFM optimum: sparse + low-rank")


def ntp_data_state(m: int, V: int, patterns: int, max_support: int, seed: int) -> dict:
    """Pure: a synthetic NTP instance's support pattern and probabilities (contexts sorted by support group)."""
    from nclab.ntp import n_supports, synthetic

    m, V, seed = integer("m", m, 2, 1000), integer("V", V, 2, 1000), integer("seed", seed, 0)
    patterns, max_support = integer("patterns", patterns, 1, 1000), integer("max_support", max_support, 1, 1000)
    max_support = min(max_support, V)
    patterns = max(1, min(patterns, m, n_supports(V, 1, max_support)))  # never ask for more supports than exist
    data = synthetic(m, V, patterns, (1, max_support), (1, 4), seed=seed)
    order = np.argsort(data.support_groups(), kind="stable")
    return {"grams": {"support S (words × contexts)": data.S[:, order].astype(float),
                      "next-token probabilities P": data.P[:, order]},
            "message": (f"m={m} contexts, V={V} words, {patterns} support patterns: entropy bound "
                        f"Σ π_j H(p_j) = {data.entropy():.4f}")}


def ntp_data_app(m: int = 20, V: int = 10, patterns: int = 7, max_support: int = 3, seed: int = 0) -> App:
    """Sliders for the synthetic data model → support and probability heatmaps. The patterns slider's
    maximum follows m and the number of support sets that exist (Σ_k C(V, k), k ≤ max |S_j|)."""
    wide = {"description_width": "initial"}
    controls = {"m": widgets.IntSlider(value=m, min=2, max=60, description="contexts m", style=wide),
                "V": widgets.IntSlider(value=V, min=3, max=30, description="words V", style=wide),
                "patterns": widgets.IntSlider(value=patterns, min=1, max=20, description="support patterns",
                                              style=wide),
                "max_support": widgets.IntSlider(value=max_support, min=1, max=6, description="max |S_j|",
                                                 style=wide),
                "seed": widgets.IntText(value=seed, description="seed", style=wide)}
    from nclab.ntp import n_supports

    def _limit(_=None):
        c = controls
        c["patterns"].max = max(1, min(20, c["m"].value, n_supports(c["V"].value, 1, min(c["max_support"].value,
                                                                                           c["V"].value))))
    for key in ("m", "V", "max_support"):
        controls[key].observe(_limit, names="value")
    _limit()
    state = ntp_data_state(m, V, controls["patterns"].value, max_support, seed)
    fig = plots.heatmaps(state["grams"], height=280, zmax=1.0, scale_title="indicator / probability")
    fig.update_xaxes(title_text="context j (sorted by support set)")
    fig.update_yaxes(title_text="word z", col=1)
    return App(controls, [fig], ntp_data_state,
               functools.partial(apply_heatmaps, retitle=True), title="NTP data lab")
