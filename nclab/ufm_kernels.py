"""Hand-written gradients of the UFM objective for the cross-entropy family (no autograd).

With logits Z = W H (k×n) and adjusted logits A = C ⊙ Z + ι 1ᵀ (C_ci = Δ_c a_i), the loss
Σ_i w_i [logsumexp(A_:i) − Σ_c T_ci A_ci] (T: one-hot or soft targets, columns summing to 1) has
∇_Z = C ⊙ (softmax(A) − T) diag(w), so ∇_W = ∇_Z Hᵀ + λW and ∇_H = Wᵀ ∇_Z + λH.
``family`` recognizes "ce", ``losses.cross_entropy`` and ``LogitAdjustedCE`` (ω, Δ, ι, δ); soft labels use T = P, w = π.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nclab.losses import LogitAdjustedCE, cross_entropy

__all__ = []  # internal kernels of nclab.ufm / nclab.ufm_batched, which validate every input


@dataclass
class Family:
    """Per-example description of a CE-family loss: targets T (k×n), example weights ``omega`` (n; the
    loss weight is omega_i/|B| for hard labels, omega_i = π_i for soft ones), row factor C (k×n, None = 1),
    offsets ``iota`` (k, None = 0); ``mean``: divide by the batch size."""

    T: np.ndarray
    omega: np.ndarray
    C: np.ndarray | None
    iota: np.ndarray | None
    mean: bool


def family(loss, y: np.ndarray, k: int) -> Family | None:
    """The ``Family`` of a recognized hard-label loss, or None (then the trainer falls back to autograd)."""
    n = y.size
    T = np.zeros((k, n))
    T[y, np.arange(n)] = 1.0
    if loss == "ce" or loss is cross_entropy:
        return Family(T, np.ones(n), None, None, True)
    if isinstance(loss, LogitAdjustedCE):
        p = loss.arrays(k)
        plain = np.all(p["Delta"] == 1) and np.all(p["delta"] == 1)
        C = None if plain else p["Delta"][:, None] * p["delta"][y][None, :]
        iota = None if np.all(p["iota"] == 0) else p["iota"].copy()
        return Family(T, p["omega"][y].copy(), C, iota, True)
    return None


def batch_order(step: int, bs: int, n: int, order, perm_gen):
    """Index of the mini-batch of ``step`` (a fresh permutation each epoch) and the current order."""
    pos = ((step - 1) * bs) % n
    if pos + bs > n or step == 1:
        order = torch.randperm(n, generator=perm_gen)
        pos = 0
    return order[pos:pos + bs], order


def soft_family(P: np.ndarray, pi: np.ndarray) -> Family:
    """Soft labels: Σ_i π_i Σ_z P_zi (−log softmax(z_i)_z)."""
    return Family(np.asarray(P, float), np.asarray(pi, float), None, None, False)


def loss_and_grad(W: np.ndarray, H: np.ndarray, T, w, C, iota, Tw=None):
    """Loss value and ∇_Z (k×n) for W (k×d), H (d×n), weights w (n,) (``Tw`` = T·w if precomputed).
    Plain exp first; the max-shifted form only when that over/underflows (same value up to rounding).
    Call inside ``np.errstate(over="ignore", divide="ignore", invalid="ignore")``."""
    Z = W @ H
    A = Z if C is None else C * Z
    if iota is not None:
        A = A + iota[:, None]
    if Tw is None:
        Tw = T * w
    E = np.exp(A)
    s = E.sum(0)
    value = float(w @ np.log(s)) - float(np.vdot(Tw, A))
    if not math.isfinite(value):
        shift = A.max(0)
        E = np.exp(A - shift)
        s = E.sum(0)
        value = float(w @ (np.log(s) + shift)) - float(np.vdot(Tw, A))
    E *= w / s
    E -= Tw
    if C is not None:
        E *= C
    return value, E


# ---- batched torch kernel: B runs, shapes W (B,k,d), H (B,d,n), T/C (B,k,n), w (B,n), iota (B,k) ----

def batched_loss_and_grad(W, H, T, w, C, iota):
    """Per-run loss values (B,) and ∇_Z (B,k,n); plain exp unless it over/underflows somewhere."""
    A = torch.bmm(W, H)
    if C is not None:
        A = A * C
    if iota is not None:
        A = A + iota[:, :, None]
    E = torch.exp(A)
    s = E.sum(1)
    lse = torch.log(s)
    value = ((lse - (T * A).sum(1)) * w).sum(1)
    if not bool(torch.isfinite(value).all()):
        lse = torch.logsumexp(A, dim=1)
        value = ((lse - (T * A).sum(1)) * w).sum(1)
        E, s = torch.exp(A - lse[:, None, :]), 1.0
    G = (E / s[:, None, :] if torch.is_tensor(s) else E) - T
    G *= w[:, None, :]
    if C is not None:
        G *= C
    return value, G
