"""Exercises of notebooks 05–07 (NTP subspace collapse, DAREx, MCL): reference and typical wrong variants."""

from __future__ import annotations

import numpy as np

from nclab import mcl, ntp
from nclab.darex import q_star
from nclab.exercises.core import Spec

# ------------------------------------------------------------------ 05 NTP


def _sparse_P(rng, V, m):
    S = rng.random((V, m)) < 0.4
    S[rng.integers(0, V, m), np.arange(m)] = True
    S[:, 0] = False
    S[:2, 0] = True  # one support of size 2
    S[:, 1] = False
    S[3, 1] = True  # one one-hot support
    P = np.where(S, rng.uniform(0.1, 1.0, (V, m)), 0.0)
    return P / P.sum(0)


def _ntp_cases(rng):
    return [(_sparse_P(rng, int(rng.integers(5, 9)), int(rng.integers(4, 8))),)]


def _logp(P):
    with np.errstate(divide="ignore"):
        return np.where(P > 0, np.log(np.where(P > 0, P, 1.0)), 0.0)


IN_SUPPORT = Spec(1, "in_support_logits", _ntp_cases, lambda P: ntp.in_support_logits(ntp.NTPData(P)), [
    ("centre each column on its support: subtract the mean of log p_j over S_j (the logits are defined up to "
     "a constant per context).", _logp),
    ("the mean runs over the support S_j only, not over all V words.",
     lambda P: np.where(P > 0, _logp(P) - _logp(P).mean(0), 0.0)),
    ("use the natural log (softmax exponentiates with e); log2 scales every entry by 1/ln 2.",
     lambda P: ntp.in_support_logits(ntp.NTPData(P)) / np.log(2)),
    ("off the support the in-support part is 0 (F is zero there), not centred too.",
     lambda P: _logp(P) - (_logp(P) * (P > 0)).sum(0) / (P > 0).sum(0)),
    ("your result is transposed: L is V×m (words × contexts), like P.",
     lambda P: ntp.in_support_logits(ntp.NTPData(P)).T)])


def _ent_cases(rng):
    P = _sparse_P(rng, int(rng.integers(5, 9)), int(rng.integers(4, 8)))
    pi = rng.uniform(0.2, 1.0, P.shape[1])
    return [(P, pi / pi.sum())]


def _ent(P, pi, log=np.log, weights=True):
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(P > 0, P * log(np.where(P > 0, P, 1.0)), 0.0).sum(0)
    return float(pi @ h) if weights else float(h.mean())


ENTROPY = Spec(2, "entropy_lower_bound", _ent_cases, lambda P, pi: ntp.NTPData(P, pi).entropy(), [
    ("use the natural log, as the CE does (bits and nats differ by a factor ln 2).",
     lambda P, pi: _ent(P, pi, np.log2)),
    ("weight each context's entropy by its frequency π_j instead of averaging the contexts.",
     lambda P, pi: _ent(P, pi, weights=False)),
    ("entropy is −Σ p log p ≥ 0: you lost the minus sign.", lambda P, pi: -_ent(P, pi))])


def _loss_cases(rng):
    P, pi = _ent_cases(rng)[0]
    return [(rng.normal(size=P.shape) * 2, P, pi)]


def _ntp_loss(L, P, pi, axis=0, log=np.log, weights=True):
    Z = L - L.max(axis, keepdims=True)
    logsm = Z - np.log(np.exp(Z).sum(axis, keepdims=True))
    logsm = logsm if log is np.log else logsm / np.log(2)
    per = -(P * logsm).sum(0)
    return float(pi @ per) if weights else float(per.mean())


NTP_LOSS = Spec(3, "ntp_loss", _loss_cases, lambda L, P, pi: ntp.ntp_loss(L, ntp.NTPData(P, pi)), [
    ("softmax over the vocabulary: column j holds context j's V logits, so normalize along axis 0.",
     lambda L, P, pi: _ntp_loss(L, P, pi, axis=1)),
    ("weight each context by π_j instead of averaging the contexts.",
     lambda L, P, pi: _ntp_loss(L, P, pi, weights=False)),
    ("use the natural log, as cross-entropy does.", lambda L, P, pi: _ntp_loss(L, P, pi, log=np.log2))])

# ------------------------------------------------------------------ 06 DAREx


def _dare_cases(rng):
    shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    p = float(rng.uniform(0.3, 0.95))
    return [(rng.normal(size=shape) * 1e-2, rng.random(shape) >= p, p)]


DARE = Spec(1, "dare_rescale", _dare_cases, lambda D, keep, p: np.where(keep, D / (1 - p), 0.0), [
    ("you forgot the 1/(1−p): without it the pruned delta shrinks the output change on average by (1−p).",
     lambda D, keep, p: np.where(keep, D, 0.0)),
    ("rescale by 1/(1−p) (the keep probability), not 1/p.", lambda D, keep, p: np.where(keep, D / p, 0.0)),
    ("divide the kept entries by (1−p), don't multiply.", lambda D, keep, p: np.where(keep, D * (1 - p), 0.0)),
    ("you kept the dropped entries: keep[i, j] is True where the entry survives.",
     lambda D, keep, p: np.where(~keep, D / (1 - p), 0.0))])


def _q_cases(rng):
    out, inp, b = int(rng.integers(3, 8)), int(rng.integers(4, 10)), int(rng.integers(2, 6))
    D, X = rng.normal(size=(out, inp)) + rng.normal(), rng.normal(size=(b, inp)) + 1.0
    return [(D, X, float(rng.uniform(0.5, 0.99)))]


def _AB(D, X):
    return float(np.sum((X @ D.T) ** 2)), float(np.sum((X**2) @ (D.T**2)))


DAREX_Q = Spec(2, "darex_q", _q_cases, q_star, [
    ("that is DARE's q = 1 − p; DAREx-q adds p·B/A, which corrects for the variance the drop adds.",
     lambda D, X, p: 1 - p),
    ("B/A, not A/B: A = Σ_i (Σ_j Δ_ij x_j)² (squared outputs), B = Σ_ij Δ_ij² x_j².",
     lambda D, X, p: (1 - p) + p * _AB(D, X)[0] / _AB(D, X)[1]),
    ("q* = (1 − p) + p·B/A: you left out the (1 − p) term.", lambda D, X, p: p * _AB(D, X)[1] / _AB(D, X)[0]),
    ("in B square both Δ_ij and x_j: B = Σ_ij Δ_ij² x_j².",
     lambda D, X, p: (1 - p) + p * float(np.sum(np.abs(X) @ (D.T**2))) / _AB(D, X)[0])])

# ------------------------------------------------------------------ 07 MCL


def _dist_rows(rng, L, V, zeros=True):
    P = rng.dirichlet(np.full(V, 0.7), L)
    if zeros:
        P[rng.random(P.shape) < 0.2] = 0.0
        P[np.arange(L), rng.integers(0, V, L)] += 0.1
        P /= P.sum(1, keepdims=True)
    return P


def _jsd_cases(rng):
    L, V = int(rng.integers(2, 6)), int(rng.integers(3, 8))
    return [(_dist_rows(rng, L, V), _dist_rows(rng, L, V))]


def _kl2(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * (np.log2(np.where(a > 0, a, 1.0)) - np.log2(np.where(b > 0, b, 1.0))), 0).sum(-1)


JSD = Spec(1, "jsd", _jsd_cases, lambda p, q: mcl.divergence(p, q, "jsd"), [
    ("use base-2 logs: JSD in bits lies in [0, 1]; natural logs give ln 2 times it.",
     lambda p, q: mcl.divergence(p, q, "jsd") * np.log(2)),
    ("that is KL(p‖q); the JSD compares p and q with their mixture m = (p + q)/2: ½KL(p‖m) + ½KL(q‖m).",
     lambda p, q: _kl2(p, q)),
    ("the JSD is the *average* ½KL(p‖m) + ½KL(q‖m): you forgot the halves.",
     lambda p, q: 2 * mcl.divergence(p, q, "jsd"))])


def _mcl_cases(rng):
    cases = []
    for _ in range(6):
        L, V = int(rng.integers(3, 7)), int(rng.integers(4, 8))
        lengths = np.cumsum(rng.integers(1, 5, L)).tolist()
        target = int(rng.integers(0, V))
        P = _dist_rows(rng, L, V, zeros=False)
        for i in range(L):
            kind = rng.choice(["target", "close", "other", "noise"])
            if kind != "noise":
                tok = target if kind != "other" else (target + 1) % V
                P[i] = rng.dirichlet(np.ones(V)) * (0.05 if kind == "close" else 0.2)
                P[i, tok] += 1 - P[i].sum()
                if kind == "close":  # top1 − top2 below δ
                    P[i, (tok + 1) % V] += P[i, tok] - 0.1
                    P[i] /= P[i].sum()
        if rng.random() < 0.7:
            P[-1] = np.full(V, 0.02)
            P[-1, target] = 1 - 0.02 * (V - 1)
        cases.append((P, lengths, target, 0.2))
    return cases


def _mcl_variant(kind):
    def f(P, lengths, target, delta):
        top2 = np.sort(P, axis=1)[:, -2:]
        ok = P.argmax(1) == target
        if kind != "margin":
            ok = ok & (top2[:, 1] - top2[:, 0] >= delta)
        if kind != "full" and not ok[-1]:
            return None
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return None
        i = idx[-1] if kind == "last" else idx[0]
        return int(i) if kind == "index" else lengths[i]
    return f


MCL = Spec(2, "mcl_from_probs", _mcl_cases, mcl.mcl_from_probs, [
    ("return the context *length* lengths[i], not the row index i.", _mcl_variant("index")),
    ("a length qualifies only if the top-1 is the target with top1 − top2 ≥ δ: you ignored the margin.",
     _mcl_variant("margin")),
    ("if the full context (last row) itself is not confident and correct, the MCL is undefined: return None.",
     _mcl_variant("full")),
    ("the MCL is the *smallest* qualifying length, not the largest.", _mcl_variant("last"))])
