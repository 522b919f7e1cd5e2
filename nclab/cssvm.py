"""CS-SVM (Behnia et al., AISTATS 2023): closed-form geometry of logit-adjusted CE under step imbalance.

Majorities first: k_M = k − k_min classes of size R·n_min with factor a = δ_maj, then k_min classes of
size n_min with factor b = δ_min; γ parameterizes δ_maj/δ_min = R^γ. "sq" entries are squared norms.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from nclab._checks import array, integer, real
from nclab.metrics import step_group_summary

KEYS = ("w_maj_sq", "w_min_sq", "w_maj_maj", "w_min_min", "w_maj_min",
        "h_maj_sq", "h_min_sq", "h_maj_maj", "h_min_min", "h_maj_min")


def step_geometry(k: int, R: float, k_min: int, delta_ratio: float, kind: str = "cdt", n_min: int = 1) -> dict:
    """Closed-form CS-SVM geometry for δ_maj/δ_min = ``delta_ratio`` (a = delta_ratio, b = 1).

    CDT: all margins tight, A_W = t‖v‖/‖u‖, A_H = t‖u‖/‖v‖ with t = 1/(k_M b² + k_m a²),
    ‖u‖² = a² + b² k_M/k_m, ‖v‖² = k_m(R k_m + k_M). LDT: SELI at R_eff = R b²/a², then h_c = h̃_c/δ_c.
    Returns the ``KEYS`` entries plus w/h squared-norm ratios and cosines (maj–maj, min–min, maj–min)."""
    k = integer("k", k, 2)
    R = real("R", R, 1.0)
    km = integer("k_min", k_min, 1, k - 1)
    n_min = integer("n_min", n_min, 1)
    a = real("delta_ratio", delta_ratio, 0.0, lo_open=True)
    b = 1.0
    kM = k - km
    if kind == "cdt":
        out = _cdt(kM, km, R, a, b)
    elif kind == "ldt":
        out = _ldt(k, kM, km, R, a, b)
    else:
        raise ValueError(f"kind={kind!r} is not allowed: use 'cdt' or 'ldt'")
    out = {key: v * (np.sqrt(n_min) if key[0] == "w" else 1 / np.sqrt(n_min)) for key, v in out.items()}
    return step_group_summary(out, kM, km)


def _cdt(kM, km, R, a, b) -> dict:
    t = 1.0 / (kM * b**2 + km * a**2)
    u = np.sqrt(a**2 + b**2 * kM / km)
    v = np.sqrt(km * (R * km + kM))
    AW, AH = t * v / u, t * u / v
    sR = np.sqrt(R)
    return {"w_maj_sq": (sR / a) * (1 - 1 / kM) + AW * a**2 / kM,
            "w_maj_maj": -sR / (a * kM) + AW * a**2 / kM,
            "w_min_sq": (1 / b) * (1 - 1 / km) + AW * b**2 * kM / km**2,
            "w_min_min": -1 / (b * km) + AW * b**2 * kM / km**2,
            "w_maj_min": -AW * a * b / km,
            "h_maj_sq": ((sR / a) * (1 - 1 / kM) + AH * R * km**2 / kM) / R,
            "h_maj_maj": (-sR / (a * kM) + AH * R * km**2 / kM) / R,
            "h_min_sq": (1 / b) * (1 - 1 / km) + AH * kM,
            "h_min_min": -1 / (b * km) + AH * kM,
            "h_maj_min": -AH * km}


def _ldt(k, kM, km, R, a, b) -> dict:
    """UF-SVM with effective sizes R/a² (majority) and 1/b² (minority): SELI, then h_c = h̃_c / δ_c."""
    r_eff = R * b**2 / a**2
    scale = 1.0 / b**2  # effective minority size
    if r_eff >= 1:  # SELI at R_eff = the CDT closed form with equal factors
        s = _cdt(kM, km, r_eff, 1.0, 1.0)
    else:  # the effective "majority" is the true minority group: swap the roles
        s = {_swap(key): v for key, v in _cdt(km, kM, 1 / r_eff, 1.0, 1.0).items()}
        scale = R / a**2
    out = {key: s[key] * (np.sqrt(scale) if key[0] == "w" else 1 / np.sqrt(scale)) for key in KEYS}
    out["h_maj_sq"] /= a**2
    out["h_maj_maj"] /= a**2
    out["h_min_sq"] /= b**2
    out["h_min_min"] /= b**2
    out["h_maj_min"] /= a * b
    return out


def _swap(key: str) -> str:
    key = key.replace("maj", "#").replace("min", "maj").replace("#", "min")
    return key.replace("min_maj", "maj_min")


def step_grams(k: int, R: float, k_min: int, delta_ratio: float, kind: str = "cdt",
               n_min: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """k×k classifier and class-embedding Grams assembled from ``step_geometry``."""
    g = step_geometry(k, R, k_min, delta_ratio, kind, n_min)
    maj = np.arange(k) < k - int(k_min)
    grams = []
    for t in "wh":
        G = np.where(np.logical_and.outer(maj, maj), g[f"{t}_maj_maj"], g[f"{t}_min_min"])
        G = np.where(np.logical_xor.outer(maj, maj), g[f"{t}_maj_min"], G)
        np.fill_diagonal(G, np.where(maj, g[f"{t}_maj_sq"], g[f"{t}_min_sq"]))
        grams.append(G)
    return grams[0], grams[1]


def step_delta(k: int, R: float, k_min: int, gamma: float, n_min: int = 1) -> np.ndarray:
    """Per-class factors with δ_maj/δ_min = R^γ (majorities first, minority factor 1)."""
    k = integer("k", k, 2)
    km = integer("k_min", k_min, 1, k - 1)
    R = real("R", R, 1.0)
    gamma = real("gamma", gamma, -10.0, 10.0)
    integer("n_min", n_min, 1)
    return np.array([R**gamma] * (k - km) + [1.0] * km)


GAMMA_CURVES = {f"{t}: {name}": (t, key) for t in ("W", "H") for name, key in
                (("‖maj‖²/‖min‖²", "sq_ratio"), ("cos maj–maj", "cos_maj_maj"), ("cos min–min", "cos_min_min"),
                 ("cos maj–min", "cos_maj_min"))}


def gamma_curves(k: int, R: float, k_min: int, kind: str, gammas) -> dict:
    """The eight curves vs γ (δ_maj/δ_min = R^γ): W and H squared-norm ratio and three cosines."""
    R = real("R", R, 1.0)
    gammas = array("gammas", gammas, ndim=1)
    rows = [step_geometry(k, R, k_min, R**g, kind) for g in gammas]
    return {label: np.array([r[f"{t.lower()}_{key}"] for r in rows]) for label, (t, key) in GAMMA_CURVES.items()}


def symmetric_gamma(k: int, R: float, k_min: int, kind: str = "cdt", target: str = "H") -> float:
    """γ at which the majority and minority squared norms of ``target`` ("W" or "H") are equal
    (root of the closed form in γ ∈ [−3, 3]; LDT with target "etf" gives exactly ½: δ_c ∝ √n_c)."""
    R = real("R", R, 1.0, lo_open=True)
    if target == "etf":
        if kind != "ldt":
            raise ValueError("target='etf' exists only for kind='ldt' (no CDT/VS δ gives an ETF)")
        return 0.5
    if target not in ("W", "H"):
        raise ValueError(f"target={target!r} is not allowed: use 'W', 'H' or 'etf'")
    key = f"{target.lower()}_sq_ratio"

    def f(g):
        return np.log(step_geometry(k, R, k_min, R**g, kind)[key])

    lo, hi = -3.0, 3.0
    if max(abs(f(lo)), abs(f(hi)), abs(f(0.0))) < 1e-12:
        raise ValueError(f"the {target} norms are equal for every γ when k={k}, k_min={k_min}")
    if f(lo) * f(hi) > 0:
        raise ValueError(f"no γ in [{lo}, {hi}] equalizes the {target} norms for k={k}, R={R}, k_min={k_min}")
    return float(brentq(f, lo, hi, xtol=1e-12))
