import numpy as np
import pytest

from nclab.frames import etf_geometry, geometry_from_class_logits, orthogonal_frame, psd_sqrt, simplex_etf


def test_simplex_etf_unit_norm_equal_angles():
    G = simplex_etf(5)
    np.testing.assert_allclose(np.diag(G), 1)
    off = G[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, -1 / 4)
    assert np.linalg.matrix_rank(G) == 4
    with pytest.raises(ValueError, match="k=1"):
        simplex_etf(1)


def test_orthogonal_frame():
    np.testing.assert_array_equal(orthogonal_frame(3), np.eye(3))


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
    g = etf_geometry([3, 3, 3])
    np.testing.assert_allclose(g.W_gram, np.eye(3) - 1 / 3)
