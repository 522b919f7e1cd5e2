"""Minimum context length (Vakilian et al., 2025): MCL, the label-free DaMCL, a long/short detector and
long-context-boosted decoding, for any model with ``next_token_probs(tokens B×T, mask B×T) → B×V``
(probabilities of the token after position T−1 given the unmasked tokens; masking keeps positions).

MCL(s | t) = min ℓ in a schedule with Top1(p(·|s[−ℓ:])) = t and top1 − top2 ≥ δ, counted only where the
full context is confident and correct. DaMCL (reconstructed: divergence and thresholds are parameters):
min ℓ with D(p(·|s[−ℓ:]), p(·|s)) ≤ threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nclab._checks import array, integer, real
from nclab.mcl_models import (  # noqa: F401  (the models stay importable from nclab.mcl)
    HFCausalLM,
    OracleModel,
    TinyTransformer,
    train_transformer,
    truncated_probs,
)

__all__ = [
    "truncation_batch", "check_schedule", "divergence", "MCLResult", "position_probs", "mcl_from_probs",
    "damcl_from_probs", "score_from_probs", "analyze_position", "analyze_position_naive", "analyze",
    "boosted_probs", "decode_accuracy", "detector_threshold", "probability_cache"
]


# ---------------------------------------------------------------- truncation and MCL
def truncation_batch(prefix, schedule) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One batch holding every truncation of ``prefix`` (length t) to its last ℓ tokens, ℓ in the schedule
    (values > t dropped) plus the full context last: tokens (L×t), masks (L×t) hiding positions < t−ℓ."""
    prefix = np.asarray(prefix)
    t = prefix.size
    lengths = check_schedule(schedule, t)
    lengths = [ell for ell in lengths if ell < t] + [t]
    mask = np.arange(t)[None, :] >= (t - np.array(lengths))[:, None]
    return np.repeat(prefix[None], len(lengths), 0), mask, lengths


def check_schedule(schedule, t: int | None = None) -> list[int]:
    """Validate a context-length schedule: non-empty, positive, increasing; its first entry must fit in t."""
    t = None if t is None else integer("t", t, 1)
    try:
        sched = list(schedule)
    except TypeError:
        raise ValueError(f"schedule={schedule!r} must be a list of context lengths") from None
    if any(isinstance(s, bool) or not float(s).is_integer() for s in sched):
        raise ValueError(f"schedule={sched} must hold whole numbers of tokens")
    sched = [int(s) for s in sched]
    if not sched:
        raise ValueError("schedule is empty: give at least one context length")
    if any(s < 1 for s in sched) or any(b <= a for a, b in zip(sched, sched[1:], strict=False)):
        raise ValueError(f"schedule={sched} must be positive and strictly increasing")
    if t is not None and sched[0] > t:
        raise ValueError(f"schedule starts at {sched[0]} but t={t}: the sequence has only {t} tokens of context")
    return sched


def _check_probs(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must hold probabilities: it has NaN or inf entries")
    if np.any(a < 0):
        raise ValueError(f"{name} must hold probabilities: it has a negative entry ({a.min():g}); allowed >= 0")
    sums = a.sum(-1)
    if np.any(np.abs(sums - 1) > 1e-3):
        raise ValueError(f"{name} must hold probability distributions (rows summing to 1), got a row summing to "
                         f"{sums.flat[np.argmax(np.abs(sums - 1))]:.4g}")


def _probs(name: str, a, ndim: int | None = None) -> np.ndarray:
    """``a`` as a float array of distributions along its last axis, or ValueError naming ``name``."""
    a = array(name, a, finite=False)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of distributions, got shape {a.shape}")
    _check_probs(name, a)
    return a


def _kind(name: str, kind) -> str:
    if kind not in ("jsd", "tv", "kl"):
        raise ValueError(f"{name}={kind!r} is unknown: use 'jsd', 'tv' or 'kl'")
    return kind


def divergence(p, q, kind: str = "jsd") -> np.ndarray:
    """Row-wise divergence between distributions: "jsd" (base 2, in [0, 1]), "tv", or "kl" (KL(p‖q))."""
    kind = _kind("kind", kind)
    p, q = np.atleast_2d(_probs("p", p)), np.atleast_2d(_probs("q", q))
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must be distributions over the same vocabulary: {p.shape[-1]} vs {q.shape[-1]}")
    eps = 1e-300
    if kind == "tv":
        return 0.5 * np.abs(p - q).sum(-1)
    if kind == "kl":
        return np.where(p > 0, p * (np.log(p + eps) - np.log(q + eps)), 0.0).sum(-1)
    m = (p + q) / 2  # "jsd"
    kl = lambda a, b: np.where(a > 0, a * (np.log2(a + eps) - np.log2(b + eps)), 0.0).sum(-1)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@dataclass
class MCLResult:
    """Per-position results: MCL (None if the full context is not confident and correct), DaMCL, the
    short-vs-full divergence (detector score) and forward passes used."""

    mcl: int | None
    damcl: int
    score: float
    forwards: int


def position_probs(model, prefix, schedule) -> tuple[np.ndarray, list[int]]:
    """Next-token distributions of every truncation of ``prefix`` (schedule lengths, then the full
    context last) from one batched forward pass: (L×V, lengths)."""
    tokens, mask, lengths = truncation_batch(prefix, list(schedule) or [len(prefix)])
    return np.asarray(model.next_token_probs(tokens, mask)), lengths


def _qualifies(P, target, delta: float) -> np.ndarray:
    """Rows of P (…×V) whose top-1 is ``target`` (broadcast over the leading axes) with top1 − top2 ≥ δ."""
    top2 = np.sort(P, axis=-1)[..., -2:]
    return (P.argmax(-1) == target) & (top2[..., 1] - top2[..., 0] >= delta)


def mcl_from_probs(P, lengths, target: int, delta: float = 0.2) -> int | None:
    """Smallest length whose top-1 is ``target`` with top1 − top2 ≥ δ; None unless the full context
    (last row) itself qualifies."""
    delta = real("delta", delta, 0.0, 1.0)
    P = _probs("P", P, 2)
    if P.shape[0] != len(lengths) or P.shape[1] < 2:
        raise ValueError(f"P has shape {P.shape}: expected one row per length ({len(lengths)}) × V >= 2 words")
    target = integer("target", target, 0, P.shape[1] - 1)
    ok = _qualifies(P, target, delta)
    return next((ell for ell, good in zip(lengths, ok, strict=True) if good), None) if ok[-1] else None


def damcl_from_probs(P, lengths, div: str = "jsd", threshold: float = 0.1) -> int:
    """Smallest length whose distribution is within ``threshold`` of the full-context one (label-free)."""
    threshold = real("threshold", threshold, 0.0)
    div = _kind("div", div)
    P = _probs("P", P, 2)
    if P.shape[0] != len(lengths):
        raise ValueError(f"P has shape {P.shape}: expected one row per length ({len(lengths)}) × V")
    d = divergence(P, P[-1][None], div)
    return next(ell for ell, di in zip(lengths, d, strict=True) if di <= threshold)


def score_from_probs(P, lengths, short: int, div: str = "jsd") -> float:
    """Detector score: divergence between the longest truncation ≤ ``short`` and the full context."""
    short = integer("short", short, 1)
    div = _kind("div", div)
    P = _probs("P", P, 2)
    if P.shape[0] != len(lengths):
        raise ValueError(f"P has shape {P.shape}: expected one row per length ({len(lengths)}) × V")
    idx = max((i for i, ell in enumerate(lengths) if ell <= short), default=0)
    return float(divergence(P[idx], P[-1], div)[0])


def analyze_position(model, prefix, target: int, schedule, delta: float = 0.2, div: str = "jsd",
                     threshold: float = 0.1, short: int | None = None) -> MCLResult:
    """MCL, DaMCL and detector score of one position from a single batched forward pass."""
    P, lengths = position_probs(model, prefix, schedule)
    return MCLResult(mcl_from_probs(P, lengths, target, delta), damcl_from_probs(P, lengths, div, threshold),
                     score_from_probs(P, lengths, lengths[0] if short is None else short, div), 1)


def analyze_position_naive(model, prefix, target: int, schedule, delta: float = 0.2) -> MCLResult:
    """Reference: one forward pass per context length, stopping at the first that qualifies."""
    prefix = np.asarray(prefix)
    t = prefix.size
    lengths = [ell for ell in check_schedule(schedule, t) if ell < t] + [t]
    forwards = 0

    def probs(ell):
        nonlocal forwards
        forwards += 1
        return model.next_token_probs(prefix[None], (np.arange(t) >= t - ell)[None])[0]

    def good(p):
        a, b = np.sort(p)[-2:]
        return p.argmax() == target and b - a >= delta

    if not good(probs(t)):
        return MCLResult(None, t, float("nan"), forwards)
    for ell in lengths:
        if good(probs(ell)):
            return MCLResult(ell, t, float("nan"), forwards)
    return MCLResult(t, t, float("nan"), forwards)


def analyze(model, X, schedule, *, start: int = 1, delta: float = 0.2, div: str = "jsd", threshold: float = 0.1,
            short: int = 4, positions: int | None = None, naive: bool = False) -> dict:
    """Analyze every position t ≥ ``start`` of every sequence in X (n×T): arrays of MCL (−1 = excluded),
    DaMCL, detector score, forward passes, sequence/position indices. ``naive`` uses one forward per length
    (MCL only) — the reference the batched search is compared with."""
    X = np.asarray(X)
    out = {"mcl": [], "damcl": [], "score": [], "forwards": [], "seq": [], "pos": []}
    windowed = hasattr(model, "window_probs") and not naive
    for i, seq in enumerate(X):
        last = seq.size if positions is None else min(seq.size, start + positions)
        if windowed:  # one forward for every position and every length of this sequence
            _windowed_sequence(model, seq, i, check_schedule(schedule), range(max(1, start), last), delta, div,
                               threshold, short, out)
            continue
        for t in range(max(1, start), last):
            if naive:
                r = analyze_position_naive(model, seq[:t], int(seq[t]), schedule, delta)
            else:
                r = analyze_position(model, seq[:t], int(seq[t]), schedule, delta, div, threshold, short)
            out["forwards"].append(r.forwards)
            out["mcl"].append(-1 if r.mcl is None else r.mcl)
            out["damcl"].append(r.damcl)
            out["score"].append(r.score)
            out["seq"].append(i)
            out["pos"].append(t)
    return {k: np.array(v) for k, v in out.items()}


def _windowed_sequence(model, seq, i, sched, ts, delta, div, threshold, short, out) -> None:
    """MCL / DaMCL / detector score of positions ``ts`` of one sequence from one ``window_probs`` call, the
    same rules as ``mcl_from_probs`` etc. evaluated for all positions at once (rows: schedule lengths < t,
    then the full context t)."""
    ts = np.asarray(list(ts))
    if ts.size == 0:
        return
    lengths = np.array(sorted(set(sched) | {seq.size}))
    in_sched = np.isin(lengths, sched)
    if hasattr(model, "block_probs"):
        Wp, calls = _early_windows(model, np.asarray(seq), ts, lengths, in_sched, delta, div, threshold, short)
    else:
        Wp = model.window_probs(seq, lengths.tolist())[:, ts - 1]  # L×|ts|×V; last row: the full context
        calls = model.window_calls(seq.size) if hasattr(model, "window_calls") else 1
    full = Wp[-1]
    L, n_t, V = Wp.shape
    good = _qualifies(Wp, np.asarray(seq)[ts][None, :], real("delta", delta, 0.0, 1.0))
    d = divergence(Wp.reshape(-1, V), np.broadcast_to(full, Wp.shape).reshape(-1, V), div).reshape(L, n_t)
    shorter = in_sched[:, None] & (lengths[:, None] < ts[None, :])  # the rows a position may use, full last
    big = np.iinfo(np.int64).max

    def first_len(ok):  # smallest schedule length < t where ok, else t
        cand = np.where(shorter & ok, lengths[:, None], big).min(0)
        return np.where(cand == big, ts, cand)

    mcl = np.where(good[-1], first_len(good), -1)
    damcl = first_len(d <= real("threshold", threshold, 0.0))
    short_rows = shorter & (lengths[:, None] <= short)
    idx = np.where(short_rows.any(0), L - 1 - np.argmax(short_rows[::-1], 0), L - 1)
    idx = np.where(ts <= short, L - 1, idx)  # the full context itself is the longest length ≤ short
    has_short = short_rows.any(0) | (ts <= short)
    idx = np.where(has_short, idx, np.argmax(shorter, 0))  # none ≤ short: the first row (as score_from_probs)
    idx = np.where(~shorter.any(0) & ~(ts <= short), L - 1, idx)
    score = d[idx, np.arange(n_t)]
    out["forwards"].extend([calls] + [0] * (n_t - 1))
    out["mcl"].extend(mcl.tolist())
    out["damcl"].extend(damcl.tolist())
    out["score"].extend(score.tolist())
    out["seq"].extend([i] * n_t)
    out["pos"].extend(ts.tolist())


def _early_windows(model, seq, ts, lengths, in_sched, delta, div, threshold, short) -> tuple[np.ndarray, int]:
    """The L×|ts|×V array ``_windowed_sequence`` reads, for every entry its rules can depend on, with early stopping
    as in the naive loop: blocks of starts from the last down give each position its windows in increasing length;
    a block runs only up to the last position whose MCL, DaMCL or score row is still open. Entries never computed
    (lengths past both answers) hold the full-context distribution. Returns (array, forward calls)."""
    T, q, n_t, delta = seq.size, ts - 1, ts.size, real("delta", delta, 0.0, 1.0)
    full = model.block_probs(seq, 0, 1, T)[0][q]  # |ts|×V: p(· | the whole prefix)
    Wp = np.repeat(full[None], lengths.size, 0)
    row_of = np.full(T + 1, -1)
    row_of[lengths[lengths <= T]] = np.flatnonzero(lengths <= T)
    target = seq[ts]
    found_mcl, found_dam = ~_qualifies(full, target, delta), np.zeros(n_t, bool)  # excluded positions need no MCL
    sched_lengths = lengths[in_sched]
    score_len = np.minimum(ts, max(short, sched_lengths.min() if sched_lengths.size else 1))  # score row covered
    covered, calls, block = np.zeros(n_t, int), 1, model.window_block
    for c in reversed(range(0, T, block)):
        open_ = (q >= c) & ~(found_mcl & found_dam & (covered >= score_len))
        if not open_.any():
            continue
        qmax, rows = int(q[open_].max()), np.arange(c, min(T, c + block))
        P = model.block_probs(seq, c, rows[-1] + 1, qmax + 1)
        ell = q[None, :] - rows[:, None] + 1  # window length of (start, position)
        r, j = np.nonzero(open_[None, :] & (ell >= 1) & (ell < ts[None, :]) & (row_of[np.clip(ell, 0, T)] >= 0))
        Wp[row_of[ell[r, j]], j] = new = P[r, q[j] - c]
        use = in_sched[row_of[ell[r, j]]]
        np.logical_or.at(found_mcl, j[use], _qualifies(new[use], target[j[use]], delta))
        np.logical_or.at(found_dam, j[use], divergence(new[use], full[j[use]], div) <= threshold)
        covered[open_] = q[open_] - c + 1
        calls += 1
    return Wp, calls


# ---------------------------------------------------------------- boosted decoding
def boosted_probs(p_full, p_short, alpha: float) -> np.ndarray:
    """Long-context boosting: logits_full + α·(logits_full − logits_short) on the tokens whose probability
    rises with long context (p_full > p_short); other tokens keep logits_full. Renormalized."""
    alpha = real("alpha", alpha, 0.0)
    p_full, p_short = _probs("p_full", p_full), _probs("p_short", p_short)
    if p_full.shape != p_short.shape:
        raise ValueError(f"p_full has shape {p_full.shape} but p_short has {p_short.shape}: they must match")
    lf, ls = np.log(np.clip(p_full, 1e-300, None)), np.log(np.clip(p_short, 1e-300, None))
    logits = np.where(p_full > p_short, lf + alpha * (lf - ls), lf)
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


def decode_accuracy(model, X, positions, short: int, alpha: float, threshold: float = 0.05, div: str = "jsd",
                    samples: int = 20, seed: int = 0) -> dict:
    """Sampling accuracy at the given (sequence, position) pairs: plain sampling from the full-context
    distribution vs boosted sampling applied when the detector (D(short, full) > threshold) fires. Also the
    standard error of the mean per-position gain (boosted − plain) and the per-position accuracies."""
    rng = np.random.default_rng(integer("seed", seed, 0))
    plain, boosted, fired = [], [], 0

    def draw(p, u):  # inverse-CDF sampling with shared uniforms: α = 0 reproduces plain sampling exactly
        return np.minimum(np.searchsorted(np.cumsum(p), u * p.sum()), p.size - 1)

    for i, t in positions:
        prefix = np.asarray(X[i][:t])
        T = prefix.size
        mask = np.stack([np.ones(T, bool), np.arange(T) >= T - short])
        P = model.next_token_probs(np.repeat(prefix[None], 2, 0), mask)
        target = X[i][t]
        fire = divergence(P[1], P[0], div)[0] > threshold
        fired += int(fire)
        pb = boosted_probs(P[0], P[1], alpha) if fire else P[0]
        u = rng.random(integer("samples", samples, 1))
        plain.append(np.mean(draw(P[0], u) == target))
        boosted.append(np.mean(draw(pb, u) == target))
    diff = np.array(boosted) - np.array(plain)
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return {"plain": float(np.mean(plain)), "boosted": float(np.mean(boosted)), "fired": fired / max(1, len(positions)),
            "gain_se": se, "per_position": {"plain": plain, "boosted": boosted}}


def detector_threshold(model, X, positions, short: int, fpr: float = 0.1, div: str = "jsd") -> float:
    """Detector threshold with false-positive rate ``fpr``: the (1 − fpr)-quantile of D(p_short, p_full) over
    calibration ``positions`` (sequence, position) known to need at most ``short`` tokens — on sequences kept
    apart from those it is used on."""
    fpr = real("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    short, div = integer("short", short, 1), _kind("div", div)
    if not len(positions):
        raise ValueError("positions is empty: give short-context calibration positions (sequence, position)")
    scores = []
    for i, t in positions:
        prefix = np.asarray(X[i][:t])
        mask = np.stack([np.ones(prefix.size, bool), np.arange(prefix.size) >= prefix.size - short])
        P = model.next_token_probs(np.repeat(prefix[None], 2, 0), mask)
        scores.append(divergence(P[1], P[0], div)[0])
    return float(np.quantile(scores, 1 - fpr))


def probability_cache(model, X, start: int = 1, truth=None, naive: bool = False) -> dict:
    """Distributions of every truncation (lengths 1..t) of every position t ≥ ``start`` (one ``window_probs``
    pass per sequence where the model has it, else — or with ``naive`` — one batched forward per position), for
    interactive re-analysis without new forwards. ``truth(seq, t)`` optionally adds the planted minimum
    context length."""
    X = np.asarray(X)
    out = {"probs": [], "targets": [], "truth": [], "seq": [], "pos": []}
    windowed = hasattr(model, "window_probs") and not naive
    for i, seq in enumerate(X):
        ts = range(max(1, integer("start", start, 1)), seq.size)
        if windowed and len(ts):  # row ℓ − 1, column t − 1: p(token t | the last ℓ tokens), ℓ = t the full prefix
            W = model.window_probs(seq, list(range(1, seq.size)))
        for t in ts:
            P = W[:t, t - 1] if windowed else position_probs(model, seq[:t], range(1, t))[0]
            out["probs"].append(P)
            out["targets"].append(int(seq[t]))
            out["truth"].append(truth(seq, t) if truth else -1)
            out["seq"].append(i)
            out["pos"].append(t)
    return out
