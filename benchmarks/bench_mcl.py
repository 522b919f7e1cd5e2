"""MCL windowed analysis (one forward per sequence) vs the naive loop (one forward per length) at T = 128.

Sequences are greedy continuations of the model itself, so the full context always qualifies and the naive
loop searches lengths until the first that does (its realistic workload). Prints the wall-time ratio and peak memory.
"""

import resource
import sys
import time

import numpy as np
import torch

from nclab.mcl import TinyTransformer, analyze


def greedy(model, T, seed):
    rng = np.random.default_rng(seed)
    seq = list(rng.integers(0, model.out.out_features, 4))
    while len(seq) < T:
        p = model.next_token_probs(np.array(seq)[None], np.ones((1, len(seq)), bool))[0]
        seq.append(int(p.argmax()))
    return np.array(seq)


def main(T: int = 128, n: int = 2, V: int = 16):
    torch.set_num_threads(1)
    model = TinyTransformer(V, max_len=T, d=32, heads=2, layers=2, seed=0)
    X = np.stack([greedy(model, T, s) for s in range(n)])
    sched = list(range(1, T))
    t0 = time.perf_counter()
    fast = analyze(model, X, sched, start=8, delta=0.0)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = analyze(model, X, sched, start=8, delta=0.0, naive=True)
    t_naive = time.perf_counter() - t0
    assert np.array_equal(fast["mcl"], slow["mcl"]), "windowed and naive MCL differ"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"MCL T={T}: windowed {t_fast:.2f} s ({fast['forwards'].sum()} forwards), naive {t_naive:.2f} s "
          f"({slow['forwards'].sum()} forwards) -> speed-up {t_naive / t_fast:.1f}x | peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
