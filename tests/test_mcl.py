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
    damcl_from_probs,
    decode_accuracy,
    detector_threshold,
    divergence,
    position_probs,
    probability_cache,
    score_from_probs,
    train_transformer,
    truncated_probs,
    truncation_batch,
)

LANG = KeyRecallLanguage(n_keys=4, n_fillers=10, rho=0.1, seed=0)
X = LANG.sample(6, 32, seed=1)


def test_oracle_mcl_on_a_hand_built_sequence():
    # key 2 at position 0, fillers, a recall marker at position 9: the token after it (position 10) needs the
    # last 10 tokens (back to the key); every other position needs 1 — values written down by hand
    lang = KeyRecallLanguage(n_keys=4, n_fillers=10, rho=0.1, seed=0)
    seq = np.array([2] + [lang.K + 1 + (i % 10) for i in range(8)] + [lang.marker, 2] + [lang.K + 1] * 3)
    res = analyze(OracleModel(lang), seq[None], range(1, seq.size), start=1, delta=0.0)
    mcl = dict(zip(res["pos"].tolist(), res["mcl"].tolist(), strict=True))
    assert mcl[10] == 10
    assert res["damcl"][res["pos"] == 10][0] == 10


def test_short_context_share_fails_for_a_model_that_needs_the_full_context():
    class FullOnly:  # confident only when nothing is masked: every MCL is the full length
        V = LANG.V

        def next_token_probs(self, tokens, mask):
            p = OracleModel(LANG).next_token_probs(tokens, mask)
            full = np.asarray(mask).all(1)
            p[~full] = 1.0 / self.V
            return p
    res = analyze(FullOnly(), X, range(1, 32), start=8)
    ev = res["mcl"] > 0
    assert ev.sum() > 20 and np.mean(res["mcl"][ev] <= 4) < 0.75  # the notebook's claim fails
    good = analyze(OracleModel(LANG), X, range(1, 32), start=8)
    assert np.mean(good["mcl"][good["mcl"] > 0] <= 4) >= 0.75


def test_damcl_and_score_from_probs():
    P = np.array([[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1], [0.9, 0.05, 0.03, 0.02], [0.9, 0.05, 0.03, 0.02]])
    lengths = [1, 4, 16, 40]
    assert damcl_from_probs(P, lengths, threshold=0.0) == 16  # first row equal to the full context
    assert damcl_from_probs(P, lengths, threshold=1.0) == 1
    jsd = divergence(P[1], P[3])[0]
    assert damcl_from_probs(P, lengths, threshold=jsd + 1e-12) == 4
    assert score_from_probs(P, lengths, short=4) == pytest.approx(jsd)
    assert score_from_probs(P, lengths, short=1) == pytest.approx(divergence(P[0], P[3])[0])
    assert score_from_probs(P, lengths, short=1, div="tv") == pytest.approx(0.65)
    with pytest.raises(ValueError, match="P must hold probabilities: it has NaN"):
        damcl_from_probs(np.full((2, 3), np.nan), [1, 2])
    with pytest.raises(ValueError, match="one row per length"):
        score_from_probs(P, [1, 2], short=1)


def test_bad_inputs_give_value_errors_naming_the_parameter():
    with pytest.raises(ValueError, match="whole numbers"):
        check_schedule([1.5, 2.7])
    with pytest.raises(ValueError, match="p must hold probabilities: it has a negative entry"):
        divergence(np.array([-1.0, 2.0]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="heads=3 must divide the width d=64"):
        TinyTransformer(10, heads=3)
    tf = TinyTransformer(10, max_len=8, d=8, heads=2)
    with pytest.raises(ValueError, match="max_len=8"):
        train_transformer(tf, np.zeros((3, 9), dtype=int), steps=1, progress=False)
    with pytest.raises(ValueError, match="V=10"):
        train_transformer(tf, np.full((3, 5), 10), steps=1, progress=False)


def test_batched_and_naive_agree_exactly_and_use_fewer_forwards():
    for model in (OracleModel(LANG), TinyTransformer(LANG.V, max_len=32, d=32, seed=0)):
        a = analyze(model, X[:3], range(1, 32), start=4)
        b = analyze(model, X[:3], range(1, 32), start=4, naive=True)
        assert np.array_equal(a["mcl"], b["mcl"])
        # the oracle: one window_probs call per sequence; the transformer: the full context + the blocks it needed
        calls = model.window_calls(X.shape[1]) + 1 if hasattr(model, "block_probs") else 1
        assert 3 <= a["forwards"].sum() <= 3 * calls and a["forwards"].sum() < b["forwards"].sum()


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
    with pytest.raises(ValueError, match="kind='hellinger'"):
        divergence(p, q, "hellinger")


def test_boosting_helps_a_model_that_underuses_long_context():
    res = analyze(OracleModel(LANG), X, range(1, 32), start=4)
    truth = [LANG.true_min_context(X[i], t) for i, t in zip(res["seq"], res["pos"], strict=True)]
    long = [(i, t) for i, t, tr in zip(res["seq"], res["pos"], truth, strict=True) if tr > 4]
    weak = OracleModel(LANG, underuse=0.7, short=4)
    r0 = decode_accuracy(weak, X, long, short=4, alpha=0.0, threshold=0.01)
    r2 = decode_accuracy(weak, X, long, short=4, alpha=2.0, threshold=0.01)
    assert r0["plain"] == r0["boosted"] and r2["boosted"] > r2["plain"] + 0.1
    assert (r2["boosted"] - r2["plain"]) / r2["gain_se"] > 3
    # broken input: a model that never uses long context (β = 1) gives boosting nothing to amplify
    none = decode_accuracy(OracleModel(LANG, underuse=1.0, short=4), X, long, short=4, alpha=2.0, threshold=0.01)
    assert none["boosted"] == none["plain"] and not (none["gain_se"] > 0)


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


def _tiny_gpt2(transformers):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=LANG.V, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0, initializer_range=0.5)
    return HFCausalLM(transformers.GPT2LMHeadModel(cfg))


def test_hf_adapter_matches_explicit_truncation():
    transformers = pytest.importorskip("transformers", reason="optional extra 'hf' not installed")
    hf = _tiny_gpt2(transformers)
    P, lengths = position_probs(hf, X[0][:12], [1, 4])
    assert P.shape == (3, LANG.V) and np.allclose(P.sum(1), 1)
    explicit = np.stack([truncated_probs(hf.model, X[0][:12], ell) for ell in lengths])
    np.testing.assert_allclose(P, explicit, atol=1e-5)
    assert np.abs(P[0] - P[-1]).max() > 1e-2  # the context length matters, so the check has teeth
    a = analyze(hf, X[:1], range(1, 32), start=28, delta=0.0)
    b = analyze(hf, X[:1], range(1, 32), start=28, delta=0.0, naive=True)
    assert np.array_equal(a["mcl"], b["mcl"])


def test_hf_adapter_that_ignores_the_mask_fails_the_check():
    transformers = pytest.importorskip("transformers", reason="optional extra 'hf' not installed")

    class IgnoresMask(HFCausalLM):
        def next_token_probs(self, tokens, mask):
            return super().next_token_probs(tokens, np.ones_like(np.asarray(mask)))
    bad = IgnoresMask(_tiny_gpt2(transformers).model)
    P, lengths = position_probs(bad, X[0][:12], [1, 4])
    explicit = np.stack([truncated_probs(bad.model, X[0][:12], ell) for ell in lengths])
    assert np.abs(P - explicit).max() > 1e-5  # the notebook's hf_adapter_truncates claim fails


def test_detector_threshold_sets_the_false_positive_rate_decode_accuracy_sees():
    tf = TinyTransformer(LANG.V, max_len=32, d=16, heads=2, layers=1, seed=0)
    cal = [(i, t) for i in range(len(X)) for t in range(6, 32) if LANG.true_min_context(X[i], t) <= 4]
    thr = detector_threshold(tf, X, cal, short=4, fpr=0.2)
    fired = decode_accuracy(tf, X, cal, short=4, alpha=2.0, threshold=thr, samples=2)["fired"]
    assert 0.1 <= fired <= 0.2 + 1 / len(cal)  # the quantile's rate, measured through the decoder's own detector
    assert decode_accuracy(tf, X, cal, short=4, alpha=2.0, threshold=0.0, samples=2)["fired"] > 0.9
    with pytest.raises(ValueError, match="positions is empty"):
        detector_threshold(tf, X, [], short=4)
    with pytest.raises(ValueError, match="fpr=0"):
        detector_threshold(tf, X, cal, short=4, fpr=0)


def test_sampled_sequences_follow_the_language():
    lang = KeyRecallLanguage(n_keys=4, n_fillers=6, rho=0.1, peak=0.7, seed=3)
    S = lang.sample(3000, 20, seed=5)
    assert np.array_equal(S, lang.sample(3000, 20, seed=5)) and not np.array_equal(S, lang.sample(3000, 20, seed=6))
    assert np.all(S[:, 0] < lang.K)
    prev, nxt = S[:, :-1].ravel(), S[:, 1:].ravel()
    after = prev == lang.marker
    assert np.all(nxt[after] == np.repeat(S[:, :1], 19, 1).ravel()[after])  # "?" is followed by the key
    for tok in range(lang.V):  # the filler after each non-marker token: frequencies ≈ the bigram table A
        fill = nxt[(prev == tok) & (nxt > lang.K)] - lang.K - 1
        if tok == lang.marker or fill.size < 500:
            continue
        freq = np.bincount(fill, minlength=lang.F) / fill.size
        assert np.max(np.abs(freq - lang.A[tok])) < 5 / np.sqrt(fill.size), tok
    assert abs(np.mean(nxt[~after] == lang.marker) - 0.1 * 18 / 19) < 0.01  # markers at rate ρ (not the last step)
