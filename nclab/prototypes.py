"""Prototypes in SCL (Gill, Vakilian, Thrampoulidis, ICASSP 2024) — loss *reconstructed* from the paper:
n_w copies of each fixed unit prototype w_c (label c, no gradient) are appended to every batch; only real
samples are anchors by default. As n_w → ∞, L_B − |B| log n_w → Σ_i CE(W h_i/τ; y_i): CE with the
prototypes as a fixed classifier on normalized embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nclab._checks import array, integer, real, tensor
from nclab._threads import configure_threads
from nclab.frames import orthogonal_frame, simplex_etf

configure_threads()  # once per process: torch threads = the CPUs available (nclab._threads)


def realize_gram(G, d: int | None = None) -> np.ndarray:
    """Unit vectors (k×d rows) with Gram G: G must be symmetric PSD with unit diagonal, d ≥ k."""
    G = array("G", G, ndim=2, min_size=0)
    if G.shape[0] != G.shape[1] or G.shape[0] < 2:
        raise ValueError(f"G must be a square k×k Gram matrix with k >= 2, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError("G has NaN or infinite entries")
    k = G.shape[0]
    d = k if d is None else integer("d", d, k, 10**6)
    if not np.allclose(G, G.T, atol=1e-10):
        raise ValueError("G must be symmetric")
    if not np.allclose(np.diag(G), 1.0, atol=1e-8):
        diag = np.diag(G).round(6).tolist()
        raise ValueError(f"G must have unit diagonal (unit-norm prototypes), got diagonal {diag}")
    vals, vecs = np.linalg.eigh((G + G.T) / 2)
    if vals.min() < -1e-8:
        raise ValueError(f"G is not positive semidefinite: smallest eigenvalue {vals.min():.3g} < 0")
    V = vecs * np.sqrt(np.clip(vals, 0, None))
    W = np.zeros((k, d))
    W[:, :k] = V
    return W / np.linalg.norm(W, axis=1, keepdims=True)


PRESETS = {"etf": simplex_etf, "of": orthogonal_frame}


def prototype_set(kind: str, k: int, d: int | None = None, gram=None) -> np.ndarray:
    """Prototype rows (k×d): "etf" (simplex ETF), "of" (orthonormal), "gram" (the given Gram)."""
    k = integer("k", k, 2, 10**6)
    if kind == "gram":
        if gram is None:
            raise ValueError("kind='gram' needs gram=<k×k matrix>")
        gram = array("gram", gram, ndim=2)
        if gram.shape[0] != k:
            raise ValueError(f"gram has {gram.shape[0]} rows but k={k}")
        try:
            return realize_gram(gram, d)
        except ValueError as err:
            raise ValueError(f"gram: {err}") from None
    if gram is not None:
        raise ValueError(f"gram is used only with kind='gram' (got kind={kind!r}): drop gram or set kind='gram'")
    if kind not in PRESETS:
        raise ValueError(f"kind={kind!r} is unknown: use 'etf', 'of' or 'gram'")
    return realize_gram(PRESETS[kind](k), d)


@dataclass(frozen=True)
class ProtoSupCon:
    """SupCon on [batch; n_w copies of every prototype] (prototypes fixed). Per real anchor i:
    log(Σ_{ℓ∈B∖i} e^{s_iℓ} + n_w Σ_c e^{h_iᵀw_c/τ}) − (Σ_{j∈P(i)} s_ij + n_w h_iᵀw_{y_i}/τ)/(|P(i)| + n_w);
    with ``prototype_anchors`` the n_w copies of each w_c are anchors too. n_w = 0 is plain SupCon."""

    prototypes: np.ndarray
    n_w: int
    tau: float = 1.0
    prototype_anchors: bool = False

    def __post_init__(self):
        integer("n_w", self.n_w, 0)
        real("tau", self.tau, 0.0, lo_open=True)
        P = array("prototypes", self.prototypes, ndim=2)
        if not np.allclose(np.linalg.norm(P, axis=1), 1.0, atol=1e-8):
            raise ValueError("prototypes must be a k×d array of unit-norm rows")

    def __call__(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from nclab.losses import supcon

        if self.n_w == 0:
            return supcon(features, y, self.tau)
        Wt = torch.as_tensor(np.asarray(self.prototypes), dtype=features.dtype, device=features.device)
        if Wt.shape[1] != features.shape[1]:
            raise ValueError(f"prototypes live in d={Wt.shape[1]} but features have d={features.shape[1]}")
        t, nw, n = self.tau, float(self.n_w), features.shape[0]
        S = features @ features.T / t
        A = features @ Wt.T / t  # n×k
        eye = torch.eye(n, dtype=torch.bool, device=features.device)
        same = (y[:, None] == y[None, :]) & ~eye
        npos = same.sum(1).to(features.dtype)
        log_den = torch.logsumexp(torch.cat([S.masked_fill(eye, float("-inf")), A + np.log(nw)], dim=1), dim=1)
        num = ((S * same).sum(1) + nw * A.gather(1, y[:, None]).squeeze(1)) / (npos + nw)
        total = (log_den - num).sum()
        if self.prototype_anchors:
            k = Wt.shape[0]
            Pw = Wt @ Wt.T / t  # k×k, diagonal = 1/τ
            onehot = torch.nn.functional.one_hot(y, k).to(features.dtype)  # n×k
            cnt = onehot.sum(0)
            other = Pw.masked_fill(torch.eye(k, dtype=torch.bool, device=features.device), float("-inf"))
            terms = [A.T, (Pw.diagonal() + np.log(nw - 1))[:, None] if nw > 1 else None, other + np.log(nw)]
            log_den_w = torch.logsumexp(torch.cat([z for z in terms if z is not None], dim=1), dim=1)
            num_w = ((A * onehot).sum(0) + (nw - 1) / t) / (cnt + nw - 1).clamp(min=1)
            active = (cnt + nw - 1) > 0
            total = total + nw * ((log_den_w - num_w) * active).sum()
        return total


def fixed_classifier_ce(features: torch.Tensor, y: torch.Tensor, prototypes, tau: float) -> torch.Tensor:
    """The n_w → ∞ limit: Σ_i CE(W h_i/τ; y_i) with W the prototype rows (sum over samples)."""
    tensor("features", features, 2)
    tensor("y", y, 1, labels=True)
    W = _prototypes(prototypes)
    if W.shape[1] != features.shape[1] or y.shape[0] != features.shape[0]:
        raise ValueError(f"features must be n×d with d={W.shape[1]} (the prototypes' dimension) and y of length n: "
                         f"got features {tuple(features.shape)}, y {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= W.shape[0]):
        raise ValueError(f"y must hold labels 0..{W.shape[0] - 1} (one per prototype)")
    Wt = torch.as_tensor(W, dtype=features.dtype, device=features.device)
    tau = real("tau", tau, 0.0, lo_open=True)
    return torch.nn.functional.cross_entropy(features @ Wt.T / tau, y, reduction="sum")


def ce_limit_embeddings(prototypes, tau: float, nonneg: bool = False, iters: int = 3000) -> np.ndarray:
    """Per-class optimum of the limit, argmin_{‖h‖=1 (, h≥0)} CE(W h/τ; c), by projected gradient with
    backtracking on each class (k×d rows). The limit decouples over samples: imbalance plays no role."""
    from nclab.ufm import project_sphere

    W = torch.as_tensor(_prototypes(prototypes))
    k = W.shape[0]
    tau = real("tau", tau, 0.0, lo_open=True)
    y = torch.arange(k)
    H = project_sphere(W.clone() + 1e-3, nonneg)
    step = 1.0
    for _ in range(integer("iters", iters, 1)):
        Hg = H.clone().requires_grad_(True)
        f = torch.nn.functional.cross_entropy(Hg @ W.T / tau, y, reduction="sum")
        (g,) = torch.autograd.grad(f, Hg)
        s = 2 * step
        while s > 1e-14:
            cand = project_sphere(H - s * g, nonneg)
            diff = cand - H
            if float(torch.nn.functional.cross_entropy(cand @ W.T / tau, y, reduction="sum")) <= \
                    float(f.detach()) + float((g * diff).sum()) + float(diff.square().sum()) / (2 * s):
                break
            s /= 2
        step = s
        if float(diff.abs().max()) < 1e-13:
            H = cand
            break
        H = cand
    return H.numpy()


def _prototypes(prototypes) -> np.ndarray:
    """Prototype rows (k×d, k >= 2, finite) as a float array; errors name ``prototypes``."""
    W = array("prototypes", prototypes, ndim=2)
    if W.shape[0] < 2:
        raise ValueError(f"prototypes must be k×d with k >= 2 rows, got shape {W.shape}")
    return W
