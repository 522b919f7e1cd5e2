"""One-forward-per-sequence MCL analysis (window_probs + vectorized rules) against per-position analysis."""

import numpy as np
import pytest
import torch

from nclab.data import KeyRecallLanguage
from nclab.mcl import HFCausalLM, OracleModel, TinyTransformer, analyze, probability_cache

LANG = KeyRecallLanguage(n_keys=4, n_fillers=8, rho=0.1, seed=0)
X = LANG.sample(3, 24, seed=1)


class PerPosition:
    """The same model without window_probs: analyze falls back to one batched forward per position."""

    def __init__(self, model):
        self.model = model

    def next_token_probs(self, tokens, mask):
        return self.model.next_token_probs(tokens, mask)


@pytest.mark.parametrize("kw", [dict(delta=0.0, short=4), dict(delta=0.05, short=30, div="tv", threshold=0.02),
                                dict(delta=0.0, short=1, div="kl", threshold=0.5)])
def test_windowed_analysis_equals_per_position_analysis(kw):
    model = TinyTransformer(LANG.V, max_len=24, d=16, heads=2, layers=1, seed=0)
    for sched in (range(1, 24), [2, 5, 9]):
        a = analyze(model, X, sched, start=3, **kw)
        b = analyze(PerPosition(model), X, sched, start=3, **kw)
        for key in ("mcl", "damcl", "seq", "pos"):
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)
        assert len(X) < a["forwards"].sum() <= len(X) * (model.window_calls(X.shape[1]) + 1) < b["forwards"].sum()


def test_windowed_probability_cache_equals_per_position_forwards():
    for model, tol in ((TinyTransformer(LANG.V, max_len=24, d=16, heads=2, layers=1, seed=0), 1e-6),
                       (OracleModel(LANG), 0.0)):
        a = probability_cache(model, X, start=3, truth=LANG.true_min_context)
        b = probability_cache(model, X, start=3, truth=LANG.true_min_context, naive=True)
        assert a["seq"] == b["seq"] and a["pos"] == b["pos"] and a["targets"] == b["targets"]
        assert a["truth"] == b["truth"] and len(a["probs"]) == 3 * 21
        for Pa, Pb, t in zip(a["probs"], b["probs"], a["pos"], strict=True):
            assert Pa.shape == Pb.shape == (t, LANG.V)  # lengths 1..t, the full prefix last
            np.testing.assert_allclose(Pa, Pb, atol=tol, rtol=0)
    assert probability_cache(OracleModel(LANG), X, start=24)["probs"] == []  # no position at or after start


def test_hf_window_probs_equal_per_truncation_forwards():
    transformers = pytest.importorskip("transformers", reason="optional extra 'hf' not installed")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=LANG.V, n_positions=24, n_embd=16, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    hf = HFCausalLM(transformers.GPT2LMHeadModel(cfg))
    seq = X[0]
    W = hf.window_probs(seq, [1, 3, 24])
    for t in (4, 11, 23):
        for j, ell in enumerate([1, 3, 24]):
            mask = (np.arange(t) >= t - min(ell, t))[None]
            np.testing.assert_allclose(W[j, t - 1], hf.next_token_probs(seq[None, :t], mask)[0], atol=1e-6)
    a = analyze(hf, X[:1], range(1, 24), start=20, delta=0.0)
    b = analyze(PerPosition(hf), X[:1], range(1, 24), start=20, delta=0.0)
    np.testing.assert_array_equal(a["mcl"], b["mcl"])
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)


def test_blocked_window_probs_equal_one_block_of_all_starts():
    model = TinyTransformer(LANG.V, max_len=24, d=16, heads=2, layers=1, seed=1)
    seq, lengths = X[0], [1, 2, 5, 11, 24]
    one = model.window_probs(seq, lengths, block=len(seq))  # every start in one forward over the whole sequence
    for block in (1, 5, 16):
        np.testing.assert_allclose(model.window_probs(seq, lengths, block=block), one, atol=1e-6)
    assert model.window_calls(24) == 2
