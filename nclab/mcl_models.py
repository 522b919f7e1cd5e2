"""MCL models behind one interface, ``next_token_probs(tokens B×T, mask B×T) → B×V``: the exact oracle of the
key-recall language, a tiny transformer (+ trainer) and a local Hugging Face causal LM; each also gives
``window_probs`` (all positions × all truncation lengths in one forward per sequence)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nclab._checks import integer, real
from nclab._threads import configure_threads

__all__ = ["OracleModel", "TinyTransformer", "train_transformer", "HFCausalLM", "truncated_probs"]

configure_threads()


class OracleModel:
    """(a) The exact conditional distribution of a ``KeyRecallLanguage`` for any truncation.
    ``underuse`` = β mixes in the short-context distribution (last ``short`` tokens) with weight β: a model
    that under-uses long context, the failure mode boosted decoding targets (β = 0: exact)."""

    def __init__(self, language, underuse: float = 0.0, short: int = 4):
        self.language = language
        self.beta = real("underuse", underuse, 0.0, 1.0)
        self.short = integer("short", short, 1)
        self.V = language.V

    def next_token_probs(self, tokens, mask) -> np.ndarray:
        tokens, mask = np.asarray(tokens), np.asarray(mask, dtype=bool)
        p = self.language.next_probs(np.where(mask, tokens, -1))
        if self.beta > 0:
            m_short = mask.copy()
            m_short[:, : max(0, tokens.shape[1] - self.short)] = False
            p = (1 - self.beta) * p + self.beta * self.language.next_probs(np.where(m_short, tokens, -1))
        return p


    def window_probs(self, seq, lengths) -> np.ndarray:
        """p(token q+1 | the last ℓ tokens up to q) for every position q and every ℓ: (L×T×V)."""
        seq = np.asarray(seq)
        T = seq.size
        out = np.zeros((len(lengths), T, self.V))
        for q in range(T):
            starts = [max(0, q - ell + 1) for ell in lengths]
            mask = np.arange(q + 1)[None, :] >= np.array(starts)[:, None]
            out[:, q] = self.next_token_probs(np.repeat(seq[None, : q + 1], len(lengths), 0), mask)
        return out


class TinyTransformer(nn.Module):
    """(b) A small causal transformer with learned absolute positions; truncation = attention masking."""

    def __init__(self, V: int, max_len: int = 128, d: int = 64, heads: int = 4, layers: int = 2, seed: int = 0):
        super().__init__()
        d, heads = integer("d", d, 1, 1 << 14), integer("heads", heads, 1)
        layers = integer("layers", layers, 1, 64)
        if d % heads:
            raise ValueError(f"heads={heads} must divide the width d={d} (each head gets d/heads dimensions)")
        self.V, self.max_len = integer("V", V, 2), integer("max_len", max_len, 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(integer("seed", seed, 0))
            self.tok = nn.Embedding(integer("V", V, 2), d)
            self.pos = nn.Embedding(integer("max_len", max_len, 2), d)
            layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.out = nn.Linear(d, V)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
        """Logits (B×T×V) of tokens at absolute positions offset … offset + T − 1; ``mask`` (B×T) hides keys."""
        T = tokens.shape[1]
        h = self.tok(tokens) + self.pos(torch.arange(offset, offset + T, device=tokens.device))[None]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tokens.device), 1)
        pad = None if mask is None else ~mask.bool()
        return self.out(self.body(h, mask=causal, src_key_padding_mask=pad))

    @torch.no_grad()
    def next_token_probs(self, tokens, mask) -> np.ndarray:
        t = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
        m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        return torch.softmax(self(t, m)[:, -1].double(), -1).numpy()

    window_block = 16  # start positions per forward in window_probs

    def window_calls(self, T: int) -> int:
        """Forward calls ``window_probs`` makes for a sequence of T tokens."""
        return -(-T // self.window_block)

    @torch.no_grad()
    def window_probs(self, seq, lengths, block: int | None = None) -> np.ndarray:
        """All positions × all truncation lengths in one batched pass: batch row s hides the tokens before s (key
        padding mask in every layer, positions unchanged), so its output at q is p(token q+1 | tokens s..q),
        the truncation of length q − s + 1. Rows s ∈ [c, c + block) only need positions ≥ c, so each block of rows
        runs on the suffix from c (absolute positions kept): ≈ T²/2 tokens instead of T². Returns L×T×V."""
        T = np.asarray(seq).size
        probs = torch.zeros(T, T, self.V, dtype=torch.float64)  # T(start)×T(position)×V; position < start unused
        block = self.window_block if block is None else integer("block", block, 1)
        for c in range(0, T, block):
            probs[c:min(T, c + block), c:] = torch.from_numpy(self.block_probs(seq, c, min(T, c + block), T))
        return _select_windows(probs, lengths)

    @torch.no_grad()
    def block_probs(self, seq, c: int, stop_row: int, stop_pos: int) -> np.ndarray:
        """p(token q+1 | tokens s..q) for starts s ∈ [c, stop_row) and positions q ∈ [c, stop_pos) in one forward of
        the suffix c … stop_pos − 1 (absolute positions kept; row s hides the keys before s): rows × positions × V,
        undefined where q < s."""
        seq = torch.as_tensor(np.asarray(seq), dtype=torch.long)
        rows, k = torch.arange(c, stop_row), torch.arange(c, stop_pos)
        mask = k[None, :] >= rows[:, None]  # row s: positions ≥ s visible
        logits = self(seq[c:stop_pos][None].expand(rows.numel(), stop_pos - c), mask, offset=c)
        return torch.softmax(logits.double(), -1).numpy()


def _select_windows(probs: torch.Tensor, lengths) -> np.ndarray:
    """From T(start)×T(position)×V probabilities, the L×T×V array of p(· | the last ℓ tokens up to q)."""
    T = probs.shape[0]
    q = torch.arange(T)[None, :]
    starts = (q - torch.as_tensor(list(lengths))[:, None] + 1).clamp(min=0)  # L×T
    return probs[starts, q.expand_as(starts)].numpy()


def train_transformer(model: TinyTransformer, X, *, steps: int = 600, batch: int = 64, lr: float = 3e-3,
                      seed: int = 0, progress: bool = True) -> list[float]:
    """Next-token CE with AdamW on random mini-batches of the sequences X (n×T, token ids < V, T ≤ max_len);
    returns the losses."""
    Xa = np.asarray(X)
    if Xa.ndim != 2 or Xa.shape[1] < 2 or not np.issubdtype(Xa.dtype, np.integer):
        raise ValueError(f"X has shape {Xa.shape} and dtype {Xa.dtype}: expected integer token ids, n×T with T >= 2")
    if Xa.shape[1] > model.max_len:
        raise ValueError(f"X has sequences of length {Xa.shape[1]} but the model's max_len={model.max_len}: "
                         f"allowed T <= {model.max_len}")
    if Xa.min() < 0 or Xa.max() >= model.V:
        raise ValueError(f"X has token ids in [{Xa.min()}, {Xa.max()}]: allowed [0, V−1] with V={model.V}")
    X = torch.as_tensor(Xa, dtype=torch.long)
    gen = torch.Generator().manual_seed(integer("seed", seed, 0))
    opt = torch.optim.AdamW(model.parameters(), lr=real("lr", lr, 0.0, lo_open=True))
    losses = []
    from tqdm.auto import tqdm

    for _ in tqdm(range(integer("steps", steps, 1)), disable=not progress, desc="transformer", leave=False):
        idx = torch.randint(0, X.shape[0], (integer("batch", batch, 1),), generator=gen)
        xb = X[idx]
        logits = model(xb[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class HFCausalLM:
    """(c) Adapter for a Hugging Face causal LM: truncation through ``attention_mask`` with explicit
    ``position_ids`` so positions are preserved."""

    def __init__(self, model):
        self.model = model.eval()
        self.V = model.config.vocab_size

    @classmethod
    def from_local(cls, path: str):
        """Load with ``local_files_only=True`` (never downloads, never ``trust_remote_code``)."""
        from transformers import AutoModelForCausalLM

        return cls(AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False))

    @torch.no_grad()
    def next_token_probs(self, tokens, mask) -> np.ndarray:
        t = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
        m = torch.as_tensor(np.asarray(mask), dtype=torch.long)
        pos = torch.arange(t.shape[1])[None].expand_as(t)
        logits = self.model(input_ids=t, attention_mask=m, position_ids=pos).logits[:, -1]
        return torch.softmax(logits.double(), -1).numpy()

    @torch.no_grad()
    def window_probs(self, seq, lengths) -> np.ndarray:
        """All positions × all truncation lengths in one forward (as ``TinyTransformer.window_probs``):
        batch row s has attention_mask 0 before s and position_ids 0..T−1, so its output at q is
        p(token q+1 | tokens s..q) at the original positions. Returns L×T×V."""
        seq = torch.as_tensor(np.asarray(seq), dtype=torch.long)
        T = seq.numel()
        k = torch.arange(T)
        mask = (k[None, :] >= k[:, None]).long()
        logits = self.model(input_ids=seq[None].expand(T, T), attention_mask=mask,
                            position_ids=k[None].expand(T, T)).logits
        return _select_windows(torch.softmax(logits.double(), -1), lengths)


@torch.no_grad()
def truncated_probs(hf_model, prefix, ell: int) -> np.ndarray:
    """Reference for the adapter: next-token distribution of a Hugging Face causal LM run on ONLY the last ℓ
    tokens of ``prefix`` (explicit truncation, no mask), with their original position ids t−ℓ..t−1 (V,)."""
    prefix = np.asarray(prefix)
    t = prefix.size
    ell = integer("ell", ell, 1, t)
    ids = torch.as_tensor(prefix[t - ell:][None], dtype=torch.long)
    pos = torch.arange(t - ell, t)[None]
    logits = hf_model(input_ids=ids, position_ids=pos).logits[0, -1]
    return torch.softmax(logits.double(), -1).numpy()
