"""Losses on logits laid out as rows (n×k torch tensors, as in ``torch.nn``), mean-reduced.

Logit-adjusted family (VS form):  ℓ(y, z) = −ω_y log softmax(δ_y · (Δ ⊙ z) + ι)_y  with per-class
weights ω, multiplicative logit factors Δ (CDT), additive offsets ι (LA) and per-example factor δ_y (LDT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nclab._checks import array, real, short, tensor
from nclab._threads import configure_threads
from nclab.labels import class_sizes

configure_threads()  # once per process: torch threads = the CPUs available (nclab._threads)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_i [log Σ_c exp z_ic − z_{i,y_i}] for logits (n×k) and integer labels y (n,)."""
    _check_shapes(logits, y)
    return F.cross_entropy(logits, y)


@dataclass(frozen=True)
class LogitAdjustedCE:
    """(1/n) Σ_i −ω_{y_i} log softmax(δ_{y_i} (Δ ⊙ z_i) + ι)_{y_i}; every parameter is a length-k
    array (None = the CE default: ω = 1, Δ = 1, ι = 0, δ = 1). Callable as loss(logits, y)."""

    omega: np.ndarray | None = None
    Delta: np.ndarray | None = None
    iota: np.ndarray | None = None
    delta: np.ndarray | None = None
    name: str = "ce"

    def __post_init__(self):
        for field in ("omega", "Delta", "iota", "delta"):
            if getattr(self, field) is not None:
                object.__setattr__(self, field, array(field, getattr(self, field), ndim=1, finite=False, min_size=2))
        given = {f: len(getattr(self, f)) for f in ("omega", "Delta", "iota", "delta") if getattr(self, f) is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"loss parameters have different lengths {given}: all must have k entries")
        for field in ("omega", "Delta", "delta"):
            v = getattr(self, field)
            if v is not None and (not np.all(np.isfinite(v)) or np.any(np.asarray(v) <= 0)):
                raise ValueError(f"{field}={np.asarray(v).tolist()} must be finite and > 0 for every class")
        if self.iota is not None and not np.all(np.isfinite(self.iota)):
            raise ValueError(f"iota={np.asarray(self.iota).tolist()} must be finite")

    @property
    def k(self) -> int | None:
        for v in (self.omega, self.Delta, self.iota, self.delta):
            if v is not None:
                return len(v)
        return None

    def arrays(self, k: int) -> dict[str, np.ndarray]:
        """The four parameters as float arrays of length k, defaults filled in."""
        if self.k is not None and self.k != k:
            raise ValueError(f"loss has parameters for k={self.k} classes but the logits have k={k}")
        ones, zeros = np.ones(k), np.zeros(k)
        return {"omega": ones if self.omega is None else np.asarray(self.omega, float),
                "Delta": ones if self.Delta is None else np.asarray(self.Delta, float),
                "iota": zeros if self.iota is None else np.asarray(self.iota, float),
                "delta": ones if self.delta is None else np.asarray(self.delta, float)}

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, y)
        p = {key: torch.as_tensor(v, dtype=logits.dtype, device=logits.device)
             for key, v in self.arrays(logits.shape[1]).items()}
        adjusted = p["delta"][y, None] * (p["Delta"][None, :] * logits) + p["iota"][None, :]
        nll = F.cross_entropy(adjusted, y, reduction="none")
        return (p["omega"][y] * nll).mean()


def make_loss(kind: str, sizes, gamma: float = 0.0, tau: float = 1.0) -> LogitAdjustedCE:
    """A member of the family for the given class sizes, with r_c = (n_c/n_min)^γ normalized to mean 1
    (step imbalance: δ_maj/δ_min = R^γ) and π_c = n_c/n:
    "ce"; "wce" (ω ∝ 1/π, mean 1); "la" (ι = τ log π); "cdt" (Δ = r); "ldt" (δ = r); "vs" (Δ = r, ι = τ log π)."""
    sizes = class_sizes(sizes).astype(float)
    gamma = real("gamma", gamma, -10.0, 10.0)
    tau = real("tau", tau, 0.0, 10.0)
    r = (sizes / sizes.min()) ** gamma
    r = r / r.mean()
    pi = sizes / sizes.sum()
    table = {"ce": {}, "wce": {"omega": (1 / pi) / np.mean(1 / pi)}, "la": {"iota": tau * np.log(pi)},
             "cdt": {"Delta": r}, "ldt": {"delta": r}, "vs": {"Delta": r, "iota": tau * np.log(pi)}}
    if kind not in table:
        raise ValueError(f"kind={kind!r} is unknown: allowed {sorted(table)}")
    return LogitAdjustedCE(name=kind, **table[kind])


LOSSES = {"ce": cross_entropy}


def get_loss(loss):
    """A loss callable from its name (one of ``LOSSES``) or the callable itself."""
    if callable(loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss={short(loss)} is unknown: allowed {sorted(LOSSES)} or a callable(logits, y)")
    return LOSSES[loss]


def _check_shapes(logits: torch.Tensor, y: torch.Tensor, name: str = "logits") -> None:
    """logits/features: float n×k tensor; y: integer labels (n,) in 0..k−1 (for logits) or ≥ 0 (features)."""
    tensor(name, logits, 2)
    tensor("y", y, 1, labels=True)
    if logits.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise ValueError(f"{name} must be n×k and y of length n >= 1; got {tuple(logits.shape)} and {tuple(y.shape)}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (name == "logits" and hi >= logits.shape[1]):
        raise ValueError(f"y holds labels {lo}..{hi}: allowed 0..{logits.shape[1] - 1} for {name} with k="
                         f"{logits.shape[1]} columns" if name == "logits" else f"y holds a negative label {lo}")


def supcon(features: torch.Tensor, y: torch.Tensor, tau: float, anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Supervised contrastive loss on unit-norm rows h_i (n×d), anchors summed, positives averaged:
    Σ_{i: P(i)≠∅} [logsumexp_{ℓ≠i}(h_iᵀh_ℓ/τ) − mean_{j∈P(i)} h_iᵀh_j/τ], P(i) = {j ≠ i: y_j = y_i}.
    Anchors without an in-batch positive contribute 0 (they still act as negatives). SupContrast's loss
    is this divided by the number of anchors and multiplied by τ/τ_base. ``anchors`` (bool, n) restricts
    which rows act as anchors (default: all)."""
    _check_shapes(features, y, "features")
    tau = real("tau", tau, 0.0, lo_open=True)
    if anchors is not None and (not isinstance(anchors, torch.Tensor) or anchors.shape != y.shape):
        raise ValueError(f"anchors must be a bool tensor of shape {tuple(y.shape)} (one flag per row)")
    n = features.shape[0]
    S = features @ features.T / tau
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    same = (y[:, None] == y[None, :]) & ~eye
    npos = same.sum(1)
    lse = torch.logsumexp(S.masked_fill(eye, float("-inf")), dim=1)
    pos_mean = (S * same).sum(1) / npos.clamp(min=1)
    active = npos > 0
    if anchors is not None:
        active = active & anchors
    return ((lse - pos_mean) * active).sum()


@dataclass(frozen=True)
class SupCon:
    """``supcon`` as a loss object: SupCon(tau)(features, y)."""

    tau: float = 1.0

    def __post_init__(self):
        real("tau", self.tau, 0.0, lo_open=True)

    def __call__(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return supcon(features, y, self.tau)
