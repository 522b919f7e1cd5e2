import numpy as np
import pytest
import torch

from nclab.convex import regularized_optimum
from nclab.labels import labels_from_sizes, step_sizes
from nclab.losses import cross_entropy, get_loss
from nclab.ufm import TrainingDiverged, log_schedule, resolve_device, train_ufm

SIZES = step_sizes(4, 10, 2, 2)


def test_gd_with_ridge_reaches_exact_optimum():
    opt = regularized_optimum(SIZES, 1e-2)
    run = train_ufm(class_sizes=SIZES, d=6, lam=1e-2, lr=1.0, steps=2000, reference=opt, progress=False)
    f = run.final()
    assert f["d_W"] < 1e-3 and f["d_H"] < 1e-3
    assert f["objective"] == pytest.approx(opt.info["value"], rel=1e-6)


def test_same_seed_same_numbers_other_seed_differs():
    a = train_ufm(class_sizes=SIZES, d=4, steps=50, seed=3, progress=False)
    b = train_ufm(class_sizes=SIZES, d=4, steps=50, seed=3, progress=False)
    c = train_ufm(class_sizes=SIZES, d=4, steps=50, seed=4, progress=False)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.allclose(a.W, c.W)


def test_history_on_log_schedule_and_objective_decreases():
    run = train_ufm(class_sizes=SIZES, d=4, steps=300, record=10, progress=False)
    assert run.history["step"] == log_schedule(300, 10).tolist()
    assert run.history["objective"][-1] < run.history["objective"][0]
    assert set(run.history) >= {"d_W", "d_H", "d_Z", "d_W_etf", "nc1"}


def test_minibatch_training_decreases_objective():
    y = labels_from_sizes(SIZES)
    run = train_ufm(y, d=4, lam=1e-3, lr=0.5, steps=400, batch_size=7, progress=False)
    assert run.history["objective"][-1] < 0.5 * run.history["objective"][0]


def test_divergence_stops_with_advice():
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train_ufm(class_sizes=SIZES, d=4, lr=1e4, steps=200, init_scale=3.0, progress=False)


def test_interrupt_returns_partial_result(monkeypatch):
    import nclab.ufm as ufm

    calls = {"n": 0}
    real_summary = ufm.summary

    def interrupting(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_summary(*a, **kw)

    monkeypatch.setattr(ufm, "summary", interrupting)
    run = train_ufm(class_sizes=SIZES, d=4, steps=100, record=20, progress=False)
    assert run.interrupted and 0 < run.steps_done < 100


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=2), "d=2"), (dict(d=4, lam=-1.0), "lam=-1.0"), (dict(d=4, lr=0.0), "lr=0.0"),
    (dict(d=4, batch_size=0), "batch_size=0"), (dict(d=4, loss="mse"), "loss='mse'"),
    (dict(d=4, W0=np.zeros((3, 4))), "W0 has shape")])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_ufm(class_sizes=SIZES, progress=False, steps=5, **kwargs)


def test_exactly_one_label_source():
    with pytest.raises(ValueError, match="exactly one"):
        train_ufm(d=4)


def test_cross_entropy_matches_formula_and_registry():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    manual = np.mean([np.log(np.exp(r).sum()) - r[c] for r, c in zip(z.numpy(), y.numpy(), strict=True)])
    assert float(cross_entropy(z, y)) == pytest.approx(manual)
    assert get_loss("ce") is cross_entropy
    with pytest.raises(ValueError, match="n×k"):
        cross_entropy(z[0], y)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device="):
        resolve_device("not-a-device")
