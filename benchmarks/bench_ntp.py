"""NTP solvers: method="auto" (symmetry-reduced program; ADMM / Anderson with SVT when it is not small) against the V×m
cvxpy program (method="cvxpy", the in-process baseline, run where it finishes: the notebook's toy corpus and a 40 ×
16 synthetic instance), then the m = 1000 × V = 200 instances (50 and 300 support patterns) that cvxpy cannot solve
in minutes (regularized: "auto", i.e. Anderson-accelerated prox-gradient, against adaptive FISTA), and FISTA's
accuracy against λ on the notebook's instance (m = 20, V = 10). Run one-threaded: OMP_NUM_THREADS=1 python
benchmarks/bench_ntp.py [lam ...]."""

import resource
import sys
import time

import numpy as np

from nclab import ntp_solvers
from nclab.convex import ntp_max_margin, ntp_regularized_optimum
from nclab.ntp import from_tokens, synthetic, toy_corpus


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def rel(A, B):
    return float(np.linalg.norm(A - B) / max(np.linalg.norm(B), 1e-300))


def gap(L, P, pi, lam):
    """Duality gap at the dual point α π (p − softmax(ℓ)), α = min(1, λ / ‖π (p − softmax)‖_op)."""
    Z = L - L.max(0)
    s = np.exp(Z) / np.exp(Z).sum(0)
    nuc = np.linalg.svd(L, compute_uv=False).sum()
    primal = pi @ (np.log(np.exp(Z).sum(0)) + L.max(0) - (P * L).sum(0)) + lam * nuc
    a = min(1.0, lam / np.linalg.norm(pi * (P - s), 2))
    q = (1 - a) * P + a * s
    return float(primal + pi @ (np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)).sum(0))


def against_cvxpy(lam):
    cases = {"toy corpus (2000 sentences)": from_tokens(toy_corpus(2000, seed=0), 2),
             "synthetic m=40 V=16 (10 patterns)": synthetic(40, 16, 10, (1, 4), seed=0)}
    for name, data in cases.items():
        fast, t = timed(lambda d=data: ntp_max_margin(d.S))
        ref, tr = timed(lambda d=data: ntp_max_margin(d.S, method="cvxpy"))
        print(f"{name} V={data.V} m={data.m}: max-margin auto {t:.3f} s, cvxpy {tr:.1f} s ({tr / t:.0f}x), "
              f"relative difference {rel(fast, ref):.1e}")
        fast, t = timed(lambda d=data: ntp_regularized_optimum(d.P, d.pi, lam))
        ref, tr = timed(lambda d=data: ntp_regularized_optimum(d.P, d.pi, lam, method="cvxpy"))
        print(f"  regularized λ={lam:g}: auto {t:.2f} s, cvxpy {tr:.1f} s ({tr / t:.0f}x), relative difference "
              f"{rel(fast, ref):.1e}, duality gap auto {gap(fast, data.P, data.pi, lam):.1e} "
              f"cvxpy {gap(ref, data.P, data.pi, lam):.1e}")


def large(lams):
    for patterns in (50, 300):
        data = synthetic(1000, 200, patterns, (1, 5), seed=0)
        S = data.S
        shape = (np.unique(np.unique(S, axis=1), axis=0).shape,
                 np.unique(np.vstack([data.P, data.pi]), axis=1).shape[1])
        L, t = timed(lambda d=data: ntp_max_margin(d.S))
        a = L[S.argmax(0), np.arange(data.m)]
        viol = max(np.abs(np.where(S, L - a, 0)).max(), 1 - np.where(S, np.inf, a - L).min())
        print(f"m=1000 V=200, {patterns} patterns (max-margin reduced to {shape[0][0]}×{shape[0][1]}): max-margin "
              f"{t:.2f} s (rank {np.linalg.matrix_rank(L, tol=1e-6)}, constraint violation {viol:.0e})")
        for lam in lams:
            try:
                L, t = timed(lambda d=data, lam=lam: ntp_regularized_optimum(d.P, d.pi, lam))
            except RuntimeError as e:
                print(f"  regularized λ={lam:g}: {e}")
                continue
            Lf, tf = timed(lambda d=data, lam=lam: ntp_regularized_optimum(d.P, d.pi, lam, method="fista"))
            print(f"  regularized λ={lam:g} ({shape[1]} distinct columns): auto (Anderson) {t:.2f} s, duality gap "
                  f"{gap(L, data.P, data.pi, lam):.1e} | adaptive FISTA {tf:.2f} s ({tf / t:.1f}x), duality gap "
                  f"{gap(Lf, data.P, data.pi, lam):.1e}, relative difference {rel(L, Lf):.1e}")


def accuracy():
    data = synthetic(20, 10, 7, (1, 3), (1, 4), seed=0)
    print("FISTA (default tol 1e-8) on m=20 V=10: relative distance to FISTA at tol 1e-12 and to cvxpy; gaps")
    for lam in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        L, t = timed(lambda lam=lam: ntp_regularized_optimum(data.P, data.pi, lam, method="fista"))
        tight = ntp_solvers.regularized(data.P, data.pi, lam, "fista", tol=1e-12, max_iter=10**6)
        ref = ntp_regularized_optimum(data.P, data.pi, lam, method="cvxpy")
        print(f"  λ={lam:.0e}: {t:.2f} s, vs tight {rel(L, tight):.1e}, cvxpy vs tight {rel(ref, tight):.1e}; "
              f"gap fista {gap(L, data.P, data.pi, lam):.1e} tight {gap(tight, data.P, data.pi, lam):.1e} "
              f"cvxpy {gap(ref, data.P, data.pi, lam):.1e}")


def main(lams=(1e-3, 1e-4)):
    against_cvxpy(1e-3)
    large(lams)
    accuracy()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main(tuple(float(a) for a in sys.argv[1:]) or (1e-3, 1e-4))
