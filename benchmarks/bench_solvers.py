"""Exact solvers at k = 10 / 100 / 1000 (step imbalance R = 10, half minorities): symmetry-reduced programs
(method="auto") against the k×k cvxpy program (method="full", the in-process baseline, run at k = 10 and 20 only),
plus seli_geometry at k = 10,000 and the NTP programs (cvxpy) on a small instance."""

import resource
import sys
import time

import numpy as np

from nclab.convex import cs_svm, nuclear_svm, regularized_optimum, scl_gram
from nclab.labels import step_sizes
from nclab.losses import make_loss
from nclab.seli import seli_geometry


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main(ks=(10, 100, 1000)):
    for k in ks:
        s = step_sizes(k, 10, k // 2, 5)
        delta = np.sqrt(s.astype(float))
        jobs = {"nuclear_svm": lambda m, s=s: nuclear_svm(s, method=m),
                "cs_svm cdt": lambda m, s=s, d=delta: cs_svm(s, d, "cdt", method=m),
                "cs_svm ldt": lambda m, s=s, d=delta: cs_svm(s, d, "ldt", method=m),
                "regularized ce": lambda m, s=s: regularized_optimum(s, 1e-3, method=m),
                "regularized vs": lambda m, s=s: regularized_optimum(s, 1e-3, loss=make_loss("vs", s, 0.5), method=m),
                "scl_gram relu": lambda m, s=s: scl_gram(s, 1.0, True, method=m),
                "scl_gram τ=0.02": lambda m, s=s: scl_gram(s, 0.02, False)}
        row = []
        for name, f in jobs.items():
            t = timed(lambda f=f: f("auto"))
            base = ""
            if k <= 20 and "0.02" not in name:
                tf = timed(lambda f=f: f("full"))
                base = f" (full {tf:.2f} s, {tf / t:.0f}x)"
            row.append(f"{name} {t:.2f} s{base}")
        print(f"k={k}: " + " | ".join(row))
    sizes = step_sizes(10000, 10, 5000, 5)
    cold = timed(lambda: seli_geometry(sizes))
    warm = timed(lambda: seli_geometry(sizes))
    gi = (sizes == sizes.min()).astype(int)
    gather = timed(lambda: np.arange(4.0).reshape(2, 2)[gi][:, gi])  # baseline: one k×k gather (the old expansion)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"seli_geometry k=10,000: first call {cold:.2f} s, second {warm:.2f} s (three dense 10,000² results, 2.4 GB: "
          f"the first call pays the OS's first touch of that memory) | one k×k gather {gather:.2f} s "
          f"-> whole geometry / one gather {warm / gather:.2f}x | peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (10, 100, 1000))
