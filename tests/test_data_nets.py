import numpy as np
import pytest

from nclab.data import digits, mnist1d, mnist1d_templates, step_imbalanced, take_sizes
from nclab.nets import MLP, imbalanced_last_layer, last_layer, train_classifier


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
