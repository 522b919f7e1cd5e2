import numpy as np
import pytest

from nclab.frames import etf_geometry, geometry_from_class_logits, orthogonal_frame, psd_sqrt, simplex_etf
from nclab.metrics import gram_distance
from nclab.seli import seli_from_svd


def test_simplex_etf_unit_norm_equal_angles():
    G = simplex_etf(5)
    np.testing.assert_allclose(np.diag(G), 1)
    off = G[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, -1 / 4)
    assert np.linalg.matrix_rank(G) == 4
    with pytest.raises(ValueError, match="k=1"):
        simplex_etf(1)


def test_orthogonal_frame():
    # independent: a random orthonormal set (QR) has this Gram; the uncentered ETF–OF distance has the closed form
    # d² = 2 − 2⟨E/‖E‖, I/√k⟩ = 2 − 2√((k−1)/k), since ‖E‖_F² = k²/(k−1) and tr E = k
    rng = np.random.default_rng(3)
    for k in (1, 3, 6):
        Q, _ = np.linalg.qr(rng.standard_normal((k + 2, k)))
        np.testing.assert_allclose(orthogonal_frame(k), Q.T @ Q, atol=1e-12)
    for k in (2, 4, 7):
        d = gram_distance(simplex_etf(k), orthogonal_frame(k))
        assert d == pytest.approx(np.sqrt(2 - 2 * np.sqrt((k - 1) / k)), abs=1e-12)
    assert gram_distance(simplex_etf(4), orthogonal_frame(4)) == pytest.approx(0.5176, abs=1e-4)  # spec's value
    with pytest.raises(ValueError, match="k=0"):
        orthogonal_frame(0)


def test_psd_sqrt_squares_back():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 6))
    S = psd_sqrt(A @ A.T)
    np.testing.assert_allclose(S @ S, A @ A.T, atol=1e-10)
    np.testing.assert_allclose(S, S.T)


def test_geometry_from_class_logits_is_min_norm_factorization():
    rng = np.random.default_rng(1)
    sizes = np.array([4, 2, 7])
    M = rng.standard_normal((3, 3))
    g = geometry_from_class_logits(M, sizes)
    W, Hc = g.realize(5)
    np.testing.assert_allclose(W @ Hc, M, atol=1e-10)
    np.testing.assert_allclose(W @ W.T, g.W_gram, atol=1e-10)
    np.testing.assert_allclose(Hc.T @ Hc, g.H_gram, atol=1e-10)
    # ½(‖W‖² + Σ_i ‖h_i‖²) equals the nuclear norm of Z = M Y (min-norm factorization)
    half_norms = 0.5 * (np.sum(W**2) + np.sum(sizes * np.sum(Hc**2, axis=0)))
    Z = np.repeat(M, sizes, axis=1)
    assert half_norms == pytest.approx(np.linalg.svd(Z, compute_uv=False).sum(), rel=1e-10)
    with pytest.raises(ValueError, match="shape"):
        geometry_from_class_logits(np.eye(2), sizes)
    with pytest.raises(ValueError, match="d=2"):
        g.realize(2)


def test_etf_geometry_reference():
    # independent: with balanced classes the SVD of the SEL matrix P Y (seli_from_svd) must give the same
    # geometry up to scale; and the vectors e_c − 1/k (built directly) have the ETF's Gram and unit-margin logits
    for k in (3, 5):
        g, svd = etf_geometry([4] * k), seli_from_svd([4] * k)
        assert gram_distance(g.W_gram, svd.W_gram) < 1e-12
        assert gram_distance(g.H_gram, svd.H_gram) < 1e-12
        V = np.eye(k) - 1 / k
        assert gram_distance(g.W_gram, V @ V.T) < 1e-12
        assert gram_distance(g.W_gram, simplex_etf(k)) < 1e-12
        W, Hc = g.realize(k + 1)
        margins = (W @ Hc)[np.arange(k), np.arange(k)][None, :] - W @ Hc
        np.testing.assert_allclose(margins[~np.eye(k, dtype=bool)], 1, atol=1e-10)
    # under imbalance the ETF reference does not depend on the sizes, while SELI does
    g_imb = etf_geometry([20, 20, 2, 2])
    assert gram_distance(g_imb.W_gram, simplex_etf(4)) < 1e-12
    assert gram_distance(g_imb.W_gram, seli_from_svd([20, 20, 2, 2]).W_gram) > 0.05
