"""DARE / DAREx-q throughput on a random ≥ 20M-parameter model vs a plain per-tensor mask-and-multiply
baseline, both in this process. Prints time ratios and bytes/s. Run by hand: `python benchmarks/bench_darex.py`."""

import time

import torch

from nclab.darex import dare, magnitude_prune


def baseline(delta, p, seed=0):
    """The naive implementation: Bernoulli mask tensor, then two multiplies."""
    torch.manual_seed(seed)
    out = {}
    for name, d in delta.items():
        mask = torch.bernoulli(torch.full_like(d, 1 - p))
        out[name] = d * mask / (1 - p)
    return out


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    g = torch.Generator().manual_seed(0)
    shapes = [(1024, 1024)] * 16 + [(4096, 1024)] * 2  # 16.8M + 8.4M = 25.2M parameters
    delta = {f"layer{i}.weight": 0.01 * torch.randn(s, generator=g) for i, s in enumerate(shapes)}
    n = sum(d.numel() for d in delta.values())
    nbytes = sum(d.numel() * d.element_size() for d in delta.values())
    print(f"{n / 1e6:.1f}M float32 parameters ({nbytes / 1e6:.0f} MB), {torch.get_num_threads()} threads")
    t_base = best_of(lambda: baseline(delta, 0.99))
    runs = (("DARE p=0.99", lambda: dare(delta, 0.99)), ("DAREx-q p=0.99 q=0.05", lambda: dare(delta, 0.99, 0.05)),
            ("magnitude p=0.99", lambda: magnitude_prune(delta, 0.99)))
    for name, fn in runs:
        t = best_of(fn, 3 if "magnitude" in name else 5)
        print(f"{name:24s} {t * 1e3:8.1f} ms  {nbytes / t / 1e9:6.2f} GB/s  ratio vs baseline {t / t_base:5.2f}")
    print(f"{'baseline mask×Δ/(1−p)':24s} {t_base * 1e3:8.1f} ms  {nbytes / t_base / 1e9:6.2f} GB/s  ratio 1.00")


if __name__ == "__main__":
    main()
