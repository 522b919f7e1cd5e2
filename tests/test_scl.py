import numpy as np
import pytest
import torch

from nclab.convex import scl_gram, scl_gram_samples
from nclab.labels import labels_from_sizes
from nclab.losses import SupCon, supcon
from nclab.metrics import class_mean_gram, gram_distance, of_distance
from nclab.scl import check_batches, class_objective, meeting_matrix, optimal_value, schedule
from nclab.ufm import project_sphere, train_sphere_ufm


def _loop_supcon(H, y, tau):
    """Direct SupContrast-style loop, summed over anchors with positives."""
    n, total = len(y), 0.0
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        den = sum(np.exp(H[i] @ H[m] / tau) for m in range(n) if m != i)
        total += np.mean([-np.log(np.exp(H[i] @ H[j] / tau) / den) for j in pos])
    return total


def _supcontrast_reference(H, y, tau, base_tau):
    """SupContrast (Khosla et al.) 'SupCon' mode as published: mean over anchors with positives, × τ/τ_base."""
    n = len(y)
    S = H @ H.T / tau
    S = S - S.max(1, keepdims=True)
    mask = (y[:, None] == y[None, :]).astype(float)
    np.fill_diagonal(mask, 0)
    logits_mask = 1 - np.eye(n)
    log_prob = S - np.log((np.exp(S) * logits_mask).sum(1, keepdims=True))
    keep = mask.sum(1) > 0
    mean_log_prob_pos = (mask * log_prob).sum(1)[keep] / mask.sum(1)[keep]
    return float(-(tau / base_tau) * mean_log_prob_pos.mean()), int(keep.sum())


def test_supcon_equals_loop_and_supcontrast_up_to_scale():
    rng = np.random.default_rng(0)
    H = rng.standard_normal((11, 5))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 1])  # class 3 has no positive: contributes 0
    ours = float(supcon(torch.tensor(H), torch.tensor(y), 0.7))
    assert ours == pytest.approx(_loop_supcon(H, y, 0.7), rel=1e-12)
    ref, anchors = _supcontrast_reference(H, y, 0.7, base_tau=0.07)
    assert ours == pytest.approx(ref * anchors * 0.07 / 0.7, rel=1e-10)
    assert float(SupCon(0.7)(torch.tensor(H), torch.tensor(y))) == pytest.approx(ours)


def test_supcon_bad_tau():
    with pytest.raises(ValueError, match="tau=0"):
        SupCon(0)
    with pytest.raises(ValueError, match="tau=-1"):
        supcon(torch.zeros(2, 2), torch.tensor([0, 1]), -1)


def test_projection_onto_sphere_and_orthant():
    H = torch.tensor([[3.0, -4.0], [-1.0, -2.0], [0.5, 0.5]], dtype=torch.float64)
    P = project_sphere(H, nonneg=True)
    assert torch.allclose(P.norm(dim=1), torch.ones(3, dtype=torch.float64)) and (P >= 0).all()
    assert P[1].tolist() == [1.0, 0.0]  # no positive entry: basis vector of the largest entry
    assert torch.allclose(project_sphere(H, nonneg=False)[0], torch.tensor([0.6, -0.8], dtype=torch.float64))


@pytest.mark.parametrize("relu", [True, False])
def test_pgd_reaches_convex_optimum(relu):
    y = labels_from_sizes([8, 8, 2, 2])
    run = train_sphere_ufm(y, d=8, loss=SupCon(1.0), nonneg=relu, epochs=300, progress=False)
    G = class_mean_gram(run.H, y)
    assert gram_distance(G, scl_gram([8, 8, 2, 2], 1.0, relu)) < 1e-3
    assert np.allclose(np.linalg.norm(run.H, axis=0), 1)
    if relu:
        assert run.H.min() >= 0 and run.final()["loss"] == pytest.approx(optimal_value([8, 8, 2, 2], 1.0), rel=1e-8)


def test_sphere_trainer_deterministic_and_bad_inputs():
    y = labels_from_sizes([4, 4, 2])
    a = train_sphere_ufm(y, d=6, loss=SupCon(1.0), nonneg=True, epochs=5, seed=1, progress=False)
    b = train_sphere_ufm(y, d=6, loss=SupCon(1.0), nonneg=True, epochs=5, seed=1, progress=False)
    np.testing.assert_array_equal(a.H, b.H)
    with pytest.raises(ValueError, match="d=2 is too small"):
        train_sphere_ufm(y, d=2, loss=SupCon(1.0), nonneg=True, progress=False)
    with pytest.raises(ValueError, match="H0 has shape"):
        train_sphere_ufm(y, d=6, loss=SupCon(1.0), H0=np.ones((5, 10)), progress=False)


def test_convex_class_level_equals_sample_level_and_formula():
    y = labels_from_sizes([4, 3, 2])
    G, v = scl_gram_samples(y, 0.5, relu=True)
    Gc = scl_gram([4, 3, 2], 0.5, relu=True)
    assert gram_distance(G, Gc[np.ix_(y, y)]) < 1e-5
    assert v == pytest.approx(optimal_value([4, 3, 2], 0.5), rel=1e-7)
    assert class_objective(Gc, [4, 3, 2], 0.5) == pytest.approx(v, rel=1e-7)
    Gn, vn = scl_gram_samples(y, 0.5, relu=False)
    assert vn < v  # dropping non-negativity can only lower the optimum


def test_schedules_cover_every_example_and_binding_appends():
    y = labels_from_sizes([16, 16, 4, 4])
    for kind in ("full", "reshuffle", "partition", "stratified", "never_meet"):
        s = schedule(kind, y, batch_size=8, seed=0)
        assert np.array_equal(np.sort(np.concatenate(s(1))), np.arange(40)), kind
    s = schedule("partition", y, batch_size=8, binding=True)
    assert all(set(s.bound) <= set(b.tolist()) for b in s(3))
    assert y[s.bound].tolist() == [0, 1, 2, 3]
    nm = schedule("never_meet", y, batch_size=8, never_meet=(0, 3))
    assert all(not (0 in y[b] and 3 in y[b]) for b in nm.support(5))


def test_checker_verdicts_and_reasons():
    y = labels_from_sizes([4, 4, 2])
    full = check_batches([np.arange(10)], y)
    assert full.unique and "unique" in str(full)
    split = check_batches([np.array([0, 1, 4, 5, 8, 9]), np.array([2, 3, 6, 7])], y)
    assert not split.unique and any(r.startswith("class 0 is split") for r in split.reasons)
    apart = check_batches([np.array([0, 1, 2, 3, 8, 9]), np.array([4, 5, 6, 7, 8, 9])], y)
    assert "classes 0 and 1 never meet in a batch" in apart.reasons
    lonely = check_batches([np.array([0, 1, 2, 3, 4, 5, 6, 7, 8]), np.array([0, 1, 4, 5, 9])], y)
    assert any("class 2 is split" in r for r in lonely.reasons)
    with pytest.raises(ValueError, match="outside 0..9"):
        check_batches([np.array([0, 42])], y)
    with pytest.raises(ValueError, match="batches\\[0\\] names examples outside"):
        schedule("custom", y, batches=[[0, 99]])
    assert meeting_matrix([np.arange(10)], y).min() == 1


def test_optimal_value_bad_input():
    with pytest.raises(ValueError, match="tau=0"):
        optimal_value([3, 3], 0)
    with pytest.raises(ValueError, match="kind='bogus'"):
        schedule("bogus", labels_from_sizes([2, 2]))


def test_of_distance_of_etf_is_05176():
    from nclab.frames import simplex_etf

    vals, vecs = np.linalg.eigh(simplex_etf(4))
    M = (vecs * np.sqrt(np.clip(vals, 0, None))).T  # columns have Gram = ETF
    y = np.arange(4)
    assert of_distance(M, y) == pytest.approx(0.5176, abs=1e-4)


def test_class_objective_finite_at_small_tau_and_equals_formula():
    # τ = 1e−3 overflowed exp(1/τ) before; the value must match the closed-form optimum (an independent formula)
    for tau in (1e-3, 0.05, 1.0, 20.0):
        v = class_objective(np.eye(4), [5, 5, 2, 2], tau)
        assert np.isfinite(v) and v == pytest.approx(optimal_value([5, 5, 2, 2], tau), rel=1e-10)
    # against a direct per-sample evaluation of SupCon on collapsed embeddings with class Gram G
    rng = np.random.default_rng(0)
    M = rng.standard_normal((4, 3))
    M /= np.linalg.norm(M, axis=0)
    y = labels_from_sizes([5, 4, 1])
    H = torch.tensor(M[:, y].T)
    assert class_objective(M.T @ M, [5, 4, 1], 0.3) == pytest.approx(float(supcon(H, torch.tensor(y), 0.3)), rel=1e-10)
    with pytest.raises(ValueError, match="tau=0"):
        class_objective(np.eye(2), [2, 2], 0)
    with pytest.raises(ValueError, match="G has shape"):
        class_objective(np.eye(3), [2, 2], 1.0)


@pytest.mark.parametrize("sizes,tau", [([4, 4, 2, 2], 1.0), ([6, 2, 2], 0.2)])
def test_relu_gives_of_sample_level_and_fails_without_relu(sizes, tau):
    # the notebook's relu_gives_of: the n×n program (no collapse assumed) lands on YᵀY with G ≥ 0 …
    y = labels_from_sizes(sizes)
    YY = (y[:, None] == y[None, :]).astype(float)
    G, _ = scl_gram_samples(y, tau, relu=True)
    assert gram_distance(G, YY) < 1e-4
    # … and the same comparison fails when the non-negativity is dropped (a broken input for the claim)
    Gn, _ = scl_gram_samples(y, tau, relu=False)
    assert gram_distance(Gn, YY) > 0.3


def test_scl_representations_reports_restarts_and_no_relu_breaks_of():
    from nclab.scl import scl_representations

    kw = dict(k=3, R=2, k_min=1, n_min=6, test_per_class=5, feat_dim=16, epochs=40, seed=0)
    r = scl_representations("digits", relu=True, restarts=2, **kw)
    assert len(r["restarts"]) == 2 and r["train_loss"] == min(loss for loss, _, _ in r["restarts"])
    assert all(0 <= dead <= 16 for _, _, dead in r["restarts"])
    assert r["optimum_relu"] == pytest.approx(optimal_value([12, 12, 6], 1.0))
    assert r["train_loss"] >= r["optimum_relu"] - 1e-6  # L* is the global minimum with ReLU
    assert 0 <= r["ncc"] <= 1 and 0 <= r["linear_probe"] <= 1
    # broken input for real_net_relu_of: without the ReLU the class means are not an OF (d_OF stays large)
    n = scl_representations("digits", relu=False, restarts=1, **kw)
    assert n["d_OF_train"] > 0.3
    with pytest.raises(ValueError, match="restarts=0"):
        scl_representations("digits", relu=True, restarts=0, **kw)
