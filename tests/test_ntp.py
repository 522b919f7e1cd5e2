import numpy as np
import pytest

from nclab.convex import ntp_max_margin, ntp_regularized_optimum
from nclab.labels import sel_matrix
from nclab.labels import validate_distributions as validate
from nclab.nets import ContextMLP, lm_last_layer, train_lm
from nclab.ntp import (
    NTPData,
    collapse_vs_data,
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


def test_impossible_support_requests_raise_instead_of_hanging():
    with pytest.raises(ValueError, match="patterns=10 is out of range: only 3 distinct support sets"):
        synthetic(m=20, V=3, patterns=10, support_sizes=(1, 1))
    assert len(np.unique(synthetic(m=20, V=3, patterns=3, support_sizes=(1, 1)).support_groups())) == 3
    with pytest.raises(ValueError, match="counts="):
        synthetic(counts=(4, 1))
    with pytest.raises(ValueError, match="p_adj=5"):
        toy_corpus(10, p_adj=5)
    with pytest.raises(ValueError, match="p_intransitive=-0.1"):
        toy_corpus(10, p_intransitive=-0.1)


def test_data_app_state_never_asks_for_more_supports_than_exist():
    from nclab.apps.ntp import ntp_data_app, ntp_data_state

    assert "3 support patterns" in ntp_data_state(20, 3, 10, 1, 0)["message"]
    app = ntp_data_app(m=20, V=3, patterns=10, max_support=1)
    assert app.controls["patterns"].max == 3 and app.controls["patterns"].value <= 3


def test_toy_corpus_same_support_contexts_differ_in_probabilities():
    data = from_tokens(toy_corpus(2000, seed=0), 2)
    groups = data.support_groups()
    tv = [0.5 * np.abs(data.P[:, a] - data.P[:, b]).sum()
          for g in np.unique(groups) for a in np.flatnonzero(groups == g) for b in np.flatnonzero(groups == g) if a < b]
    assert max(tv) > 0.2  # not one shared expected distribution per support set


def _spread_shrink(data, groups, r):
    out = []
    for lam in (1e-3, 1e-7):
        U, s, Vt = np.linalg.svd(ntp_regularized_optimum(data.P, data.pi, lam), full_matrices=False)
        out.append(subspace_collapse(np.sqrt(s)[:, None] * Vt, groups, r)["projected"])
    return out[1] / out[0]


def test_subspace_collapse_claim_fails_for_groups_that_ignore_the_supports():
    data = synthetic(12, 6, 4, (1, 3), (1, 4), seed=0)
    r = int(np.linalg.matrix_rank(ntp_max_margin(data.S), tol=1e-6))
    threshold = (1 + np.log(1e3) / np.log(1e7)) / 2  # the notebook's claim
    assert _spread_shrink(data, data.support_groups(), r) < threshold
    shuffled = np.random.default_rng(0).permutation(data.support_groups())
    assert _spread_shrink(data, shuffled, r) > threshold  # broken grouping: nothing collapses


def test_gd_projected_spread_shrinks_only_for_support_groups():
    data = synthetic(12, 6, 4, (1, 3), (1, 4), seed=1)
    r = int(np.linalg.matrix_rank(ntp_max_margin(data.S), tol=1e-6))
    shuffled = np.random.default_rng(1).permutation(data.support_groups())
    run = train_ufm(soft_labels=data.P, weights=data.pi, d=8, lr=1.0, steps=3000, record=100, progress=False,
                    metrics=lambda W, H: {"true": subspace_collapse(H, data.support_groups(), r)["projected"],
                                          "shuffled": subspace_collapse(H, shuffled, r)["projected"],
                                          "orth": np.linalg.norm(decompose(W @ H, data.S)[1])})
    h = run.history
    early = int(np.searchsorted(h["step"], 100))
    threshold = (1 + h["orth"][early] / h["orth"][-1]) / 2
    assert h["true"][-1] / h["true"][early] < threshold
    assert h["shuffled"][-1] / h["shuffled"][early] > threshold


def test_collapse_vs_data_is_one_for_a_rotation_of_the_data():
    data = from_tokens(toy_corpus(500, seed=1), 2)
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((data.V, data.V)))[0]
    rel = collapse_vs_data(Q @ data.P, data, 4)
    assert rel["relative"] == pytest.approx(1.0, abs=1e-9)  # merely encoding p_j: the claim (< 1) fails
    with pytest.raises(ValueError, match="H has shape"):
        collapse_vs_data(np.ones((3, data.m + 1)), data, 2)
