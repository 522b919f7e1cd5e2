"""The first-order SCL Gram (nclab.solvers_scl) against the cvxpy programs on long-tailed and partly repeated class
sizes, its duality certificate on broken answers, and how scl_gram picks it."""

import numpy as np
import pytest

from nclab import solvers, solvers_scl
from nclab.convex import AUTO_GROUPS, scl_gram

LONG_TAIL = np.round(300 * 0.02 ** (np.arange(12) / 11)).astype(int)  # 300 … 6, all distinct
REPEATED = [9, 9, 9, 4, 4, 2, 1, 1, 30, 30, 7, 12, 12, 5]


def scl_value(G, sizes, tau):
    """The full-batch SCL of the k×k Gram G, written out per anchor class (not through any reduction)."""
    n = np.asarray(sizes, float)
    total = 0.0
    for c in np.flatnonzero(n >= 2):
        others = np.delete(np.arange(n.size), c)
        logits = np.concatenate([[np.log(n[c] - 1) + 1 / tau], np.log(n[others]) + G[c, others] / tau])
        top = logits.max()
        total += n[c] * (top + np.log(np.exp(logits - top).sum()) - 1 / tau)
    return total


@pytest.mark.parametrize("sizes", [LONG_TAIL, REPEATED])
@pytest.mark.parametrize("tau", [0.1, 1.0, 5.0])
def test_relu_gram_equals_the_reduced_program(sizes, tau):
    G, cert = solvers_scl.scl_first_order(sizes, tau, True)
    want = solvers.scl(np.asarray(sizes, float), tau, True)
    assert cert["rel_gap"] <= solvers_scl.SCL_TOL
    n = np.asarray(sizes)
    free = (n[:, None] < 2) & (n[None, :] < 2)  # two classes without positives: their entry is in no term
    np.testing.assert_allclose(np.where(free, 0, G), np.where(free, 0, want), atol=1e-6)
    assert scl_value(G, sizes, tau) == pytest.approx(scl_value(want, sizes, tau), rel=1e-8)
    assert np.linalg.eigvalsh(G)[0] >= -1e-12 and G.min() >= 0 and np.allclose(np.diag(G), 1)


@pytest.mark.parametrize("tau", [0.1, 1.0, 5.0])
def test_no_relu_value_equals_the_full_program(tau):
    sizes = LONG_TAIL[:8]  # the k×k program stays small
    G, cert = solvers_scl.scl_first_order(sizes, tau, False)
    full = scl_gram(sizes, tau, False, method="full")
    mine, ref = scl_value(G, sizes, tau), scl_value(full, sizes, tau)
    # its optimum is flat in some directions: compare values, each certified (gap) or accurate to the solver's 1e-8
    assert abs(mine - ref) <= 1e-7 * abs(ref)
    assert np.linalg.eigvalsh(G)[0] >= -1e-12 and np.allclose(np.diag(G), 1)
    assert G.min() < -1e-3  # without the ReLU some classes are pushed apart: not the orthogonal frame
    assert np.linalg.eigvalsh(full)[0] < 1e-6  # the k×k program's optimum is singular: the premise of rank G − 1


def test_certificate_fails_for_perturbed_answers():
    _, cert = solvers_scl.scl_first_order(LONG_TAIL, 1.0, True)
    f = solvers_scl.GroupedSCL(LONG_TAIL, 1.0, True)
    P, mu = cert["P"], cert["mu"]
    assert f.certificate(P, *mu)["rel_gap"] <= solvers_scl.SCL_TOL
    rng = np.random.default_rng(0)
    u = rng.uniform(size=f.G) * np.sqrt(f.up)
    start = np.where(f.off, 0.5 / np.where(f.off, f.Sinv, 1.0), f.up)  # every off-diagonal Gram entry 0.5
    for broken in (P + 0.05 * np.outer(u, u), start):
        assert f.certificate(broken, *mu)["rel_gap"] > 100 * solvers_scl.SCL_TOL
    assert f.certificate(P, mu[0] * 1.5, mu[1], mu[2])["rel_gap"] > 100 * solvers_scl.SCL_TOL


def test_not_certified_raises_auto_falls_back_and_picks_by_groups(monkeypatch):
    sizes = np.round(500 * 0.01 ** (np.arange(AUTO_GROUPS + 3) / (AUTO_GROUPS + 2))).astype(int)
    calls = []
    real = solvers_scl.scl_first_order
    monkeypatch.setattr(solvers_scl, "scl_first_order", lambda *a: calls.append(a) or real(*a))
    scl_gram(sizes, 1.0)
    scl_gram(sizes[:AUTO_GROUPS], 1.0)  # few groups: the reduced program
    scl_gram(sizes, 1.0, relu=False)  # without the ReLU: the reduced program (first-order converges slowly there)
    assert len(calls) == 1
    monkeypatch.setattr(solvers_scl, "SCL_TOL", -1.0)
    with pytest.raises(RuntimeError, match="duality gap"):
        scl_gram(sizes, 1.0, method="first-order")
    np.testing.assert_allclose(scl_gram(sizes, 1.0), solvers.scl(sizes.astype(float), 1.0, True), atol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="tau=0.05"):
        scl_gram(LONG_TAIL, 0.05, method="first-order")
    with pytest.raises(ValueError, match="method='newton'"):
        scl_gram(LONG_TAIL, 1.0, method="newton")
