"""nclab.probe / nclab.nc_metrics: streaming = full batch, merge = one pass, tiles = no tiles, hooks, NC4, NTP,
tracker, targets, and one broken-input test per notebook claim family (the reference values are computed here
directly in numpy, independently of the code under test)."""

import numpy as np
import pytest
import torch
from torch import nn

from nclab.frames import etf_geometry
from nclab.labels import step_sizes
from nclab.losses import make_loss
from nclab.nc_metrics import ClassStats, geometry_metrics, loss_geometry, targets_for
from nclab.probe import GeometryTracker, accumulate, ncc_agreement, probe, probe_ntp
from nclab.seli import seli_geometry


def data(k=8, d=5, n=500, offset=50.0, seed=0):
    """Features with a large common offset (cancellation-prone) and class structure; every class occurs."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rng.shuffle(y)
    centres = rng.normal(size=(k, d)) * 3
    X = offset + centres[y] + rng.normal(size=(n, d)) * (0.5 + rng.random(d))
    return X, y


def stream(X, y, k, tile=1024, seed=1):
    """ClassStats fed in uneven chunks (sizes 1..97, some of one row)."""
    rng = np.random.default_rng(seed)
    s, i = ClassStats(k, X.shape[1], tile=tile), 0
    while i < len(y):
        b = int(rng.integers(1, 98))
        s.update(torch.tensor(X[i:i + b]), torch.tensor(y[i:i + b]), chunk=int(rng.integers(1, 40)))
        i += b
    return s


def direct(X, y, k, W=None, refs=None):
    """Full-data metrics written out in numpy (the definitions, not the streaming formulas)."""
    n, _ = X.shape
    M = np.stack([X[y == c].mean(0) for c in range(k)])
    C = X - M[y]
    Sw = C.T @ C / n
    Mc = M - M.mean(0)
    Sb = Mc.T @ Mc / k
    out = {"means": M, "scatter": C.T @ C, "nc1": np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10)) / k}

    def dist(A, B):
        return np.linalg.norm(A / np.linalg.norm(A) - B / np.linalg.norm(B))

    P = np.eye(k) - 1.0 / k
    off = ~np.eye(k, dtype=bool)
    for tag, V in (("H", Mc), ("W", W)):
        if V is None:
            continue
        nr = np.linalg.norm(V, axis=1)
        cos = (V @ V.T / np.outer(nr, nr))[off]
        out[f"nc2_equinorm_{tag}"] = nr.std() / nr.mean()
        out[f"nc2_equiangle_{tag}"] = cos.std()
        out[f"nc2_maxangle_{tag}"] = np.abs(cos + 1 / (k - 1)).mean()
    out["nc2_etf_H"] = dist(Mc @ Mc.T, P)
    out["d_H_ETF"], out["d_H_OF"] = dist(M @ M.T, P), dist(M @ M.T, np.eye(k))
    if W is not None:
        out["d_W_ETF"] = dist(W @ W.T, P)
        out["nc3"] = np.linalg.norm(W / np.linalg.norm(W) - Mc / np.linalg.norm(Mc))
        for name, g in (refs or {}).items():
            out[f"d_W_{name}"], out[f"d_H_{name}"] = dist(W @ W.T, g.W_gram), dist(M @ M.T, g.H_gram)
    return out


def test_streaming_equals_full_batch_to_1e_10():
    k, d = 8, 5
    X, y = data(k, d)
    W = np.random.default_rng(3).normal(size=(k, d))
    refs = targets_for(np.bincount(y))
    s = stream(X, y, k)
    ref = direct(X, y, k, W, refs)
    assert np.abs(s.means.numpy() - ref["means"]).max() < 1e-10 * np.abs(ref["means"]).max()
    assert np.abs(s.scatter.numpy() - ref["scatter"]).max() < 1e-10 * np.abs(ref["scatter"]).max()
    m = geometry_metrics(s, torch.tensor(W), targets=refs)
    keys = [key for key in ref if key not in ("means", "scatter")]
    assert len(keys) >= 14
    for key in keys:
        assert m[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key


def test_stable_where_the_uncentred_formula_cancels():
    """Offset 1e6, spread 1: Σxxᵀ − Σ n μμᵀ loses every digit in float64; the centred updates do not."""
    X, y = data(4, 3, n=400, offset=1e6)
    s = stream(X, y, 4)
    assert np.abs(s.scatter.numpy() - direct(X, y, 4)["scatter"]).max() < 1e-6 * np.abs(s.scatter.numpy()).max()


def test_merged_accumulators_equal_one_pass():
    k, d = 6, 4
    X, y = data(k, d, n=300)
    first = y[:120] != 5  # class 5 absent from the first part
    a = stream(X[:120][first], y[:120][first], k, seed=2)
    b = stream(X[120:], y[120:], k, seed=3)
    one = stream(np.vstack([X[:120][first], X[120:]]), np.concatenate([y[:120][first], y[120:]]), k)
    ab = a + b
    for t in ("counts", "means", "scatter"):
        assert torch.allclose(getattr(ab, t), getattr(one, t), rtol=1e-11, atol=1e-9), t
    with pytest.raises(ValueError, match="same k and d"):
        a + ClassStats(k + 1, d)


def test_tiles_equal_no_tiles():
    k, d = 9, 4
    X, y = data(k, d, n=400)
    W = torch.tensor(np.random.default_rng(4).normal(size=(k, d)))
    refs = targets_for(np.bincount(y), make_loss("ldt", np.bincount(y), gamma=0.5))
    half = len(y) // 2
    tiled = stream(X[:half], y[:half], k, tile=2) + stream(X[half:], y[half:], k, tile=2)
    whole = stream(X[:half], y[:half], k, tile=k) + stream(X[half:], y[half:], k, tile=k)
    assert torch.allclose(tiled.scatter, whole.scatter, rtol=1e-12, atol=1e-9)
    a, b = geometry_metrics(tiled, W, refs, tile=2), geometry_metrics(whole, W, refs, tile=k)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-11, abs=1e-12), key


def test_bad_inputs():
    s = ClassStats(3, 2)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        s.update(torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="B×2"):
        s.update(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="k=1"):
        ClassStats(1, 2)
    s.update(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="class 2 has no example"):
        geometry_metrics(s)
    s.update(torch.randn(1, 2), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"expected \(3, 2\)"):
        geometry_metrics(s, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="targets"):
        geometry_metrics(s, targets={"SELI": seli_geometry([1, 2, 3, 4])})
    with pytest.raises(ValueError, match="max_k"):
        targets_for([1] * 30, max_k=20)
    both = make_loss("cdt", [5, 1], gamma=1).__class__(Delta=np.array([2.0, 1.0]), delta=np.array([2.0, 1.0]))
    with pytest.raises(ValueError, match="both"):
        loss_geometry(both, [5, 1])


def test_loss_geometry_picks_the_cs_svm_of_the_loss():
    from nclab.convex import cs_svm

    sizes = step_sizes(4, 10, 2, 3)
    seli = seli_geometry(sizes).W_gram
    assert np.allclose(loss_geometry(make_loss("ce", sizes), sizes).W_gram, seli)
    assert np.allclose(loss_geometry(make_loss("la", sizes), sizes).W_gram, seli)  # ι drops out
    vs = make_loss("vs", sizes, gamma=1.0)
    assert np.allclose(loss_geometry(vs, sizes).W_gram, cs_svm(sizes, vs.Delta, "cdt").W_gram, atol=1e-6)
    ldt = loss_geometry(make_loss("ldt", sizes, gamma=0.5), sizes).W_gram  # δ ∝ √n: exact ETF classifier
    assert np.linalg.norm(ldt / np.linalg.norm(ldt) - etf_geometry(sizes).W_gram / np.sqrt(3)) < 1e-5


class Net(nn.Module):
    def __init__(self, k=5, d=6, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, d))
        self.head = nn.Linear(d, k)

    def forward(self, x):
        return self.head(self.body(x))


def net_data(k=5, n=230, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.arange(k), torch.randint(0, k, (n - k,), generator=g)])
    return torch.randn(n, 1, 8, generator=g) + y[:, None, None] * 0.5, y


def test_probe_reads_the_named_layer_and_matches_direct_nc4():
    model = Net().double()
    X, y = net_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X.float(), y), batch_size=37)
    res = probe(model, loader, classifier="head")  # features = the input of "head"; inputs cast to float64
    with torch.no_grad():
        H = model.body(X.double()).numpy()
    W, b = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    ref = direct(H, y.numpy(), 5, W)
    for key in ("nc1", "nc3", "d_W_ETF", "nc2_equiangle_W"):
        assert res.metrics[key] == pytest.approx(ref[key], rel=1e-10), key
    ncc = np.argmin(((H[:, None, :] - ref["means"][None]) ** 2).sum(-1), axis=1)
    agree = np.mean(ncc == np.argmax(H @ W.T + b, axis=1))
    assert res.metrics["nc4_agreement"] == pytest.approx(agree)
    assert 0 < agree < 1  # the check can see both outcomes here
    # the same through the output of a named module, with tiles of 2 classes in the NCC pass
    by_name = accumulate(model, loader, features="body.3", k=5)
    assert torch.allclose(by_name.stats.means, res.stats.means)
    tiled = ncc_agreement(model, loader, res.stats.means, res.W, res.b, features="body.3", tile=2)
    assert tiled == pytest.approx(agree)
    assert model.training  # eval mode was restored


def test_feature_function_and_unknown_module():
    model = Net()
    X, y = net_data()
    res = accumulate(model, [(X, y)], features=lambda m, x: m.body(x), k=5)
    assert res.stats.n == len(y)
    with pytest.raises(ValueError, match=r"module 'fc' not found.*body\.3.*head"):
        probe(model, [(X, y)], classifier="fc")
    with pytest.raises(ValueError, match="k is needed"):
        accumulate(model, [(X, y)], features="body")
    with pytest.raises(ValueError, match=r"\(inputs, labels\)"):
        accumulate(model, [X], classifier="head")
    with pytest.raises(ValueError, match="2-D weight"):
        accumulate(model, [(X, y)], classifier="body.0")


def test_gpu_path_matches_cpu():
    if not torch.cuda.is_available():
        print("skipped: no CUDA device on this machine (the GPU path needs one)")
        pytest.skip("no CUDA device: GPU path not tested here")
    model = Net().double()
    X, y = net_data()
    loader = [(X[i:i + 50], y[i:i + 50]) for i in range(0, len(y), 50)]
    cpu = probe(model, loader, classifier="head").metrics
    gpu_res = probe(model.cuda(), loader, classifier="head")
    assert gpu_res.stats.means.is_cuda
    for key, v in cpu.items():
        assert gpu_res.metrics[key] == pytest.approx(v, rel=1e-9, abs=1e-12), key


def realized(geom, sizes, noise=0.0, seed=0):
    """Features and classifier (d = k) whose Grams are exactly W Wᵀ = geom.W_gram, M Mᵀ = geom.H_gram."""
    from nclab.frames import psd_sqrt

    W, M = psd_sqrt(geom.W_gram), psd_sqrt(geom.H_gram)
    y = np.repeat(np.arange(len(sizes)), sizes)
    X = M[y] + noise * np.random.default_rng(seed).normal(size=(len(y), M.shape[1]))
    return X, y, W


@pytest.mark.parametrize("broken", [False, True])
def test_claim_ce_closer_to_seli_than_etf_fails_on_an_etf_classifier(broken):
    sizes = step_sizes(4, 10, 2, 3)
    X, y, W = realized(etf_geometry(sizes) if broken else seli_geometry(sizes), sizes, noise=0.01)
    m = geometry_metrics(stream(X, y, 4), torch.tensor(W), targets_for(sizes))
    assert (m["d_W_SELI"] < m["d_W_ETF"]) is (not broken)


@pytest.mark.parametrize("broken", [False, True])
def test_claim_each_model_nearer_its_own_target_fails_when_swapped(broken):
    sizes = step_sizes(4, 10, 2, 3)
    loss = make_loss("vs", sizes, gamma=1.0)
    refs = targets_for(sizes, loss)
    models = {"CE": refs["SELI"], "VS": refs["CS-SVM"]}
    if broken:  # the two models' classifiers swapped
        models = {"CE": refs["CS-SVM"], "VS": refs["SELI"]}
    m = {name: geometry_metrics(stream(*realized(g, sizes)[:2], 4), torch.tensor(realized(g, sizes)[2]), refs)
         for name, g in models.items()}
    holds = (m["VS"]["d_W_CS-SVM"] < m["CE"]["d_W_CS-SVM"]) and (m["CE"]["d_W_SELI"] < m["VS"]["d_W_SELI"])
    assert holds is (not broken)


@pytest.mark.parametrize("broken", [False, True])
def test_tracker_sees_nc1_fall_only_when_training(broken):
    """The tracked NC1 halves during training; with a zero learning rate it does not."""
    X, y = net_data(seed=1)
    model = Net(seed=1)
    loader = [(X, y)]
    tracker = GeometryTracker(loader, classifier="head", every=20, keys=("nc1",), live=False, log=None)
    opt = torch.optim.Adam(model.parameters(), lr=0.0 if broken else 0.02)
    for _ in range(101):
        tracker.step(model, run="m")
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    h = tracker.history["m"]
    assert h["step"] == [0, 20, 40, 60, 80, 100]
    assert (h["nc1"][-1] < 0.5 * h["nc1"][0]) is (not broken)


def test_tracker_logs_outside_jupyter_and_draws_live_figure():
    X, y = net_data()
    lines = []
    tr = GeometryTracker([(X, y)], classifier="head", every=2, keys=("nc1", "d_W_ETF"), live=False, log=lines.append)
    model = Net()
    for _ in range(5):
        tr.step(model, run="CE")
    assert len(lines) == 3 and lines[0].startswith("[CE] step 0 | nc1 ") and "d_W_ETF" in lines[0]
    live = GeometryTracker([(X, y)], classifier="head", every=1, keys=("nc1",), live=True)
    live.step(model, run="a")
    live.step(model, run="a")
    live.step(model, run="b")
    traces = {t.name: list(t.y) for t in live.figure.data}
    assert set(traces) == {"a: NC1", "b: NC1"} and len(traces["a: NC1"]) == 2
    assert {t.yaxis for t in live.figure.data} == {"y2"}  # NC1 on its own axis, titled
    assert live.figure.layout.yaxis2.title.text and live.figure.layout.yaxis.title.text


def test_readable_metric_names():
    from nclab.probe import readable

    assert readable("d_W_SELI") == "d(W Wᵀ, SELI)" and readable("d_W_CS-SVM") == "d(W Wᵀ, CS-SVM)"
    assert readable("d_H_OF") == "d(M Mᵀ, OF)" and readable("nc1") == "NC1"
    assert readable("nc2_equinorm_H") == "nc2_equinorm_H"
    with pytest.raises(ValueError, match="key=3"):
        readable(3)


def test_probe_ntp_matches_direct_subspace_collapse():
    from nclab.nets import ContextMLP, lm_last_layer
    from nclab.ntp import from_tokens, subspace_collapse, toy_corpus

    tokens = toy_corpus(150, seed=0)
    corpus = from_tokens(tokens, context_length=2)
    index = {w: i for i, w in enumerate(corpus.vocab)}
    ids = torch.tensor([index[w] for w in tokens])
    ctx = torch.stack([ids[:-2], ids[1:-1]], 1)
    lm = ContextMLP(corpus.V, 2, seed=0).double()
    loader = [(ctx[i:i + 64], ids[2:][i:i + 64]) for i in range(0, len(ctx), 64)]
    got = probe_ntp(lm, loader, V=corpus.V, features="features", r=3)
    _, H = lm_last_layer(lm, corpus)
    want = subspace_collapse(H, corpus.support_groups(), 3)
    assert got["m"] == corpus.m
    for key in ("projected", "unprojected", "between_projected"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_classifier_metrics_agree_with_the_streaming_ones():
    from nclab.nc_metrics import classifier_metrics

    k, d = 6, 5
    X, y = data(k, d, n=200)
    W = np.random.default_rng(5).normal(size=(k, d))
    full = geometry_metrics(stream(X, y, k), torch.tensor(W), targets_for(np.bincount(y)))
    alone = classifier_metrics(W, np.bincount(y))
    for key in ("nc2_equinorm_W", "nc2_equiangle_W", "nc2_maxangle_W", "d_W_ETF", "d_W_SELI"):
        assert alone[key] == pytest.approx(full[key], rel=1e-10), key
    with pytest.raises(ValueError, match="sizes has 3 entries"):
        classifier_metrics(W, [1, 2, 3])
