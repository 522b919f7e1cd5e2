import numpy as np
import pytest

from nclab.labels import labels_from_sizes, step_sizes
from nclab.metrics import (
    centered_etf_distance,
    class_means,
    gram_distance,
    group_stats,
    nc1,
    normalized,
    of_distance,
    summary,
)
from nclab.seli import seli_geometry


def test_gram_distance_scale_invariant_and_bounded():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    assert gram_distance(A, 3.7 * A) == pytest.approx(0, abs=1e-12)
    assert gram_distance(A, -A) == pytest.approx(2)
    with pytest.raises(ValueError, match="shapes differ"):
        gram_distance(A, A[:3])
    with pytest.raises(ValueError, match="norm"):
        normalized(np.zeros((2, 2)))


def test_class_means_uncentered():
    H = np.array([[1.0, 3.0, 10.0], [0.0, 2.0, -1.0]])
    mu = class_means(H, [0, 0, 1])
    np.testing.assert_allclose(mu, [[2.0, 10.0], [1.0, -1.0]])
    with pytest.raises(ValueError, match="d×n"):
        class_means(H[:, :2], [0, 0, 1])


def test_group_stats_by_hand():
    v = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, -1.0]])
    s = group_stats(v @ v.T, [True, True, False, False])
    assert s["sq_norm_ratio"] == pytest.approx(4.0)
    assert s["cos_maj_maj"] == pytest.approx(0.0)
    assert s["cos_min_min"] == pytest.approx(0.0)
    assert s["cos_maj_min"] == pytest.approx((1 + 0 + 0 - 1) / 4)
    assert np.isnan(group_stats(v @ v.T, [True, True, True, False])["cos_min_min"])
    with pytest.raises(ValueError, match="majority"):
        group_stats(v @ v.T, [True] * 4)


def test_nc1_zero_when_collapsed_positive_otherwise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    mu = rng.standard_normal((5, 3))
    assert nc1(mu[:, y], y) == pytest.approx(0, abs=1e-12)
    assert nc1(mu[:, y] + 0.1 * rng.standard_normal((5, 12)), y) > 1e-4


def test_summary_of_exact_seli_is_zero_distance():
    # independent route: factor the k×n SEL matrix Ẑ = P Y by a sample-level thin SVD (W = U S^½ Q, H = Qᵀ S^½ Vᵀ
    # with a random orthogonal Q); summary compares with the class-level min-norm factorization of P
    sizes = step_sizes(4, 10, 2, 2)
    y = labels_from_sizes(sizes)
    Z = np.eye(4)[:, y] - 1 / 4
    U, S, Vt = np.linalg.svd(Z, full_matrices=False)
    r = int(np.sum(S > 1e-10))
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, r)))
    W = (U[:, :r] * np.sqrt(S[:r])) @ Q.T
    H = Q @ (np.sqrt(S[:r])[:, None] * Vt[:r])
    s = summary(W, H, y)
    assert s["d_W"] < 1e-10 and s["d_H"] < 1e-10 and s["d_Z"] < 1e-10
    assert s["d_W_etf"] > 0.1 and s["nc1"] < 1e-12
    assert s["W_sq_norm_ratio"] > 1 > s["H_sq_norm_ratio"]
    # broken inputs: ETF-shaped embeddings, or labels shuffled, move the distances away from 0
    H_etf = np.vstack([np.eye(4) - 1 / 4, np.zeros((2, 4))])[:, y]
    assert summary(W, H_etf, y)["d_H"] > 0.05
    assert summary(W, H, y[::-1])["d_Z"] > 0.5


def test_centered_etf_distance_cannot_tell_of_from_etf():
    # independent geometries: an orthonormal frame (QR) and a simplex built as e_c − 1/k, both with within-class noise
    # zero; centring an OF gives an ETF (distance 0), while a generic frame is far from it; the value for a
    # known Gram is computed directly from the normalized-Frobenius formula
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 3)
    Q, _ = np.linalg.qr(rng.standard_normal((7, 4)))
    assert centered_etf_distance(Q[:, y], y) < 1e-12
    assert of_distance(Q[:, y], y) < 1e-12
    E = np.eye(4) - 0.25
    assert centered_etf_distance(E[:, y], y) < 1e-12
    assert of_distance(E[:, y], y) == pytest.approx(np.sqrt(2 - np.sqrt(3)), abs=1e-12)
    # two merged classes: centred means a, a, b, c with Gram computed by hand
    M = Q[:, [0, 0, 2, 3]]
    Mc = M - M.mean(1, keepdims=True)
    G, P = Mc.T @ Mc, np.eye(4) - 0.25
    expected = np.linalg.norm(G / np.linalg.norm(G) - P / np.linalg.norm(P))
    assert centered_etf_distance(M[:, y], y) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.3
    with pytest.raises(ValueError, match="class 3 has no example"):
        centered_etf_distance(Q[:, :3], np.array([0, 1, 2]), k=4)


def test_classifier_nearer_seli_than_etf_comparison_fails_for_an_etf_classifier():
    # 01's real_net_classifier_closer_to_seli_than_etf compares d_W with d_W_etf; SELI's classifier passes it and a
    # broken input — a simplex-ETF classifier under the same imbalance — must fail it
    sizes = step_sizes(4, 10, 2, 2)
    y = labels_from_sizes(sizes)
    W, Hc = seli_geometry(sizes).realize(6)
    good = summary(W, Hc[:, y], y)
    assert good["d_W"] - good["d_W_etf"] < 0
    W_etf = np.hstack([np.eye(4) - 0.25, np.zeros((4, 2))])
    bad = summary(W_etf, Hc[:, y], y)
    assert bad["d_W"] - bad["d_W_etf"] > 0.1


@pytest.mark.parametrize("with_reference", [False, True])
def test_summary_batch_equals_summary_run_by_run(with_reference):
    from nclab.metrics import SummaryBatch

    rng = np.random.default_rng(3)
    sizes = [[5, 5, 5, 5], [10, 10, 2, 2], [3, 7, 2, 9], [1, 4, 4, 4]]  # balanced, step, irregular; n differs
    ys = [labels_from_sizes(s) for s in sizes]
    refs = [seli_geometry(s) if with_reference and b % 2 else None for b, s in enumerate(sizes)]
    nmax = max(y.size for y in ys)
    W = rng.standard_normal((4, 4, 6))
    H = np.zeros((4, 6, nmax))  # zero past each run's n (padding)
    for b, y in enumerate(ys):
        H[b, :, :y.size] = rng.standard_normal((6, y.size))
    batch = SummaryBatch(ys, 4, refs)
    for out, idx in ((batch(W, H), range(4)), (batch(W[[2, 0]], H[[2, 0]], [2, 0]), [2, 0])):
        for got, b in zip(out, idx, strict=True):
            want = summary(W[b], H[b, :, :ys[b].size], ys[b], refs[b])
            assert list(got) == list(want)  # same keys, same order (no group keys for the balanced run)
            np.testing.assert_allclose([got[key] for key in want], list(want.values()), rtol=1e-12, atol=1e-12)
    W[1, 2] = 0.0  # a zero classifier row: the batched path raises exactly what summary raises
    with pytest.raises(ValueError, match="positive diagonal"):
        batch(W, H)
