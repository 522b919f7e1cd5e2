import numpy as np
import pytest
import torch

from nclab.data import digits, mnist1d, mnist1d_templates, step_imbalanced, take_sizes
from nclab.losses import SupCon
from nclab.nets import (
    MLP,
    ContrastiveMLP,
    embed,
    imbalanced_last_layer,
    last_layer,
    probe_accuracies,
    train_classifier,
    train_contrastive,
)


def test_digits_and_take_sizes_exact_counts():
    X, y = digits()
    assert X.shape == (1797, 64) and 0 <= X.min() and X.max() <= 1
    Xs, ys = take_sizes(X, y, [30, 3, 5], seed=1)
    assert np.bincount(ys).tolist() == [30, 3, 5] and Xs.shape == (38, 64)
    with pytest.raises(ValueError, match=r"class_sizes\[0\]=999"):
        take_sizes(X, y, [999, 3])


def test_step_imbalanced_with_heldout_split_disjoint():
    Xtr, ytr, Xte, yte = step_imbalanced("digits", k=4, R=5, k_min=2, n_min=4, test_per_class=10, seed=0)
    assert np.bincount(ytr).tolist() == [20, 20, 4, 4]
    assert np.bincount(yte).tolist() == [10] * 4
    rows = {tuple(r) for r in Xtr}
    assert not any(tuple(r) in rows for r in Xte)  # digits has no duplicate images across these splits
    with pytest.raises(ValueError, match="source"):
        step_imbalanced("cifar")


def test_mnist1d_deterministic_and_shaped():
    X1, y1 = mnist1d(20, seed=3)
    X2, y2 = mnist1d(20, seed=3)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape == (200, 40) and np.bincount(y1).tolist() == [20] * 10
    assert abs(X1.mean()) < 1e-10 and X1.std() == pytest.approx(1)
    T = mnist1d_templates()
    assert T.shape == (10, 12) and np.allclose(T[:, 0], 0)
    Xi, yi = step_imbalanced("mnist1d", k=3, R=4, k_min=1, n_min=5, seed=0)
    assert np.bincount(yi).tolist() == [20, 20, 5]


def test_mlp_trains_to_zero_error_deterministically():
    X, y = step_imbalanced("digits", k=3, R=3, k_min=1, n_min=5, seed=0)
    runs = []
    for _ in range(2):
        m = MLP(64, 3, hidden=32, feat_dim=4, seed=0)
        h = train_classifier(m, X, y, epochs=150, lr=0.1, optimizer="sgd", seed=0, progress=False)
        runs.append(last_layer(m, X))
        assert h["train_error"][-1] == 0 and h["loss"][-1] < h["loss"][0]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    W, H = runs[0]
    assert W.shape == (3, 4) and H.shape == (4, len(y))


def test_sparse_history_leaves_training_unchanged():
    X, y = step_imbalanced("digits", k=3, R=3, k_min=1, n_min=5, seed=0)
    full, sparse = MLP(64, 3, hidden=16, feat_dim=4, seed=1), MLP(64, 3, hidden=16, feat_dim=4, seed=1)
    h1 = train_classifier(full, X, y, epochs=25, lr=0.1, optimizer="sgd", seed=0, progress=False)
    h10 = train_classifier(sparse, X, y, epochs=25, lr=0.1, optimizer="sgd", seed=0, progress=False, record=10)
    assert h1["epoch"] == list(range(1, 26)) and h10["epoch"] == [10, 20, 25]  # every 10th and the last
    assert [h1["loss"][e - 1] for e in h10["epoch"]] == h10["loss"]
    np.testing.assert_array_equal(last_layer(full, X)[0], last_layer(sparse, X)[0])
    with pytest.raises(ValueError, match="record=0"):
        train_classifier(sparse, X, y, epochs=2, record=0, progress=False)


def test_imbalanced_last_layer_reports_geometry():
    out = imbalanced_last_layer(k=3, R=4, k_min=1, n_min=5, epochs=200, seed=0)
    assert out["train_error"] == 0 and out["n"] == 45
    assert {"d_W", "d_W_etf", "d_H", "nc1"} <= set(out)


def test_net_bad_inputs():
    with pytest.raises(ValueError, match="feat_dim=1"):
        MLP(64, 4, feat_dim=1)
    m = MLP(4, 2, hidden=3, feat_dim=2)
    X, y = np.zeros((4, 4)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(m, X, y, optimizer="lbfgs", progress=False)
    with pytest.raises(ValueError, match="lr=-1"):
        train_classifier(m, X, y, lr=-1, progress=False)


def test_contrastive_mlp_outputs_unit_nonnegative_embeddings():
    X = np.random.default_rng(0).standard_normal((30, 12))
    Xt = torch.as_tensor(X)
    for relu in (True, False):
        m = ContrastiveMLP(12, feat_dim=6, hidden=16, relu=relu, seed=3).double()
        with torch.no_grad():
            out = m(Xt)
            h = m.body.features(Xt)
        assert out.shape == (30, 6)
        # independent: normalize the raw features by hand
        ref = torch.relu(h) if relu else h
        ref = ref / ref.norm(dim=1, keepdim=True)
        torch.testing.assert_close(out, ref)
        np.testing.assert_allclose(out.norm(dim=1).numpy(), 1, atol=1e-12)
        assert (out.min() >= 0) == relu
    a, b = ContrastiveMLP(12, seed=5), ContrastiveMLP(12, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError, match="feat_dim=0"):
        ContrastiveMLP(12, feat_dim=0)


def test_train_contrastive_lowers_supcon_and_probe_accuracies():
    Xtr, ytr, Xte, yte = step_imbalanced("digits", k=3, R=2, k_min=1, n_min=8, test_per_class=10, seed=0)
    runs = []
    for _ in range(2):
        m = ContrastiveMLP(64, feat_dim=8, hidden=32, relu=True, seed=0)
        hist = train_contrastive(m, Xtr, ytr, loss=SupCon(1.0), epochs=60, lr=1e-2, seed=0, progress=False)
        runs.append(embed(m, Xtr))
    np.testing.assert_array_equal(runs[0], runs[1])
    # the recorded loss is the loss of the model (recomputed independently), and training lowered it
    with torch.no_grad():
        assert hist["loss"][-1] == pytest.approx(float(SupCon(1.0)(m(torch.as_tensor(Xtr)), torch.as_tensor(ytr))),
                                                 rel=1e-2)
    assert hist["loss"][-1] < hist["loss"][0] - 1
    mb = ContrastiveMLP(64, feat_dim=8, hidden=32, seed=0)
    hb = train_contrastive(mb, Xtr, ytr, loss=SupCon(1.0), epochs=3, batch_size=8, seed=0, progress=False)
    assert len(hb["loss"]) == 3
    with pytest.raises(ValueError, match="lr=0"):
        train_contrastive(mb, Xtr, ytr, loss=SupCon(1.0), lr=0, progress=False)
    with pytest.raises(ValueError, match="batch_size=1"):
        train_contrastive(mb, Xtr, ytr, loss=SupCon(1.0), batch_size=1, progress=False)


def test_probe_accuracies_against_direct_computation():
    rng = np.random.default_rng(1)
    centres = 3 * rng.standard_normal((5, 3))
    ytr, yte = np.repeat(np.arange(3), 20), rng.integers(0, 3, 40)
    Htr = centres[:, ytr] + rng.standard_normal((5, 60))
    Hte = centres[:, yte] + 1.5 * rng.standard_normal((5, 40))
    out = probe_accuracies(Htr, ytr, Hte, yte)
    mu = np.stack([Htr[:, ytr == c].mean(1) for c in range(3)])  # direct nearest-centre loop
    pred = [int(np.argmin([np.sum((h - m) ** 2) for m in mu])) for h in Hte.T]
    assert out["ncc"] == pytest.approx(np.mean(np.array(pred) == yte))
    assert out["ncc"] > 0.6 and out["linear_probe"] > 0.6
    wrong = probe_accuracies(Htr, ytr, Hte, (yte + 1) % 3)  # broken labels: both accuracies collapse
    assert wrong["ncc"] < 0.4 and wrong["linear_probe"] < 0.4
