import numpy as np
import pytest

from nclab.convex import ntp_max_margin, ntp_regularized_optimum
from nclab.labels import sel_matrix
from nclab.labels import validate_distributions as validate
from nclab.nets import ContextMLP, lm_last_layer, train_lm
from nclab.ntp import (
    NTPData,
    decompose,
    from_tokens,
    in_support_logits,
    ntp_loss,
    subspace_collapse,
    synthetic,
    toy_corpus,
)
from nclab.ufm import train_ufm


@pytest.mark.parametrize("seed", range(3))
def test_in_support_system_exact_on_random_instances(seed):
    data = synthetic(12, 8, 5, (1, 4), (1, 9), seed=seed, frequencies="random")
    L = in_support_logits(data)
    for j in range(data.m):
        s = np.flatnonzero(data.S[:, j])
        for a in s:
            for b in s:
                assert L[a, j] - L[b, j] == pytest.approx(np.log(data.P[a, j] / data.P[b, j]), abs=1e-12)
    # adding the max-margin direction (constant on supports) keeps the differences
    inside, orth = decompose(L + 7 * ntp_max_margin(data.S), data.S)
    np.testing.assert_allclose(inside, L, atol=1e-6)


def test_decomposition_orthogonal_and_sums_back():
    data = synthetic(10, 6, 4, seed=1)
    L = np.random.default_rng(0).standard_normal((6, 10))
    inside, orth = decompose(L, data.S)
    np.testing.assert_allclose(inside + orth, L)
    assert abs(np.sum(inside * orth)) < 1e-10
    assert np.allclose(inside[~data.S], 0)
    with pytest.raises(ValueError, match="support matrix"):
        decompose(L[:, :3], data.S)


def test_one_hot_supports_give_sel():
    labels = np.array([0, 1, 2, 3, 0, 0, 2, 1, 3, 3])
    data = NTPData(np.eye(4)[:, labels])
    np.testing.assert_allclose(ntp_max_margin(data.S), sel_matrix(labels, 4), atol=1e-6)


def test_loss_at_least_entropy_and_regularized_optimum_matches_ufm():
    data = synthetic(8, 6, 3, seed=2)
    L = ntp_regularized_optimum(data.P, data.pi, 1e-2)
    assert ntp_loss(L, data) > data.entropy()
    value = ntp_loss(L, data) + 1e-2 * np.linalg.svd(L, compute_uv=False).sum()
    run = train_ufm(soft_labels=data.P, weights=data.pi, d=8, lam=1e-2, lr=1.0, steps=20000, tol=1e-9,
                    progress=False)
    assert run.converged
    assert run.final()["objective"] == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(run.W @ run.H, L, atol=1e-3)


def test_from_tokens_deduplicates_and_counts():
    data = from_tokens(list("abab" "ac"), context_length=1)
    assert data.vocab == ["a", "b", "c"] and data.contexts == [("a",), ("b",)]
    np.testing.assert_allclose(data.P[:, 0], [0, 2 / 3, 1 / 3])  # after 'a': b, b, c
    np.testing.assert_allclose(data.pi, [3 / 5, 2 / 5])
    with pytest.raises(ValueError, match="not in vocab"):
        from_tokens(["a", "b", "z"], 1, vocab=["a", "b"])


def test_toy_corpus_is_deterministic_and_has_shared_supports():
    a, b = toy_corpus(200, seed=4), toy_corpus(200, seed=4)
    assert a == b and a.count(".") == 200
    data = from_tokens(a, 2)
    groups = data.support_groups()
    assert len(np.unique(groups)) < data.m  # several contexts share a support set


def test_validation_errors():
    with pytest.raises(ValueError, match="sums to 0.9"):
        validate(np.array([[0.5, 1.0], [0.4, 0.0]]))
    with pytest.raises(ValueError, match="negative"):
        validate(np.array([[1.5, 1.0], [-0.5, 0.0]]))
    with pytest.raises(ValueError, match="context 1 has an empty support"):
        validate(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="pi must be"):
        validate(np.eye(2), np.array([0.7, 0.7]))
    with pytest.raises(ValueError, match="patterns=30"):
        synthetic(m=20, patterns=30)
    with pytest.raises(ValueError, match="soft_labels columns"):
        train_ufm(soft_labels=np.array([[0.5, 1.0], [0.6, 0.0]]), d=2, progress=False)
    with pytest.raises(ValueError, match="no support group"):
        subspace_collapse(np.eye(3), [0, 1, 2], 1)


def test_lm_fits_toy_corpus_and_groups_by_support():
    data = from_tokens(toy_corpus(300, seed=0), 2)
    model = ContextMLP(data.V, 2, seed=0)
    hist = train_lm(model, data, epochs=800, lr=3e-2, progress=False)
    assert hist["loss"][-1] - data.entropy() < 1e-2
    W, H = lm_last_layer(model, data)
    assert W.shape == (data.V, 16) and H.shape == (16, data.m)
    col = subspace_collapse(H, data.support_groups(), 5)
    assert col["projected"] < col["between_projected"]
