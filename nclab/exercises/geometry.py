"""Exercises of notebooks 01–04 (SELI, CS-SVM, SCL + ReLU, prototypes): task, solution, reference and the
typical wrong variants each hint is keyed to."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nclab import metrics, scl
from nclab.cssvm import step_delta
from nclab.exercises.core import Spec
from nclab.frames import psd_sqrt, simplex_etf
from nclab.labels import centering, one_hot, sel_matrix
from nclab.losses import LogitAdjustedCE, supcon
from nclab.prototypes import fixed_classifier_ce
from nclab.seli import seli_geometry


def _labels(rng, k, n):
    return rng.permutation(np.concatenate([np.arange(k), rng.integers(0, k, n - k)]))


# ------------------------------------------------------------------ 01 SELI
def _sel_cases(rng):
    k = int(rng.integers(3, 7))
    return [(_labels(rng, k, int(rng.integers(k + 2, 14))), k)]


SEL = Spec(1, "sel_matrix", _sel_cases, lambda y, k: sel_matrix(y, k), [
    ("you returned the one-hot Y: centre it with P = I − 11ᵀ/k (every column of Ẑ sums to 0).",
     lambda y, k: one_hot(y, k)),
    ("you centred each class row over the examples (Y − row means); centre each column over the classes: "
     "Ẑ = P Y with P = I_k − 11ᵀ/k.", lambda y, k: one_hot(y, k) - one_hot(y, k).mean(1, keepdims=True)),
    ("P = I − 11ᵀ/k uses the number of classes k, not the number of examples n.",
     lambda y, k: one_hot(y, k) - 1.0 / len(y)),
    ("your Ẑ is transposed: it is k×n (classes × examples).", lambda y, k: sel_matrix(y, k).T)])


def _gram_cases(rng):
    k = int(rng.integers(4, 8))
    k_maj = int(rng.integers(1, k - 1))
    if k_maj == k - k_maj:
        k_maj = 1
    W = rng.normal(size=(k, k + 2)) * np.where(np.arange(k) < k_maj, rng.uniform(2, 4), 1.0)[:, None]
    return [(W @ W.T, np.arange(k) < k_maj)]


def _ratio(G, maj):
    return metrics.group_stats(G, maj)["sq_norm_ratio"]


RATIO = Spec(2, "sq_norm_ratio", _gram_cases, _ratio, [
    ("your ratio is the inverse — did you divide minority by majority? Majority over minority is > 1 under "
     "imbalance.", lambda G, m: 1 / _ratio(G, m)),
    ("you returned the ratio of norms ‖w‖; the task asks for squared norms — the diagonal G_cc = ‖w_c‖² "
     "already is one.", lambda G, m: np.sqrt(_ratio(G, m))),
    ("the diagonal of G already holds squared norms ‖w_c‖²: do not square it again.",
     lambda G, m: np.mean(np.diag(G)[m] ** 2) / np.mean(np.diag(G)[~m] ** 2)),
    ("you divided sums; average over each group (the groups have different numbers of classes).",
     lambda G, m: np.sum(np.diag(G)[m]) / np.sum(np.diag(G)[~m])),
    ("use the diagonal G_cc = ‖w_c‖², not whole rows of G.",
     lambda G, m: G.sum(1)[m].mean() / G.sum(1)[~m].mean())])


def _sizes_cases(rng):
    k = int(rng.integers(3, 7))
    return [(rng.integers(1, 40, k),)]


def _pnp(sizes):
    P = centering(len(sizes))
    return P @ np.diag(np.asarray(sizes, float)) @ P


SELI_W = Spec(3, "seli_classifier_gram", _sizes_cases, lambda s: seli_geometry(s).W_gram, [
    ("you forgot the square root: W Wᵀ = (P N P)^{1/2}.", _pnp),
    ("np.sqrt is elementwise; take the matrix square root (eigh: V diag(√λ) Vᵀ, or scipy.linalg.sqrtm).",
     lambda s: np.sqrt(_pnp(s))),
    ("you took the root of N before centring: the root is of the whole matrix P N P.",
     lambda s: centering(len(s)) @ np.diag(np.sqrt(np.asarray(s, float))) @ centering(len(s))),
    ("you forgot the centring P: SELI uses P N P, not N.", lambda s: np.diag(np.sqrt(np.asarray(s, float))))])

# ------------------------------------------------------------------ 02 CS-SVM


def _delta_cases(rng):
    k = int(rng.integers(4, 8))
    return [(k, float(rng.uniform(3, 50)), int(rng.integers(1, k // 2 + 1)), float(rng.uniform(0.2, 1.5)))]


def _mean1(v):
    return v / v.mean()


DELTA = Spec(1, "cdt_delta", _delta_cases, lambda k, R, km, g: step_delta(k, R, km, g), [
    ("your majority factor is R^(−γ): the task has δ_maj/δ_min = R^(+γ) with the minority factor 1.",
     lambda k, R, km, g: step_delta(k, R, km, -g)),
    ("majorities come first: k − k_min classes of factor R^γ, then the k_min minorities of factor 1.",
     lambda k, R, km, g: step_delta(k, R, km, g)[::-1]),
    ("there are k − k_min majority classes and k_min minority classes — you swapped the counts.",
     lambda k, R, km, g: np.array([R**g] * km + [1.0] * (k - km))),
    ("R^γ is a power, not a product: use R ** gamma.",
     lambda k, R, km, g: np.array([R * g] * (k - km) + [1.0] * km)),
    ("you normalised the factors to mean 1 (as make_loss does); here the minority factor is exactly 1.",
     lambda k, R, km, g: _mean1(step_delta(k, R, km, g)))])


def _la_cases(rng):
    k = int(rng.integers(3, 6))
    sizes = np.array([int(rng.integers(10, 60))] * (k - 1) + [int(rng.integers(1, 5))])
    n = int(rng.integers(8, 16))
    logits = torch.as_tensor(rng.normal(size=(n, k)) * 2)
    return [(logits, torch.as_tensor(rng.integers(0, k, n)), sizes, float(rng.uniform(0.5, 2.0)))]


def _la(logits, y, sizes, tau, sign=1.0, reduction="mean"):
    pi = np.asarray(sizes, float) / np.sum(sizes)
    nll = LogitAdjustedCE(iota=sign * tau * np.log(pi))(logits, y)
    return nll * len(y) if reduction == "sum" else nll


def _la_true_only(logits, y, sizes, tau):
    pi = torch.as_tensor(np.asarray(sizes, float) / np.sum(sizes))
    z = logits.clone()
    z[torch.arange(len(y)), y] += tau * torch.log(pi[y])
    return F.cross_entropy(z, y)


LA = Spec(2, "la_loss", _la_cases, _la, [
    ("you subtracted τ log π; the LA loss adds it inside the softmax (subtracting is the post-hoc "
     "correction applied at prediction time).", lambda z, y, s, t: _la(z, y, s, t, -1.0)),
    ("no offset at all: that is plain CE. Add ι_c = τ log π_c to every logit z_c.",
     lambda z, y, s, t: F.cross_entropy(z, y)),
    ("you forgot τ: the offsets are τ · log π_c.", lambda z, y, s, t: _la(z, y, s, 1.0)),
    ("average over the n examples, not the sum.", lambda z, y, s, t: _la(z, y, s, t, reduction="sum")),
    ("every logit z_c gets its own offset τ log π_c — you shifted only the true-class logit.", _la_true_only)])

# ------------------------------------------------------------------ 03 SCL + ReLU


def _scl_cases(rng):
    n, k = int(rng.integers(8, 14)), 3
    y = np.concatenate([[k], _labels(rng, k, n - 1)])  # class k has a single example: no positive
    H = rng.normal(size=(n, 5))
    return [(torch.as_tensor(H / np.linalg.norm(H, axis=1, keepdims=True)), torch.as_tensor(y),
             float(rng.uniform(0.3, 1.5)))]


def _scl_parts(h, y, tau, self_in=False):
    n = h.shape[0]
    S = h @ h.T / tau
    eye = torch.eye(n, dtype=torch.bool)
    pos = (y[:, None] == y[None, :]) & ~eye
    lse = torch.logsumexp(S if self_in else S.masked_fill(eye, float("-inf")), dim=1)
    return S, pos, lse, pos.sum(1)


def _scl_variant(kind):
    def f(h, y, tau):
        S, pos, lse, npos = _scl_parts(h, y, 1.0 if kind == "tau" else tau, self_in=kind == "self")
        pm = (S * pos).sum(1) if kind == "sum_pos" else (S * pos).sum(1) / npos.clamp(min=1)
        per = (lse - pm) * (npos > 0) if kind != "singletons" else lse - pm
        return per.sum() / (len(y) if kind == "mean" else 1)
    return f


SCL = Spec(1, "scl_loss", _scl_cases, supcon, [
    ("the denominator sums over ℓ ≠ i: leave the anchor itself out (mask the diagonal).", _scl_variant("self")),
    ("average the positives' similarities: divide by |P(i)|, the number of positives of anchor i.",
     _scl_variant("sum_pos")),
    ("sum over anchors, not the mean.", _scl_variant("mean")),
    ("an anchor without an in-batch positive contributes 0 (there is nothing to pull it towards).",
     _scl_variant("singletons")),
    ("divide the inner products by the temperature τ.", _scl_variant("tau"))])


def _of_cases(rng):
    k = int(rng.integers(3, 6))
    n = int(rng.integers(k + 3, 16))
    y = _labels(rng, k, n)
    return [(np.abs(rng.normal(size=(k + 2, n))) + np.eye(k + 2, k)[:, y] * 2, y)]


OF = Spec(2, "of_distance", _of_cases, lambda H, y: metrics.of_distance(H, y), [
    ("you centred the class means: the orthogonal frame is compared with the *uncentered* class-mean Gram "
     "(centring would hide the difference between an OF and an ETF).",
     lambda H, y: metrics.gram_distance(metrics.class_mean_gram(H, y, centered=True), np.eye(y.max() + 1))),
    ("you compared the centred Gram with the ETF: that distance cannot tell an OF from an ETF. Compare the "
     "uncentered class-mean Gram with I_k.", lambda H, y: metrics.centered_etf_distance(H, y)),
    ("normalize both Grams by their Frobenius norm before subtracting: ‖G/‖G‖ − I/‖I‖‖.",
     lambda H, y: np.linalg.norm(metrics.class_mean_gram(H, y) - np.eye(y.max() + 1))),
    ("use the k×k Gram of the class means, not the n×n Gram of all examples.",
     lambda H, y: metrics.gram_distance(H.T @ H, np.eye(len(y))))])


def _opt_cases(rng):
    k = int(rng.integers(3, 6))
    return [(np.concatenate([rng.integers(2, 20, k - 1), [1]]), float(rng.uniform(0.2, 1.5)))]


def _opt_variant(kind):
    def f(sizes, tau):
        s = np.asarray(sizes, float)
        n, keep = s.sum(), s >= (1 if kind == "singletons" else 2)
        s = s[keep]
        pos = s if kind == "self" else s - 1
        neg = np.exp(1 / tau) if kind == "sign" else np.exp(-1 / tau)
        return float(np.sum(s * np.log(pos + (n - s) * neg)))
    return f


SCL_OPT = Spec(3, "scl_optimal_value", _opt_cases, scl.optimal_value, [
    ("a class with a single example has no positive pair: leave classes with n_c < 2 out of the sum.",
     _opt_variant("singletons")),
    ("negatives are orthogonal in the OF (inner product 0 vs 1 for positives): they enter with e^{−1/τ}.",
     _opt_variant("sign")),
    ("an anchor has n_c − 1 positives (itself excluded), not n_c.", _opt_variant("self"))])

# ------------------------------------------------------------------ 04 prototypes


def _proto_cases(rng):
    k = int(rng.integers(3, 6))
    return [(rng.normal(size=(k, k + 3)) * rng.uniform(0.5, 3, (k, 1)),)]


def _unit_rows(V):
    return V / np.linalg.norm(V, axis=1, keepdims=True)


PGRAM = Spec(1, "prototype_gram", _proto_cases, lambda V: _unit_rows(V) @ _unit_rows(V).T, [
    ("normalize every prototype to unit length first: the Gram of unit prototypes has ones on its diagonal.",
     lambda V: V @ V.T),
    ("the prototypes are the rows: W Wᵀ (k×k), not Wᵀ W.", lambda V: _unit_rows(V).T @ _unit_rows(V)),
    ("normalize the rows (one prototype per row), not the columns.",
     lambda V: (V / np.linalg.norm(V, axis=0)) @ (V / np.linalg.norm(V, axis=0)).T)])


def _etf_cases(rng):
    k = int(rng.integers(3, 7))
    return [(k, k + int(rng.integers(0, 3)))]


ETF = Spec(2, "etf_prototypes", _etf_cases, lambda k, d: _pad(psd_sqrt(simplex_etf(k)), d), [
    ("the rows must be unit vectors: scale I − 11ᵀ/k by k/(k−1) (or normalize each row).",
     lambda k, d: _pad(psd_sqrt(centering(k)), d)),
    ("those are orthonormal prototypes (the orthogonal frame); the simplex ETF has cosines −1/(k−1).",
     lambda k, d: np.eye(k, d))], view=lambda W: W @ W.T)


def _pad(W, d):
    return np.pad(W, ((0, 0), (0, d - W.shape[1])))


def _fc_cases(rng):
    k, n, d = int(rng.integers(3, 6)), int(rng.integers(6, 12)), 6
    H = rng.normal(size=(n, d))
    W = _unit_rows(rng.normal(size=(k, d)))
    return [(torch.as_tensor(H / np.linalg.norm(H, axis=1, keepdims=True)), torch.as_tensor(rng.integers(0, k, n)),
             W, float(rng.uniform(0.2, 1.0)))]


def _fc(h, y, W, tau, scale=None, reduction="sum"):
    z = h @ torch.as_tensor(W).T
    return F.cross_entropy(z / tau if scale is None else z * scale, y, reduction=reduction)


FIXED_CE = Spec(3, "fixed_classifier_ce", _fc_cases, fixed_classifier_ce, [
    ("sum over the samples, not the mean (the limit of the SCL loss is a sum).",
     lambda h, y, W, t: _fc(h, y, W, t, reduction="mean")),
    ("you forgot the temperature: the logits are W h_i / τ.", lambda h, y, W, t: _fc(h, y, W, t, scale=1.0)),
    ("divide by τ, don't multiply.", lambda h, y, W, t: _fc(h, y, W, t, scale=t))])
