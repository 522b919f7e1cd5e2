"""The first-order solver (nclab.solvers_fo, method="first-order") against the k×k cvxpy program (method="full")
on class sizes that are all distinct or partly repeated, and its duality certificate on broken answers."""

import numpy as np
import pytest

from nclab import solvers_fo
from nclab.convex import AUTO_GROUPS, cs_svm, nuclear_svm, regularized_optimum, zero_threshold
from nclab.losses import LogitAdjustedCE, make_loss
from nclab.solvers import class_groups

LONG_TAIL = np.round(200 * 0.02 ** (np.arange(8) / 7)).astype(int)  # 200 … 4, all distinct
REPEATED = [9, 9, 9, 4, 4, 2, 1, 1, 30]


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("kind", ["ce", "wce", "la", "cdt", "ldt", "vs"])
@pytest.mark.parametrize("lam", [1e-2, 1e-3, 1e-4])
def test_first_order_equals_full_program_long_tail(kind, lam):
    loss = make_loss(kind, LONG_TAIL, gamma=0.5)
    a = regularized_optimum(LONG_TAIL, lam, loss=loss, method="first-order")
    b = regularized_optimum(LONG_TAIL, lam, loss=loss, method="full")
    assert a.info["method"] == "first-order" and a.info["certificate"]["rel_gap"] <= solvers_fo.GAP_TOL
    # certified to a duality gap of 1e-8 (reached: ≤ 1e-10), so never worse than the interior-point answer
    assert a.info["value"] <= b.info["value"] * (1 + 1e-9)
    assert a.info["value"] == pytest.approx(b.info["value"], rel=1e-8)
    assert _rel(a.logits, b.logits) < 1e-4  # the full program's minimizer is accurate to ≈ √(1e-10) (measured ≤ 5e-5)


@pytest.mark.parametrize("kind", ["ce", "vs", "ldt"])
def test_first_order_groups_repeated_sizes(kind):
    loss = make_loss(kind, REPEATED, gamma=0.5)
    a = regularized_optimum(REPEATED, 1e-3, loss=loss, method="first-order")
    b = regularized_optimum(REPEATED, 1e-3, loss=loss, method="full")
    assert a.info["value"] == pytest.approx(b.info["value"], rel=1e-8)
    assert _rel(a.logits, b.logits) < 1e-4
    sizes = np.asarray(REPEATED)
    same = sizes[:, None] == sizes[None, :]
    assert np.allclose(a.logits[same & ~np.eye(9, dtype=bool)].reshape(-1)[:2], a.logits[1, 0])  # invariant M


def test_sum_reduction_and_zero_threshold():
    a = regularized_optimum(LONG_TAIL, 1e-3, "mean", method="first-order")
    b = regularized_optimum(LONG_TAIL, 1e-3 * LONG_TAIL.sum(), "sum", method="first-order")
    assert _rel(a.logits, b.logits) < 1e-6
    lam0 = zero_threshold(LONG_TAIL)
    assert np.all(regularized_optimum(LONG_TAIL, 1.01 * lam0, method="first-order").logits == 0)
    below = regularized_optimum(LONG_TAIL, lam0 / 1.3, method="first-order")
    assert np.abs(below.logits).max() > 1e-3


def _problem(sizes, lam, loss: LogitAdjustedCE | None = None):
    sizes = np.asarray(sizes)
    p = (loss or LogitAdjustedCE()).arrays(sizes.size)
    w = sizes / sizes.sum() * p["omega"]
    return solvers_fo.GroupedCE(sizes, w, p), w, p


def test_certificate_fails_for_perturbed_answers():
    f, w, p = _problem(LONG_TAIL, 1e-3)
    M, value, cert = solvers_fo.regularized(LONG_TAIL, 1e-3, w, p)
    order = np.argsort(f.gi)  # all sizes distinct: X̃ is X in group order, no inner scalars
    X = (M * np.sqrt(LONG_TAIL)[None, :])[np.ix_(order, order)]
    e = np.zeros(f.G)
    good = f.certificate(X, e, 1e-3)
    assert good["rel_gap"] <= solvers_fo.GAP_TOL and good["objective"] == pytest.approx(value, rel=1e-12)
    rng = np.random.default_rng(0)
    for broken in (X * (1 + 1e-3), X + 1e-3 * np.abs(X).max() * rng.normal(size=X.shape), X[:, ::-1]):
        bad = f.certificate(broken, e, 1e-3)
        assert bad["rel_gap"] > 100 * solvers_fo.GAP_TOL
        assert bad["objective"] > good["objective"] - good["gap"]  # the gap bounds how far below anyone can get


def test_certificate_gap_bounds_suboptimality_on_random_points():
    f, _, _ = _problem(REPEATED, 1e-2, make_loss("vs", REPEATED, 0.5))
    _, _, opt = solvers_fo.regularized(REPEATED, 1e-2, *_problem(REPEATED, 1e-2, make_loss("vs", REPEATED, 0.5))[1:])
    rng = np.random.default_rng(1)
    for _ in range(5):
        c = f.certificate(rng.normal(size=(f.G, f.G)), rng.normal(size=f.G), 1e-2)
        assert c["objective"] - c["gap"] <= opt["objective"] * (1 + 1e-12)


def test_not_certified_raises(monkeypatch):
    monkeypatch.setattr(solvers_fo, "GAP_TOL", -1.0)  # no gap is below: never certified
    with pytest.raises(RuntimeError, match="duality gap"):
        regularized_optimum(LONG_TAIL, 1e-3, method="first-order")
    g = regularized_optimum(LONG_TAIL[:5].tolist() * 3, 1e-3)  # "auto" falls back to the reduced cvxpy program
    assert g.info["method"] == "reduced"


def test_auto_picks_by_number_of_groups():
    s = np.round(500 * 0.01 ** (np.arange(AUTO_GROUPS + 5) / (AUTO_GROUPS + 4))).astype(int)
    assert class_groups(s)[2].size > AUTO_GROUPS
    assert regularized_optimum(s, 1e-4).info["method"] == "first-order"
    assert regularized_optimum([8, 8, 3, 3, 1], 1e-4).info["method"] == "reduced"


def test_bad_inputs():
    with pytest.raises(ValueError, match="method='fast'"):
        regularized_optimum([3, 2], 0.1, method="fast")
    with pytest.raises(ValueError, match="lam=-0.1"):
        regularized_optimum([3, 2], -0.1, method="first-order")
    with pytest.raises(ValueError, match="reduction"):
        regularized_optimum([3, 2], 0.1, "max", method="first-order")
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=0"):
        regularized_optimum([5, 0, 3], 0.1, method="first-order")
    with pytest.raises(ValueError, match="k=3"):
        regularized_optimum([5, 4, 3], 0.1, loss=make_loss("vs", [5, 4]), method="first-order")
    with pytest.raises(ValueError, match="method='fast'"):
        nuclear_svm([3, 2], method="fast")
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=0"):
        nuclear_svm([5, 0, 3], method="first-order")
    with pytest.raises(ValueError, match="k=3"):
        cs_svm([5, 4, 3], [1.0, 2.0], method="first-order")
    with pytest.raises(ValueError, match="finite and > 0"):
        cs_svm([5, 4, 3], [1.0, -2.0, 1.0], method="first-order")
    with pytest.raises(ValueError, match="kind='xdt'"):
        cs_svm([5, 4, 3], [1.0, 2.0, 1.0], "xdt", method="first-order")


# ---- margin SVMs (nuclear_svm, cs_svm): method of multipliers on the factors, certified by a dual bound ----

SVM_SIZES = [np.round(500 * 0.01 ** (np.arange(k) / (k - 1))).astype(int) for k in (6, 9, 15)]


@pytest.mark.parametrize("sizes", SVM_SIZES, ids=lambda s: f"k={s.size}")
def test_first_order_nuclear_svm_equals_full_program(sizes):
    a = nuclear_svm(sizes, method="first-order")
    b = nuclear_svm(sizes, method="full")
    assert _rel(a, b) < 1e-5  # measured ≤ 2e-9


@pytest.mark.parametrize("kind", ["cdt", "ldt"])
@pytest.mark.parametrize("delta", ["quarter", "random"])
@pytest.mark.parametrize("sizes", SVM_SIZES[:2] + [REPEATED], ids=["k=6", "k=9", "repeated"])
def test_first_order_cs_svm_equals_full_program(sizes, kind, delta):
    sizes = np.asarray(sizes)
    d = sizes ** 0.25 if delta == "quarter" else np.random.default_rng(sizes.size).uniform(0.5, 2.0, sizes.size)
    a = cs_svm(sizes, d, kind, method="first-order")
    b = cs_svm(sizes, d, kind, method="full")
    assert a.info["method"] == "first-order" and b.info["method"] == "full"
    assert _rel(a.logits, b.logits) < 1e-5


def test_margin_certificate_fails_for_perturbed_answers():
    sizes = SVM_SIZES[1]
    row, col = sizes ** 0.25, np.ones(sizes.size)
    M, cert = solvers_fo.margin_svm(sizes, row, col)
    g = solvers_fo.GroupedMargins(sizes, row, col)
    assert cert["rel_gap"] <= solvers_fo.SVM_TOL and cert["violation"] < 1e-6
    order = np.argsort(g.gi)  # all sizes distinct: X̃ is X in group order
    X = (M * np.sqrt(sizes)[None, :])[np.ix_(order, order)]
    e, mu = np.zeros(g.G), cert["alpha"]
    good = g.certificate(X, e, mu)
    assert good["rel_gap"] <= solvers_fo.SVM_TOL and good["primal"] == pytest.approx(cert["primal"], rel=1e-9)
    rng = np.random.default_rng(0)
    for broken in (X + 1e-3 * np.abs(X).max() * rng.normal(size=X.shape), X[:, ::-1], X * np.linspace(1, 1.01, g.G)):
        assert g.certificate(broken, e, mu)["rel_gap"] > 100 * solvers_fo.SVM_TOL
    assert g.certificate(X, e, mu * rng.uniform(0.9, 1.1, mu.shape))["rel_gap"] > 100 * solvers_fo.SVM_TOL
    assert g.certificate(-X, e, mu)["primal"] == np.inf  # infeasible after any positive scaling


def test_margin_not_certified_raises_and_auto(monkeypatch):
    s = np.round(500 * 0.01 ** (np.arange(AUTO_GROUPS + 3) / (AUTO_GROUPS + 2))).astype(int)
    assert cs_svm(s, s ** 0.25, "ldt").info["method"] == "first-order"
    assert cs_svm([8, 8, 3, 3, 1], [1.0, 1.0, 2.0, 2.0, 3.0]).info["method"] == "reduced"
    monkeypatch.setattr(solvers_fo, "SVM_TOL", -1.0)
    with pytest.raises(RuntimeError, match="duality gap"):
        nuclear_svm(SVM_SIZES[0], method="first-order")
    assert cs_svm(s, s ** 0.25, "ldt").info["method"] == "reduced"  # "auto" falls back


def test_grouped_margins_match_their_definition_and_adjoint():
    from nclab.solvers_fo import GroupedMargins

    rng = np.random.default_rng(3)
    sizes = np.array([40, 40, 12, 5, 5, 5, 1])
    g = GroupedMargins(sizes, sizes ** 0.25, np.ones(sizes.size))
    Xt, e = rng.normal(size=(g.G, g.G)), rng.normal(size=g.G)
    d, A = g.logits(Xt, e)  # m_gh = c_h (r_h d_h − r_g A_gh) on the class pairs that exist
    want = g.c[None, :] * ((g.r * d)[None, :] - g.r[:, None] * A)
    np.testing.assert_allclose(g.margins(Xt, e)[g.mask], want[g.mask], rtol=1e-12, atol=1e-12)
    assert np.all(np.isinf(g.margins(Xt, e)[~g.mask]))
    # the margins are linear in (X̃, e): Σ N α m(X̃, e) = ⟨gX, X̃⟩ + ⟨ge, e⟩ for (gX, ge) = adjoint(α)
    alpha = rng.uniform(size=(g.G, g.G))
    gX, ge = g.adjoint(alpha)
    lhs = float(np.sum(g.N * alpha * np.where(g.mask, g.margins(Xt, e), 0.0)))
    assert lhs == pytest.approx(float(np.sum(gX * Xt) + ge @ e), rel=1e-12)


def test_lbfgs_minimizes_carries_its_scale_and_leaves_the_start_alone():
    rng = np.random.default_rng(5)
    a, b = np.geomspace(1.0, 1e3, 200), rng.normal(size=200)  # ½ zᵀ diag(a) z − bᵀz, minimizer b/a

    def fun(z):
        return 0.5 * z @ (a * z) - b @ z, a * z - b

    z0, state = np.zeros(200), {}
    z, _, it = solvers_fo.lbfgs(fun, z0, gtol=1e-9, state=state)
    assert np.all(z0 == 0.0) and it < 5000
    np.testing.assert_allclose(z, b / a, rtol=1e-8, atol=1e-10)
    # s·y/y·y of a quadratic is an inverse Rayleigh quotient: within the inverse Hessian's spectrum
    assert 1 / a.max() <= state["gamma"] <= 1 / a.min()
    z2, _, it2 = solvers_fo.lbfgs(fun, z, gtol=1e-9, state=state)  # already optimal: no step taken
    assert it2 == 0 and np.array_equal(z2, z)
