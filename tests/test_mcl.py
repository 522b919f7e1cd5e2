import numpy as np
import pytest
import torch

from nclab.data import KeyRecallLanguage
from nclab.mcl import (
    HFCausalLM,
    OracleModel,
    TinyTransformer,
    analyze,
    analyze_position,
    boosted_probs,
    check_schedule,
    decode_accuracy,
    divergence,
    position_probs,
    probability_cache,
    train_transformer,
    truncation_batch,
)

LANG = KeyRecallLanguage(n_keys=4, n_fillers=10, rho=0.1, seed=0)
X = LANG.sample(6, 32, seed=1)


def test_oracle_mcl_equals_planted_ground_truth():
    res = analyze(OracleModel(LANG), X, range(1, 32), start=4)
    truth = np.array([LANG.true_min_context(X[i], t) for i, t in zip(res["seq"], res["pos"], strict=True)])
    ev = res["mcl"] > 0
    assert ev.sum() > 50 and np.array_equal(res["mcl"][ev], truth[ev])
    assert (truth > 1).any()  # there are planted long-range positions


def test_batched_and_naive_agree_exactly_and_use_fewer_forwards():
    for model in (OracleModel(LANG), TinyTransformer(LANG.V, max_len=32, d=32, seed=0)):
        a = analyze(model, X[:3], range(1, 32), start=4)
        b = analyze(model, X[:3], range(1, 32), start=4, naive=True)
        assert np.array_equal(a["mcl"], b["mcl"])
        assert a["forwards"].sum() == 3 < b["forwards"].sum()


def test_window_probs_equal_per_position_truncation():
    tf = TinyTransformer(LANG.V, max_len=32, d=32, seed=1)
    seq = X[0]
    W = tf.window_probs(seq, [1, 3, 32])
    for t in (5, 17, 31):
        for j, ell in enumerate([1, 3, 32]):
            mask = (np.arange(t) >= t - min(ell, t))[None]
            np.testing.assert_allclose(W[j, t - 1], tf.next_token_probs(seq[None, :t], mask)[0], atol=1e-6)
    np.testing.assert_allclose(OracleModel(LANG).window_probs(seq, [2])[0, 10],
                               LANG.next_probs(np.where(np.arange(11) >= 9, seq[:11], -1)[None])[0])


def test_masking_preserves_positions_and_hides_tokens():
    tokens, mask, lengths = truncation_batch(X[0][:10], [2, 5])
    assert lengths == [2, 5, 10] and mask.sum(1).tolist() == [2, 5, 10]
    tf = TinyTransformer(LANG.V, max_len=32, d=32, seed=0)
    other = tokens.copy()
    other[:, :3] = 0  # change hidden tokens: the ℓ = 2 and ℓ = 5 predictions must not move
    p1, p2 = tf.next_token_probs(tokens, mask), tf.next_token_probs(other, mask)
    np.testing.assert_allclose(p1[:2], p2[:2], atol=1e-7)
    assert not np.allclose(p1[2], p2[2])


def test_divergences_and_boosting():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.2, 0.7])
    assert divergence(p, p)[0] == pytest.approx(0) and 0 < divergence(p, q)[0] <= 1
    assert divergence(p, q, "tv")[0] == pytest.approx(0.6)
    assert divergence(p, q, "kl")[0] == pytest.approx(np.sum(p * np.log(p / q)))
    np.testing.assert_allclose(boosted_probs(p, q, 0.0), p)
    assert boosted_probs(p, q, 2.0)[0] > p[0]
    with pytest.raises(ValueError, match="divergence='hellinger'"):
        divergence(p, q, "hellinger")


def test_boosting_helps_a_model_that_underuses_long_context():
    res = analyze(OracleModel(LANG), X, range(1, 32), start=4)
    truth = [LANG.true_min_context(X[i], t) for i, t in zip(res["seq"], res["pos"], strict=True)]
    long = [(i, t) for i, t, tr in zip(res["seq"], res["pos"], truth, strict=True) if tr > 4]
    weak = OracleModel(LANG, underuse=0.7, short=4)
    r0 = decode_accuracy(weak, X, long, short=4, alpha=0.0, threshold=0.01)
    r2 = decode_accuracy(weak, X, long, short=4, alpha=2.0, threshold=0.01)
    assert r0["plain"] == r0["boosted"] and r2["boosted"] > r2["plain"] + 0.1


def test_transformer_training_lowers_loss_and_cache_shapes():
    tf = TinyTransformer(LANG.V, max_len=32, d=32, seed=0)
    losses = train_transformer(tf, LANG.sample(200, 32, seed=3), steps=30, batch=16, progress=False)
    assert losses[-1] < losses[0]
    cache = probability_cache(OracleModel(LANG), X[:1], start=30, truth=LANG.true_min_context)
    assert cache["probs"][0].shape == (30, LANG.V) and len(cache["targets"]) == 2


@pytest.mark.parametrize("schedule, match", [([], "empty"), ([3, 2], "strictly increasing"), ([0, 1], "positive"),
                                             ([50], "only 10 tokens")])
def test_bad_schedules(schedule, match):
    with pytest.raises(ValueError, match=match):
        check_schedule(schedule, 10)


def test_bad_delta_and_parameters():
    with pytest.raises(ValueError, match="delta=1.5"):
        analyze_position(OracleModel(LANG), X[0][:10], int(X[0][10]), [1, 2], delta=1.5)
    with pytest.raises(ValueError, match="rho=1"):
        KeyRecallLanguage(rho=1.0)
    with pytest.raises(ValueError, match="last column"):
        LANG.next_probs(np.array([[1, 2, -1]]))


def test_hf_adapter_on_tiny_random_gpt2():
    transformers = pytest.importorskip("transformers", reason="optional extra 'hf' not installed")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=LANG.V, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    hf = HFCausalLM(transformers.GPT2LMHeadModel(cfg))
    P, lengths = position_probs(hf, X[0][:12], [1, 4])
    assert P.shape == (3, LANG.V) and np.allclose(P.sum(1), 1)
    one = hf.next_token_probs(X[0][None, :12], (np.arange(12) >= 8)[None])[0]
    np.testing.assert_allclose(P[1], one, atol=1e-6)
    a = analyze(hf, X[:1], range(1, 32), start=28, delta=0.0)
    b = analyze(hf, X[:1], range(1, 32), start=28, delta=0.0, naive=True)
    assert np.array_equal(a["mcl"], b["mcl"])
