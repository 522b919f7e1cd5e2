"""Exact regularized optimum for long-tailed class sizes s_c = round(500 · 0.01^{c/(k−1)}) (k = 30: all distinct;
k = 1000: 394 distinct sizes): the certified first-order solver (method="first-order", what "auto" runs above
convex.AUTO_GROUPS groups) against the k×k cvxpy program (method="full", the in-process baseline, k = 30 only),
at λ = λ₀/10 and λ₀/100 (λ₀ = zero threshold); then the margin SVMs (nuclear_svm, cs_svm CDT/LDT with
δ = n^{1/4}): certified first-order (solvers_fo.margin_svm) against the k×k program at k = 30; with ``scl`` instead,
scl_gram with ReLU (τ = 0.1, 1, 5): first-order (solvers_scl) against the reduced cvxpy program at k = 30. Wall and
CPU seconds, duality gap, peak RSS. ``python bench_longtail.py [svm] [scl] [k ...]`` (no mode: all three)."""

import resource
import sys
import time

import numpy as np

from nclab import solvers, solvers_fo, solvers_scl
from nclab.convex import _margin_svm, regularized_optimum, zero_threshold
from nclab.losses import make_loss


def timed(f):
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t0, time.process_time() - c0


def solve(s, lam, loss, method):
    return regularized_optimum(s, lam, loss=loss, method=method)


def main(ks=(30, 100, 1000), kinds=("ce", "vs")):
    for k in ks:
        s = np.round(500 * 0.01 ** (np.arange(k) / (k - 1))).astype(int)
        lam0 = zero_threshold(s)
        for kind in kinds:
            loss = make_loss(kind, s, 0.5)
            for frac in (0.1, 0.01):
                lam = frac * lam0
                g, wall, cpu = timed(lambda s=s, lam=lam, loss=loss: solve(s, lam, loss, "first-order"))
                line = (f"k={k} ({np.unique(s).size} groups) {kind} λ=λ₀/{1 / frac:.0f}: first-order {wall:.2f} s "
                        f"(CPU {cpu:.2f} s), gap {g.info['certificate']['rel_gap']:.1e}")
                if k <= 30:
                    b, bwall, bcpu = timed(lambda s=s, lam=lam, loss=loss: solve(s, lam, loss, "full"))
                    err = np.linalg.norm(g.logits - b.logits) / np.linalg.norm(b.logits)
                    dval = (g.info["value"] - b.info["value"]) / b.info["value"]
                    line += (f" | full {bwall:.2f} s (CPU {bcpu:.2f} s) -> {bcpu / cpu:.0f}x (CPU), "
                             f"‖ΔM‖/‖M‖ {err:.1e}, objective first-order − full {dval:.1e}")
                print(line, flush=True)
    report_peak()


def svm_main(ks=(30, 100, 1000)):
    for k in ks:
        s = np.round(500 * 0.01 ** (np.arange(k) / (k - 1))).astype(int)
        one, quarter = np.ones(k), s ** 0.25
        for name, row, col in (("NN-SVM", one, one), ("CDT", quarter, one), ("LDT", one, quarter)):
            (M, cert), wall, cpu = timed(lambda s=s, row=row, col=col: solvers_fo.margin_svm(s, row, col))
            line = (f"k={k} ({np.unique(s).size} groups) {name}: first-order {wall:.2f} s (CPU {cpu:.2f} s), "
                    f"gap {cert['rel_gap']:.1e}")
            if k <= 30:
                (B, _), bwall, bcpu = timed(lambda s=s, row=row, col=col: _margin_svm(s, row, col, "full"))
                err = np.linalg.norm(M - B) / np.linalg.norm(B)
                line += f" | full {bwall:.2f} s (CPU {bcpu:.2f} s) -> {bcpu / cpu:.0f}x (CPU), ‖ΔM‖/‖M‖ {err:.1e}"
            print(line, flush=True)
    report_peak()


def scl_main(ks=(30, 100, 1000)):
    for k in ks:
        s = np.round(500 * 0.01 ** (np.arange(k) / (k - 1))).astype(int)
        for tau in (0.1, 1.0, 5.0):
            (G, cert), wall, cpu = timed(lambda s=s, tau=tau: solvers_scl.scl_first_order(s, tau, True))
            line = (f"k={k} ({np.unique(s).size} groups) scl_gram ReLU τ={tau:g}: first-order {wall:.2f} s "
                    f"(CPU {cpu:.2f} s), gap {cert['rel_gap']:.1e}, max |Ĝ − I| {np.abs(G - np.eye(k)).max():.1e}")
            if k <= 30:
                B, bwall, bcpu = timed(lambda s=s, tau=tau: solvers.scl(s.astype(float), tau, True))
                line += (f" | reduced cvxpy {bwall:.2f} s (CPU {bcpu:.2f} s) -> {bcpu / cpu:.0f}x (CPU), "
                         f"max |ΔĜ| {np.abs(G - B).max():.1e}")
            print(line, flush=True)
    report_peak()


def report_peak():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB (the process imports torch and cvxpy: ≈ 350 MB before any solve)")


if __name__ == "__main__":
    args = sys.argv[1:]
    ks = tuple(int(a) for a in args if a not in ("svm", "scl")) or (30, 100, 1000)
    modes = [m for m in ("svm", "scl") if m in args]
    if not modes:
        main(ks)
    for m in modes or ("svm", "scl"):
        (svm_main if m == "svm" else scl_main)(ks)
