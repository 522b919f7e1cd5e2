"""UFM trainer: nclab.ufm.train_ufm and train_ufm_batched vs the plain loop (nn.Parameter + SGD + CrossEntropyLoss),
SELI UFM k = 4, R = 10, n_min = 5, d = 8, float64, one thread, measured side by side in this process."""

import resource
import sys
import time

import numpy as np
import torch

from nclab.labels import labels_from_sizes, step_sizes
from nclab.ufm import train_ufm
from nclab.ufm_batched import train_ufm_batched


def plain_loop(y, k, d, steps, seed=0, lr=0.5):
    g = torch.Generator().manual_seed(seed)
    W = torch.nn.Parameter(0.1 * torch.randn(k, d, generator=g, dtype=torch.float64))
    H = torch.nn.Parameter(0.1 * torch.randn(d, len(y), generator=g, dtype=torch.float64))
    opt, crit, yt = torch.optim.SGD([W, H], lr=lr), torch.nn.CrossEntropyLoss(), torch.as_tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        crit((W @ H).T, yt).backward()
        opt.step()
    return W.detach().numpy()


def main(steps: int = 20000, B: int = 64):
    torch.set_num_threads(1)
    sizes = step_sizes(4, 10, 2, 5)
    y = labels_from_sizes(sizes)
    t0 = time.perf_counter()
    Wp = plain_loop(y, 4, 8, steps)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = train_ufm(class_sizes=sizes, d=8, lr=0.5, steps=steps, record=50, progress=False)
    t_ours = time.perf_counter() - t0
    bsteps = max(steps // 4, 1)
    t0 = time.perf_counter()
    train_ufm_batched([{"class_sizes": sizes, "seed": s} for s in range(B)], d=8, lr=0.5, steps=bsteps, record=50,
                      progress=False)
    t_batch = time.perf_counter() - t0
    plain, fast, batched = steps / t_plain, steps / t_ours, B * bsteps / t_batch
    print(f"UFM {steps} steps: plain loop {plain:,.0f} steps/s | train_ufm {fast:,.0f} steps/s "
          f"({fast / plain:.1f}x plain, max|ΔW| = {np.abs(ours.W - Wp).max():.1e}) | batched B={B} "
          f"{batched:,.0f} run-steps/s ({batched / plain:.1f}x plain, {batched / fast:.1f}x train_ufm) | "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    # python benchmarks/bench_ufm.py [steps] [B ...]: one line per batch size B (default 64)
    for B in [int(a) for a in sys.argv[2:]] or [64]:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000, B)
