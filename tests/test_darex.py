import numpy as np
import pytest
import torch
from torch import nn

from nclab.darex import (
    AdamR,
    activation_prune,
    apply_delta,
    dare,
    extract_delta,
    from_sparse,
    layer_inputs,
    local_encoder,
    magnitude_prune,
    output_change,
    output_change_mc,
    output_change_stats,
    per_layer_q,
    per_layer_q_e,
    q_e,
    q_star,
    recommend,
    select_q,
    storage_bytes,
    to_sparse,
)
from nclab.darex_pipeline import (
    METHODS,
    RANDOM_METHODS,
    accuracy,
    evaluate_methods,
    paired_gain,
    q_grid,
    transfer_pipeline,
)


def _delta(seed=0, shape=(50, 40)):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(shape, generator=g, dtype=torch.float64), "b.weight": torch.randn(7, generator=g,
                                                                                                     dtype=torch.float64)}


def test_dare_is_unbiased_within_monte_carlo_error():
    d = _delta()
    draws = [dare(d, 0.9, seed=s)["a.weight"] for s in range(400)]
    mean = torch.stack(draws).mean(0)
    se = d["a.weight"].abs() * np.sqrt(0.9 / 0.1 / 400)  # sd of one draw: |Δ|·sqrt(p/(1−p))
    assert float(((mean - d["a.weight"]).abs() / se.clamp(min=1e-12)).mean()) < 1.0  # ≈ 0.8 for a normal


def test_dare_q_equal_one_minus_p_equals_dare_and_seeded():
    d = _delta()
    a, b = dare(d, 0.7, seed=3), dare(d, 0.7, q=0.3, seed=3)
    for k in d:
        assert torch.allclose(a[k], b[k])
    assert torch.equal(dare(d, 0.7, seed=3)["a.weight"], a["a.weight"])
    assert not torch.equal(dare(d, 0.7, seed=4)["a.weight"], a["a.weight"])
    kept = (a["a.weight"] != 0).double().mean()
    assert abs(float(kept) - 0.3) < 0.05
    per = dare(d, 0.7, q={"a.weight": 0.5, "b.weight": 1.0}, seed=3)
    assert torch.allclose(per["a.weight"] * 0.5, a["a.weight"] * 0.3)


def test_importance_pruning_rates_are_exact():
    d = _delta()
    for p in (0.5, 0.9, 0.99):
        m = magnitude_prune(d, p)
        assert int((m["a.weight"] != 0).sum()) == round((1 - p) * 2000)
        kept = m["a.weight"][m["a.weight"] != 0].abs().min()
        assert float(kept) >= float(d["a.weight"].abs().flatten().sort().values[-round((1 - p) * 2000)]) - 1e-15
    norms = {"a.weight": torch.linspace(0.1, 10, 40, dtype=torch.float64)}
    act = activation_prune(d, 0.9, norms)
    assert int((act["a.weight"] != 0).sum()) == 200
    assert (act["a.weight"][:, -5:] != 0).sum() > (act["a.weight"][:, :5] != 0).sum()  # large-input columns kept
    with pytest.raises(ValueError, match="input_norms"):
        activation_prune(d, 0.9, {"a.weight": torch.ones(3)})


def test_sparse_round_trip_exact_and_smaller():
    pruned = dare(_delta(), 0.99, seed=0)
    sparse = to_sparse(pruned)
    back = from_sparse(sparse)
    assert all(torch.equal(back[k], pruned[k]) for k in pruned)
    assert storage_bytes(sparse) < 0.05 * storage_bytes(pruned)


def test_variance_formula_matches_monte_carlo():
    rng = np.random.default_rng(0)
    D, x = rng.normal(0.01, 0.02, (4, 100)), rng.normal(1, 0.3, 100)
    mean, var = output_change_stats(D, x, 0.95, 0.2)
    mc_mean, mc_var = output_change_mc(D, x, 0.95, 0.2, draws=8000)
    np.testing.assert_allclose(mc_var.sum(), var.sum(), rtol=0.06)
    assert np.all(np.abs(mc_mean - mean) < 5 * np.sqrt(var / 8000))
    m0, _ = output_change_stats(D, x, 0.95)
    np.testing.assert_allclose(m0, 0, atol=1e-15)  # DARE is unbiased


def test_monte_carlo_in_blocks_is_one_draw_of_all_masks():
    rng = np.random.default_rng(1)
    D, x = rng.normal(0.01, 0.02, (3, 50)), rng.normal(1, 0.3, 50)
    masks = np.random.default_rng(7).random((2500, 3, 50)) >= 0.9  # every mask in one call, as the formula reads
    dh = ((masks / 0.3 - 1) * D) @ x
    mc_mean, mc_var = output_change_mc(D, x, 0.9, 0.3, draws=2500, seed=7)  # 2500 draws: three blocks
    np.testing.assert_allclose(mc_mean, dh.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mc_var, dh.var(0, ddof=1), rtol=1e-12)


def test_q_star_minimizes_expected_squared_change():
    rng = np.random.default_rng(1)
    D, x = rng.normal(0.02, 0.01, (5, 80)), rng.normal(1, 0.5, 80)

    def risk(q):
        m, v = output_change_stats(D, x, 0.99, q)
        return float(np.sum(m**2 + v))
    qs = q_star(D, x, 0.99)
    assert 0.01 < qs < 1
    assert risk(qs) <= min(risk(q) for q in np.linspace(0.011, 1, 500)) + 1e-12


def test_adamr_zero_reg_is_adam_and_reg_pulls_to_pretrained():
    def run(reg):
        torch.manual_seed(0)
        lin = nn.Linear(5, 3).double()
        pre = [p.detach().clone() for p in lin.parameters()]
        opt = AdamR(lin.parameters(), pre, lr=1e-2, reg=reg) if reg is not None else torch.optim.Adam(
            lin.parameters(), lr=1e-2)
        x, y = torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))
        for _ in range(50):
            loss = nn.functional.cross_entropy(lin(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([(p - q).flatten() for p, q in zip(lin.parameters(), pre, strict=True)])
    assert torch.equal(run(0.0), run(None))
    assert run(10.0).norm() < 0.5 * run(0.0).norm()
    with pytest.raises(ValueError, match="mode="):
        AdamR(nn.Linear(2, 2).parameters(), list(nn.Linear(2, 2).parameters()), mode="l3")
    with pytest.raises(ValueError, match="pre_params"):
        AdamR(nn.Linear(2, 2).parameters(), [torch.zeros(3)])


def test_extract_apply_and_mismatched_models():
    a, b = nn.Sequential(nn.Linear(4, 3)), nn.Sequential(nn.Linear(4, 3))
    d = extract_delta(a, b)
    rebuilt = apply_delta(a, d)
    assert all(torch.allclose(rebuilt[k], v) for k, v in b.state_dict().items())
    with pytest.raises(ValueError, match="shape"):
        extract_delta(a, nn.Sequential(nn.Linear(5, 3)))
    with pytest.raises(ValueError, match="different parameters"):
        extract_delta(a, nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="Module or a state dict"):
        extract_delta(a, 42)


def test_q_selection_and_layer_inputs():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    batch = torch.randn(8, 6, dtype=torch.float64)
    ins = layer_inputs(model, state, batch)
    assert set(ins) == {"0.weight", "2.weight"} and ins["0.weight"].shape == (8, 6)
    qs = per_layer_q({"0.weight": torch.randn(5, 6, dtype=torch.float64)}, ins, 0.9)
    assert qs["0.weight"] > 0.1
    best, scores = select_q(lambda q: -(q - 0.3) ** 2, [0.1, 0.3, 0.5])
    assert best == 0.3 and len(scores) == 3
    with torch.no_grad():
        ref = model(batch)
    assert output_change(model, state, ref, batch) == pytest.approx(0, abs=1e-12)
    assert output_change(model, state, ref, batch, metric="abs") == 0
    assert q_grid(0.99)[0] > 0.01 and q_grid(0.99)[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="metric="):
        output_change(model, state, ref, batch, metric="l7")


@pytest.mark.parametrize("p, q, match", [(1.0, None, "p=1.0"), (-0.1, None, "p=-0.1"), (0.5, 0.0, "q=0.0"),
                                         (0.5, -1.0, "q=-1.0")])
def test_bad_inputs(p, q, match):
    with pytest.raises(ValueError, match=match):
        dare(_delta(), p, q)


def test_recommend_paths():
    assert "plain DARE" in recommend(0.5, "small", True, False)
    assert "labeled" in recommend(0.99, "small", True, False)
    assert "unlabeled" in recommend(0.99, "small", False, True)
    assert "importance" in recommend(0.99, "large", True, False)
    with pytest.raises(ValueError, match="delta_scale"):
        recommend(0.9, "huge", True, True)


def test_q_e_follows_the_official_formula():
    rng = np.random.default_rng(2)
    D, X = rng.normal(0.0, 0.01, (6, 30)), rng.normal(1.0, 0.5, (8, 30))
    p, eta, gamma = 0.95, 0.45, 0.95
    c = D * X.mean(0)[None, :]
    phi = (1 - 2 * p) / np.log((1 - p) / p)
    grid = np.arange(1 - p, 0.9995, 0.001)
    best = []
    for i in range(6):  # the per-neuron search written out as a loop (independent of the vectorized one)
        obj = [abs(eta * (1 - (1 - p) / q) * c[i].sum() + eta**2 * phi * (c[i] ** 2).sum() / (4 * q * q)
                   + np.log(2 / (1 - gamma))) for q in grid]
        best.append(grid[int(np.argmin(obj))])
    assert q_e(D, X, p) == pytest.approx(np.mean(best), abs=1e-12)
    assert 1 - p <= q_e(D, X, p) <= 0.999
    qs = per_layer_q_e({"w": torch.as_tensor(D), "b": torch.zeros(6)}, {"w": torch.as_tensor(X)}, p)
    assert qs["w"] == pytest.approx(q_e(D, X, p)) and qs["b"] == pytest.approx(1 - p)
    with pytest.raises(ValueError, match="p=0.3 is out of range for q_e"):
        q_e(D, X, 0.3)


def test_adamr_stable_scaling_is_official_form():
    lin = nn.Linear(4, 2).double()
    pre = [p.detach().clone() for p in lin.parameters()]
    opt = AdamR(lin.parameters(), pre, lr=1e-2, reg=1.0, stable=True)
    assert opt._scale() == 0.0  # no v̂ yet: no decay on the first step
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(lin(x), y).backward()
        opt.step()
    v = torch.cat([opt.state[p]["exp_avg_sq"].flatten() / (1 - 0.999 ** float(opt.state[p]["step"]))
                   for p in lin.parameters()])
    assert opt._scale() == pytest.approx(float(1 / v.mean().sqrt()))


def test_transfer_pipeline_anchors_the_new_head_at_its_own_init():
    P = transfer_pipeline(seed=0, pre_epochs=5, ft_epochs=2, hidden=16, ft_lr=1e-3, reg=1e3)
    # lr·λ = 1 resets every weight to its anchor before each Adam step (which moves it by ≈ lr): the backbone
    # stays at θ_pre, the head at its fresh initialization — far from the old task's head
    assert max(float((P["ft"][k] - P["pre"][k]).abs().max()) for k in P["delta"]) < 3e-3
    assert float((P["ft"]["classifier.weight"] - P["pre"]["classifier.weight"]).abs().max()) > 0.05
    assert set(P["delta"]) and not any(k.startswith("classifier") or k.endswith("bias") for k in P["delta"])
    n = len(P["train"]) + len(P["val"]) + len(P["test"])
    assert len(set(P["train"]) | set(P["val"]) | set(P["test"])) == n  # disjoint splits
    assert int(P["y"][torch.as_tensor(P["test"])].max()) <= 4


def test_transfer_pipeline_reuses_pretraining_with_identical_results():
    from nclab import darex_pipeline

    darex_pipeline._PRETRAINED.clear()
    first = transfer_pipeline(seed=2, pre_epochs=8, ft_epochs=2, hidden=16)
    assert len(darex_pipeline._PRETRAINED) == 1
    after_fresh = torch.rand(3)  # torch's global RNG as the pipeline left it
    again = transfer_pipeline(seed=2, pre_epochs=8, ft_epochs=2, hidden=16)  # pre-training from the cache
    after_cached = torch.rand(3)
    assert torch.equal(after_fresh, after_cached)
    for part in ("pre", "ft", "delta"):
        assert all(torch.equal(first[part][k], again[part][k]) for k in first[part])
    first["pre"][next(iter(first["pre"]))].add_(1.0)  # a caller editing its weights leaves the cache alone
    third = transfer_pipeline(seed=2, pre_epochs=8, ft_epochs=2, hidden=16)
    assert all(torch.equal(again["pre"][k], third["pre"][k]) for k in again["pre"])
    other = transfer_pipeline(seed=2, pre_epochs=9, ft_epochs=2, hidden=16)  # another key: trained afresh
    assert len(darex_pipeline._PRETRAINED) == 2
    assert not torch.equal(other["pre"]["features.0.weight"], first["pre"]["features.0.weight"])


def test_evaluate_methods_small_pipeline():
    P = transfer_pipeline(seed=1, pre_epochs=20, ft_epochs=5, hidden=32)
    res = evaluate_methods(P, [0, 0.9], seeds=1, grid_points=4)
    assert evaluate_methods(P, [0, 0.9], seeds=1, grid_points=4, progress=True) == res  # bars change nothing
    assert set(METHODS) <= set(res) and res["p"] == [0, 0.9]
    for name in METHODS:
        assert res[name][0] == res["fine-tuned"] and 0 <= res[name][1] <= 1
    assert res["fine-tuned"] > res["no delta"]  # fine-tuning the backbone helps on the new task
    assert 0.1 < res["q_labeled"][1] <= 1 and 0.1 < res["q_unlabeled"][1] <= 1
    with pytest.raises(ValueError, match="p=1.5"):
        evaluate_methods(P, [1.5])


def test_evaluate_methods_scores_random_methods_on_shared_masks():
    P = transfer_pipeline(seed=1, pre_epochs=20, ft_epochs=5, hidden=32)
    res = evaluate_methods(P, [0.9], seeds=1, grid_points=4, test_masks=5)
    te = torch.as_tensor(P["test"])
    for name in RANDOM_METHODS:
        assert len(res["masks"][name][0]) == 5 and res[name][0] == pytest.approx(np.mean(res["masks"][name][0]))
    # mask s of DARE is dare(Δ, p, seed=s), scored on test — recomputed here independently of evaluate_methods
    call = torch.func.functional_call
    logits = [call(P["model"], apply_delta(P["base"], dare(P["delta"], 0.9, seed=s)), (P["X"][te],)) for s in range(5)]
    manual = [float((z.argmax(1) == P["y"][te]).double().mean()) for z in logits]
    np.testing.assert_allclose(res["masks"]["DARE"][0], manual)


def test_paired_gain_and_the_darex_claim_fails_on_a_broken_input():
    from nclab.claims import Claims

    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.6, 20)  # mask-to-mask spread like DARE's at p = 0.99
    gain, se = paired_gain(base + 0.1 + rng.normal(0, 0.02, 20), base)
    assert gain == pytest.approx(0.1, abs=0.02) and se == pytest.approx(0.02 / np.sqrt(20), rel=0.5)
    assert bool(Claims("t").check("darex_q_recovers", gain / se, 3.0, ">"))
    # broken input: "DAREx-q" scored with DARE's own q = 1 − p is DARE itself on the same masks → 0 / 0, fails
    P = transfer_pipeline(seed=1, pre_epochs=20, ft_epochs=5, hidden=32)
    te = torch.as_tensor(P["test"])
    accs = {q: [accuracy(P["model"], apply_delta(P["base"], dare(P["delta"], 0.99, q, seed=s)), P["X"][te], P["y"][te])
                for s in range(6)] for q in (None, 0.01)}
    with np.errstate(invalid="ignore", divide="ignore"):
        g, s_ = paired_gain(accs[0.01], accs[None])
        assert g == 0 and not Claims("t").check("darex_q_recovers", np.float64(g) / s_, 3.0, ">")
    with pytest.raises(ValueError, match="equal-length"):
        paired_gain(accs[None], accs[None][:-1])


def test_local_encoder_on_empty_or_missing_folder(tmp_path):
    pytest.importorskip("transformers")
    model, reason = local_encoder(str(tmp_path))
    assert model is None and "no saved model" in reason
    model, reason = local_encoder(str(tmp_path / "missing"))
    assert model is None and "not a folder" in reason
