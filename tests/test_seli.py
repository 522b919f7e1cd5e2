import numpy as np
import pytest

from nclab.labels import centering, labels_from_sizes, sel_matrix, step_sizes
from nclab.seli import (
    minority_collapse_cosine,
    sel_singular_values,
    seli_from_svd,
    seli_geometry,
    step_closed_form,
    step_gram,
)

RNG = np.random.default_rng(0)
RANDOM_SIZES = [RNG.integers(1, 30, size=m) for m in (2, 3, 5, 8)]


@pytest.mark.parametrize("sizes", RANDOM_SIZES + [step_sizes(4, 10, 2, 3), [7, 7, 7]])
def test_matrix_sqrt_formulas_equal_svd_of_sel(sizes):
    a, b = seli_geometry(sizes), seli_from_svd(sizes)
    np.testing.assert_allclose(a.W_gram, b.W_gram, atol=1e-10)
    np.testing.assert_allclose(a.H_gram, b.H_gram, atol=1e-10)


@pytest.mark.parametrize("sizes", RANDOM_SIZES)
def test_seli_structure(sizes):
    # independent of the class-level formulas: the sample-level k×n SEL matrix Ẑ = P Y and its own thin SVD
    # Ẑ = U S Vᵀ. SELI is the balanced factorization Ẑ = W H, so W Wᵀ = U S Uᵀ, Hᵀ H = V S Vᵀ (n×n, no collapse
    # assumed) and ½(‖W‖² + ‖H‖²) = ‖Ẑ‖_* = Σ S.
    g = seli_geometry(sizes)
    k = len(sizes)
    y = labels_from_sizes(sizes)
    Z = np.eye(k)[:, y] - 1 / k
    U, S, Vt = np.linalg.svd(Z, full_matrices=False)
    W, Hc = g.realize()
    H = Hc[:, y]
    np.testing.assert_allclose(W @ W.T, (U * S) @ U.T, atol=1e-10)
    np.testing.assert_allclose(H.T @ H, (Vt.T * S) @ Vt, atol=1e-10)
    assert 0.5 * (np.sum(W**2) + np.sum(H**2)) == pytest.approx(S.sum(), rel=1e-10)
    np.testing.assert_allclose(W.sum(0), 0, atol=1e-10)  # Σ_c w_c = 0
    # a broken geometry (the balanced answer, W Wᵀ ∝ P) does not pass the same check under imbalance (k > 2:
    # for k = 2 every Gram of two opposite vectors is ∝ P)
    P = centering(k) * np.trace((U * S) @ U.T) / (k - 1)
    assert k == 2 or np.abs(P - (U * S) @ U.T).max() > 1e-3


def test_balanced_is_scaled_etf():
    g = seli_geometry([9] * 4)
    P = centering(4)
    np.testing.assert_allclose(g.W_gram, 3 * P, atol=1e-12)
    np.testing.assert_allclose(g.H_gram, P / 3, atol=1e-12)


@pytest.mark.parametrize("k, R, k_min, n_min", [(4, 10, 2, 1), (5, 7, 2, 3), (3, 100, 1, 2), (6, 2, 4, 4)])
def test_step_closed_form_matches_svd(k, R, k_min, n_min):
    Wg, Hg = step_gram(k, R, k_min, n_min)
    ref = seli_from_svd(step_sizes(k, R, k_min, n_min))
    np.testing.assert_allclose(Wg, ref.W_gram, atol=1e-10)
    np.testing.assert_allclose(Hg, ref.H_gram, atol=1e-10)
    sv = np.linalg.svd(sel_matrix(labels_from_sizes(step_sizes(k, R, k_min, n_min))), compute_uv=False)
    np.testing.assert_allclose(np.sort(step_closed_form(k, R, k_min, n_min)["singular_values"]),
                               np.sort(sv[:k - 1]), atol=1e-10)


def test_paper_reference_numbers():
    cf = step_closed_form(4, 10, 2)
    assert np.sqrt(cf["w_sq_ratio"]) == pytest.approx(1.41253, abs=1e-5)
    assert np.sqrt(cf["h_sq_ratio"]) == pytest.approx(0.66060, abs=1e-5)
    assert cf["w_cos_min_min"] == pytest.approx(0.07945, abs=1e-5)
    assert cf["w_cos_maj_maj"] == pytest.approx(-0.45899, abs=1e-5)
    assert cf["w_cos_maj_min"] == pytest.approx(-0.38210, abs=1e-5)
    assert cf["nuclear_norm"] == pytest.approx(6.50749, abs=1e-5)


def test_singular_values_and_minority_collapse_trend():
    s = sel_singular_values([10, 10, 1, 1])
    assert s[-1] == 0 and s.sum() == pytest.approx(6.50749, abs=1e-5)
    cos = [minority_collapse_cosine(4, R, 2) for R in (10, 1e3, 1e6)]
    assert cos[0] < cos[1] < cos[2] < 1 and cos[2] > 0.99


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=0"):
        seli_geometry([5, 0, 3])
    with pytest.raises(ValueError, match="R=0.5"):
        step_closed_form(4, 0.5, 2)
    with pytest.raises(ValueError, match="k_min=4"):
        step_gram(4, 10, 4)
