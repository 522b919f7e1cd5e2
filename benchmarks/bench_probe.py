"""Probe overhead and memory. Run by hand: `python benchmarks/bench_probe.py [--quick]`.

1. Time of one probe pass (features hooked at the classifier input, float64 class statistics) over a loader,
   as a ratio against a plain inference pass of the same model over the same loader (goal ≤ 1.2×); also the
   ratio for the full probe (metrics + the NC4 second pass).
2. Peak resident memory of streaming n examples of k = 10,000 classes (d = 512) and computing every tiled
   metric (NC1–NC3, distances to ETF / OF), from a fresh process: the increase over the process baseline.
"""

import argparse
import resource
import subprocess
import sys
import time

import torch
from torch import nn


def cnn(k: int, d: int) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.features = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(128, d, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.fc = nn.Linear(d, k)
    return model.eval()


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def overhead(quick: bool) -> None:
    from nclab.probe import accumulate, probe

    k, d, n, bs = 100, 256, 512 if quick else 4096, 256
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, k, (n,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=bs)
    model = cnn(k, d)

    def plain():
        with torch.no_grad():
            for xb, _ in loader:
                model(xb)

    reps = 2 if quick else 3
    t_plain = best_of(plain, reps)
    t_pass = best_of(lambda: accumulate(model, loader, classifier="fc"), reps)
    t_full = best_of(lambda: probe(model, loader, classifier="fc"), reps)
    print(f"CNN 3×32×32 → {d} features → {k} classes, n={n}, batch {bs}, {torch.get_num_threads()} threads")
    print(f"plain inference pass            {t_plain * 1e3:8.1f} ms  ratio 1.00")
    print(f"probe pass (statistics)         {t_pass * 1e3:8.1f} ms  ratio {t_pass / t_plain:.3f}   (goal ≤ 1.2)")
    print(f"full probe (metrics + NC4 pass) {t_full * 1e3:8.1f} ms  ratio {t_full / t_plain:.3f}   (two passes)")


def memory_child(k: int, d: int, n: int) -> None:
    from nclab.nc_metrics import ClassStats, geometry_metrics

    g = torch.Generator().manual_seed(0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = ClassStats(k, d, tile=1024)
    t0 = time.perf_counter()
    for s in range(0, n, 2000):
        b = min(2000, n - s)
        stats.update(torch.randn(b, d, generator=g), torch.arange(s, s + b) % k)  # every class occurs
    t_stream = time.perf_counter() - t0
    W = torch.randn(k, d, generator=g, dtype=torch.float64)
    t0 = time.perf_counter()
    m = geometry_metrics(stats, W)
    t_metrics = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"k={k} classes, d={d}, n={n}: streaming {t_stream:.1f} s, metrics {t_metrics:.1f} s "
          f"(nc1 {m['nc1']:.3g}, d_W_ETF {m['d_W_ETF']:.3f})")
    print(f"peak RSS {peak:.0f} MiB = process baseline {base:.0f} MiB + {peak - base:.0f} MiB for the probe "
          f"(a dense k×k float64 Gram alone would be {k * k * 8 / 2**20:.0f} MiB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller loader, k=10,000 still")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(*args.child)
        return
    overhead(args.quick)
    n = 20000 if args.quick else 100000
    subprocess.run([sys.executable, __file__, "--child", "10000", "512", str(n)], check=True)


if __name__ == "__main__":
    main()
