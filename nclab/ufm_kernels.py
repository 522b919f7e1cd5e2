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


# ---- the same B runs in numpy (CPU): stacked matmuls into preallocated buffers, in-place updates ----

class NumpyBatch:
    """State W (B×k×d), H (B×d×n) and GD steps of B runs with steps ``rate`` (B×1×1). ``grads`` returns the
    objectives loss_b + λ_b/2 (‖W_b‖² + ‖H_b‖²) and fills gW, gH with rate_b·∇ (the rate is folded into the
    example weights w, so ``step`` is just W −= gW, H −= gH). Logits live as k×B×n (long contiguous rows)."""

    def __init__(self, W, H, T, w, C, iota, lam, rate):
        B, k, n = T.shape
        self.W, self.H, self.w, self.lam = W, H, w, lam
        self.lam_flat = lam.reshape(-1)
        self.ridge = bool((self.lam_flat > 0).any())
        self.T = np.ascontiguousarray(T.transpose(1, 0, 2))
        self.C = None if C is None else np.ascontiguousarray(C.transpose(1, 0, 2))
        self.iota = None if iota is None else np.ascontiguousarray(iota.T)[:, :, None]
        self.Tw = self.T * w[None]
        # one-hot targets: Σ_c T_ci A_ci is the gathered logit A[y_i, b, i] (flat index into the k×B×n buffer)
        hot = np.all(self.T.sum(0)[w > 0] == 1) and np.all((self.T == 0) | (self.T == 1))
        cls = self.T.argmax(0)
        self.pick = (cls * B * n + np.arange(B * n).reshape(B, n)).ravel() if hot else None
        self.A, self.E = np.empty((k, B, n)), np.empty((k, B, n))
        self.gW, self.gH = np.empty_like(W), np.empty_like(H)
        self.rate = rate.reshape(-1).copy()
        self.freeze([])

    def freeze(self, runs) -> None:
        """Set the step of ``runs`` to 0 (converged runs stay where they are, from this step on)."""
        runs = list(runs)
        self.rate[runs], self.gW[runs], self.gH[runs] = 0.0, 0.0, 0.0
        self.wr = self.w * self.rate[:, None]
        self.Twr = self.T * self.wr[None]
        self.lamr = self.lam * self.rate[:, None, None]

    def _loss(self):
        A, E = self.A, self.E
        np.matmul(self.W, self.H, out=A.transpose(1, 0, 2))
        if self.C is not None:
            A *= self.C
        if self.iota is not None:
            A += self.iota
        np.exp(A, out=E)
        s = E.sum(0)
        if self.pick is not None:
            lse = np.log(s)
            lse -= A.take(self.pick).reshape(lse.shape)
            value = np.einsum("bn,bn->b", self.w, lse)
        else:
            value = np.einsum("bn,bn->b", self.w, np.log(s)) - np.einsum("kbn,kbn->b", self.Tw, A)
        if not np.isfinite(value).all():
            shift = A.max(0)
            np.exp(A - shift[None], out=E)
            s = E.sum(0)
            value = np.einsum("bn,bn->b", self.w, np.log(s) + shift) - np.einsum("kbn,kbn->b", self.Tw, A)
        if self.ridge:
            value += self.lam_flat / 2 * (np.einsum("bij,bij->b", self.W, self.W)
                                          + np.einsum("bij,bij->b", self.H, self.H))
        return value, s

    def objective(self) -> np.ndarray:
        """Per-run objectives (B,) at the current W, H."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return self._loss()[0]

    def grads(self) -> np.ndarray:
        """Objectives (B,); gW, gH = rate·∇ of each run's objective (∇_Z = C ⊙ (softmax(A) − T) diag(w)).
        Call inside ``np.errstate(over="ignore", divide="ignore", invalid="ignore")``."""
        value, s = self._loss()
        E = self.E
        E *= (self.wr / s)[None]
        E -= self.Twr
        if self.C is not None:
            E *= self.C
        Eb = E.transpose(1, 0, 2)
        np.matmul(Eb, self.H.transpose(0, 2, 1), out=self.gW)
        np.matmul(self.W.transpose(0, 2, 1), Eb, out=self.gH)
        if self.ridge:
            self.gW += self.lamr * self.W
            self.gH += self.lamr * self.H
        return value

    def grad_norms(self) -> np.ndarray:
        """‖(∇_W, ∇_H)‖_F per run (NaN for frozen runs)."""
        sq = np.einsum("bij,bij->b", self.gW, self.gW) + np.einsum("bij,bij->b", self.gH, self.gH)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(sq) / self.rate

    def step(self) -> None:
        """W −= gW, H −= gH in place."""
        self.W -= self.gW
        self.H -= self.gH

    def arrays(self):
        return self.W, self.H


class ChunkedBatch:
    """``NumpyBatch`` over blocks of at most ``size`` runs (views of one W, H), so that each block's buffers stay
    in cache; same interface, same numbers."""

    def __init__(self, W, H, T, w, C, iota, lam, rate, size: int = 64):
        self.W, self.H = W, H
        cut = [(lo, min(lo + size, W.shape[0])) for lo in range(0, W.shape[0], size)]
        self.parts = [(lo, hi, NumpyBatch(*(None if a is None else a[lo:hi] for a in (W, H, T, w, C, iota, lam, rate))))
                      for lo, hi in cut]

    def objective(self) -> np.ndarray:
        return np.concatenate([p.objective() for _, _, p in self.parts])

    def grads(self) -> np.ndarray:
        return np.concatenate([p.grads() for _, _, p in self.parts])

    def grad_norms(self) -> np.ndarray:
        return np.concatenate([p.grad_norms() for _, _, p in self.parts])

    def freeze(self, runs) -> None:
        for lo, hi, p in self.parts:
            p.freeze([b - lo for b in runs if lo <= b < hi])

    def step(self) -> None:
        for _, _, p in self.parts:
            p.step()

    def arrays(self):
        return self.W, self.H
