import numpy as np
import pytest
import torch

from nclab.convex import regularized_optimum
from nclab.labels import labels_from_sizes, step_sizes
from nclab.losses import cross_entropy, get_loss, make_loss
from nclab.ufm import TrainingDiverged, log_schedule, resolve_device, train_ufm
from nclab.ufm_batched import train_ufm_batched

SIZES = step_sizes(4, 10, 2, 2)


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny torch ops: extra threads only add contention on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    with pytest.raises(ValueError, match="logits must be a 2-D"):
        cross_entropy(z[0], y)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device="):
        resolve_device("not-a-device")


def _plain_loop(y, k, d, loss, lam, lr, steps, seed=0, soft=None):
    """The papers' loop: nn.Parameter + SGD + autograd (the same init as train_ufm)."""
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    W = torch.nn.Parameter(0.1 * torch.randn(k, d, generator=g, dtype=torch.float64))
    H = torch.nn.Parameter(0.1 * torch.randn(d, n, generator=g, dtype=torch.float64))
    opt = torch.optim.SGD([W, H], lr=lr)
    yt = torch.as_tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        if soft is None:
            obj = loss((W @ H).T, yt)
        else:
            P, pi = (torch.as_tensor(a) for a in soft)
            obj = -(pi * (P.T * torch.log_softmax((W @ H).T, dim=1)).sum(1)).sum()
        (obj + lam / 2 * (W.square().sum() + H.square().sum())).backward()
        opt.step()
    return W.detach().numpy(), H.detach().numpy()


@pytest.mark.parametrize("kind, lam", [("ce", 1e-2), ("vs", 0.0), ("wce", 5e-3), ("ldt", 0.0)])
def test_analytic_gradient_path_equals_autograd_loop(kind, lam):
    loss = cross_entropy if kind == "ce" else make_loss(kind, SIZES, gamma=0.5)
    y = labels_from_sizes(SIZES)
    Wp, Hp = _plain_loop(y, 4, 5, loss, lam, 0.5, 60)
    run = train_ufm(y, d=5, loss=loss, lam=lam, lr=0.5, steps=60, progress=False)
    np.testing.assert_allclose(run.W, Wp, atol=1e-10)
    np.testing.assert_allclose(run.H, Hp, atol=1e-10)


def test_soft_label_path_equals_autograd_loop():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(5), size=7).T
    pi = rng.dirichlet(np.ones(7))
    Wp, Hp = _plain_loop(np.arange(7), 5, 4, None, 1e-3, 1.0, 60, soft=(P, pi))
    run = train_ufm(soft_labels=P, weights=pi, d=4, lam=1e-3, lr=1.0, steps=60, progress=False)
    np.testing.assert_allclose(run.W, Wp, atol=1e-10)
    np.testing.assert_allclose(run.H, Hp, atol=1e-10)


def test_fast_path_equals_generic_autograd_path_with_minibatches_and_tol():
    y = labels_from_sizes(SIZES)

    def generic(z, t):  # not recognized as CE → autograd path
        return cross_entropy(z, t)

    for kw in (dict(batch_size=7, lam=1e-3, steps=60), dict(lam=2e-2, lr=1.0, steps=2000, tol=1e-4)):
        a = train_ufm(y, d=4, progress=False, **kw)
        b = train_ufm(y, d=4, loss=generic, progress=False, **kw)
        np.testing.assert_allclose(a.W, b.W, atol=1e-10)
        assert a.steps_done == b.steps_done and a.converged == b.converged
        assert a.history["step"] == b.history["step"]
        np.testing.assert_allclose(a.history["objective"], b.history["objective"], rtol=1e-10)
    assert a.converged and a.grad_norm < 1e-4


def test_large_logits_do_not_overflow():
    run = train_ufm(class_sizes=[3, 2], d=2, W0=[[40.0, 0], [-40.0, 0]], H0=[[30.0] * 5, [0.0] * 5], steps=5,
                    progress=False)
    assert np.isfinite(run.history["objective"]).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a CPU-only install")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="device='cuda'"):
        train_ufm(class_sizes=SIZES, d=4, steps=5, device="cuda", progress=False)


def test_batched_runs_equal_sequential_runs():
    runs = [dict(class_sizes=step_sizes(4, R, 2, 2), seed=s, lam=lam, loss=make_loss(kind, step_sizes(4, R, 2, 2), 0.3))
            for R, s, lam, kind in [(1, 0, 0.0, "ce"), (10, 1, 1e-2, "vs"), (30, 2, 0.0, "ldt"), (10, 3, 5e-3, "la")]]
    out = train_ufm_batched(runs, d=5, lr=0.5, steps=300, record=8, progress=False)
    for cfg, res in zip(runs, out, strict=True):
        ref = train_ufm(d=5, lr=0.5, steps=300, record=8, progress=False, **cfg)
        np.testing.assert_allclose(res.W, ref.W, atol=1e-10)
        np.testing.assert_allclose(res.H, ref.H, atol=1e-10)
        assert res.history["step"] == ref.history["step"]
        np.testing.assert_allclose(res.history["d_W"], ref.history["d_W"], atol=1e-9)


def test_batched_histories_equal_train_ufm_with_references_and_custom_metrics():
    from nclab.seli import seli_geometry

    def norms(W, H):
        return {"w2": float(np.sum(W**2))}

    runs = [dict(class_sizes=[6, 6, 6]), dict(class_sizes=[9, 3, 3], reference=seli_geometry([9, 3, 3]), lam=1e-2),
            dict(class_sizes=[2, 5, 8], metrics=norms, seed=4)]
    out = train_ufm_batched(runs, d=4, lr=0.8, steps=200, record=12, progress=False)
    for cfg, res in zip(runs, out, strict=True):
        ref = train_ufm(d=4, lr=0.8, steps=200, record=12, progress=False, **cfg)
        assert list(res.history) == list(ref.history)
        for key, want in ref.history.items():
            np.testing.assert_allclose(res.history[key], want, rtol=1e-9, atol=1e-10, err_msg=key)


def test_batched_tol_stops_each_run_like_train_ufm():
    runs = [dict(class_sizes=[4, 4, 2], lam=lam) for lam in (1e-2, 3e-2)]
    out = train_ufm_batched(runs, d=3, lr=1.0, steps=3000, tol=1e-4, progress=False)
    for cfg, res in zip(runs, out, strict=True):
        ref = train_ufm(d=3, lr=1.0, steps=3000, tol=1e-4, progress=False, **cfg)
        assert res.converged and ref.converged and res.steps_done == ref.steps_done
        np.testing.assert_allclose(res.W, ref.W, atol=1e-10)
    assert out[0].steps_done != out[1].steps_done


def test_batched_soft_labels_equal_train_ufm():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=6).T
    res = train_ufm_batched([dict(soft_labels=P, seed=s) for s in (0, 1)], d=3, lr=1.0, steps=100, progress=False)
    ref = train_ufm(soft_labels=P, seed=1, d=3, lr=1.0, steps=100, progress=False)
    np.testing.assert_allclose(res[1].W, ref.W, atol=1e-10)


@pytest.mark.parametrize("runs, match", [([], "non-empty"), ([dict(class_sizes=[2, 2], bogus=1)], "unknown keys"),
                                         ([dict(class_sizes=[2, 2]), dict(class_sizes=[2, 2, 2])], "share k"),
                                         ([dict(class_sizes=[2, 2], loss=lambda z, y: z.sum())], "CE-family"),
                                         ([dict(class_sizes=[2, 2], lr=-1.0)], "lr=-1.0")])
def test_batched_bad_inputs(runs, match):
    with pytest.raises(ValueError, match=match):
        train_ufm_batched(runs, d=3, steps=5, progress=False)


def test_sphere_ufm_runs_without_torch_warnings():
    import warnings

    from nclab.losses import SupCon
    from nclab.ufm import train_sphere_ufm

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = train_sphere_ufm(labels_from_sizes([3, 3, 2]), d=4, loss=SupCon(1.0), epochs=3, progress=False)
    assert run.epochs_done == 3


def test_progress_bar_ends_complete_when_a_run_converges_early_not_when_stopped():
    from nclab._progress import close, progress

    done, stopped, failed = (progress(100, True) for _ in range(3))
    for bar in (done, stopped, failed):
        bar.update(10)
    close(done, interrupted=False)
    close(stopped, interrupted=True)
    try:
        try:
            raise RuntimeError("diverged")
        finally:
            close(failed, interrupted=False)
    except RuntimeError:
        pass
    assert (done.n, done.total) == (10, 10)  # converged at step 10: shown complete (green)
    assert stopped.total == 100 and failed.total == 100  # Ctrl-C / an error: shown incomplete (red)
