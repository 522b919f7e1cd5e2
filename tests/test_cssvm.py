import numpy as np
import pytest

from nclab.convex import cs_svm, regularized_optimum
from nclab.cssvm import gamma_curves, step_delta, step_geometry, step_grams, symmetric_gamma
from nclab.frames import simplex_etf
from nclab.labels import step_sizes
from nclab.losses import make_loss
from nclab.metrics import gram_distance
from nclab.seli import seli_geometry, step_closed_form
from nclab.ufm import train_ufm


@pytest.mark.parametrize("kind", ["cdt", "ldt"])
@pytest.mark.parametrize("setting", [(4, 10, 2, 1), (5, 7, 2, 3), (3, 100, 1, 1), (6, 2, 4, 2)])
@pytest.mark.parametrize("gamma", [-1.5, -0.5, 0.0, 0.5, 1.0, 1.5])
def test_closed_form_equals_solver(kind, setting, gamma):
    k, R, km, nm = setting
    Wc, Hc = step_grams(k, R, km, R**gamma, kind, nm)
    geom = cs_svm(step_sizes(k, R, km, nm), step_delta(k, R, km, gamma), kind)
    assert np.abs(Wc - geom.W_gram).max() <= 1e-5 * np.abs(geom.W_gram).max()
    assert np.abs(Hc - geom.H_gram).max() <= 1e-5 * np.abs(geom.H_gram).max()


@pytest.mark.parametrize("kind", ["cdt", "ldt"])
def test_equal_factors_reduce_to_seli(kind):
    g = step_geometry(4, 10, 2, 1.0, kind)
    s = step_closed_form(4, 10, 2)
    assert g["w_sq_ratio"] == pytest.approx(s["w_sq_ratio"]) == pytest.approx(1.99525, abs=1e-5)
    assert g["h_cos_maj_min"] == pytest.approx(s["h_cos_maj_min"])


@pytest.mark.parametrize("seed", range(4))
def test_ldt_sqrt_n_is_etf_for_random_sizes(seed):
    sizes = np.random.default_rng(seed).integers(1, 50, size=5)
    g = cs_svm(sizes, np.sqrt(sizes), "ldt")
    assert gram_distance(g.W_gram, simplex_etf(5)) < 1e-6
    norms = np.sqrt(np.diag(g.H_gram))
    assert gram_distance(g.H_gram / np.outer(norms, norms), simplex_etf(5)) < 1e-6
    np.testing.assert_allclose(sizes * norms**2, (sizes * norms**2).mean(), rtol=1e-6)


def test_symmetric_gammas():
    assert symmetric_gamma(4, 10, 2, "cdt", "H") == pytest.approx(-0.5, abs=1e-10)  # spec: exactly R^{−1/2}
    assert symmetric_gamma(4, 10, 2, "cdt", "W") == pytest.approx(0.798, abs=1e-3)  # spec: ≈ R^{0.798}
    # independent: at each returned γ the convex CS-SVM (cvxpy, not the closed form) has equal maj/min norms
    sizes, maj = step_sizes(4, 10, 2, 1), np.array([True, True, False, False])
    for kind, target in (("cdt", "H"), ("cdt", "W"), ("ldt", "W"), ("ldt", "H")):
        g = symmetric_gamma(4, 10, 2, kind, target)
        geom = cs_svm(sizes, step_delta(4, 10, 2, g), kind)
        sq = np.diag(geom.W_gram if target == "W" else geom.H_gram)
        assert sq[maj].mean() / sq[~maj].mean() == pytest.approx(1, abs=1e-4), (kind, target)
        off = cs_svm(sizes, step_delta(4, 10, 2, g + 0.2), kind)  # a broken γ breaks the equality
        sq_off = np.diag(off.W_gram if target == "W" else off.H_gram)
        assert abs(sq_off[maj].mean() / sq_off[~maj].mean() - 1) > 1e-2
    # LDT's "etf" γ: the solver's classifier Gram at that γ is the simplex ETF, one step away it is not
    g = symmetric_gamma(4, 10, 2, "ldt", "etf")
    assert gram_distance(cs_svm(sizes, step_delta(4, 10, 2, g), "ldt").W_gram, simplex_etf(4)) < 1e-5
    assert gram_distance(cs_svm(sizes, step_delta(4, 10, 2, g + 0.2), "ldt").W_gram, simplex_etf(4)) > 1e-2
    with pytest.raises(ValueError, match="only for kind='ldt'"):
        symmetric_gamma(4, 10, 2, "cdt", "etf")
    with pytest.raises(ValueError, match="every γ"):
        symmetric_gamma(2, 10, 1, "ldt", "W")


def test_cdt_never_reaches_etf():
    d = [gram_distance(step_grams(4, 10, 2, 10**g, "cdt")[0], simplex_etf(4)) for g in np.linspace(-3, 3, 61)]
    assert min(d) > 0.05


def test_gamma_curves_shapes_and_values():
    c = gamma_curves(4, 10, 2, "cdt", [0.0, 0.5])
    assert len(c) == 8 and all(v.shape == (2,) for v in c.values())
    assert c["W: ‖maj‖²/‖min‖²"][0] == pytest.approx(1.99525, abs=1e-5)


def test_ufm_with_cdt_loss_lands_on_its_regularized_optimum():
    sizes = step_sizes(4, 10, 2, 2)
    loss = make_loss("cdt", sizes, gamma=1.0)
    opt = regularized_optimum(sizes, 1e-2, loss=loss)
    run = train_ufm(class_sizes=sizes, d=6, loss=loss, lam=1e-2, lr=1.0, steps=20000, tol=1e-8,
                    reference=opt, progress=False)
    assert run.converged and run.final()["d_W"] < 1e-3
    # the CDT optimum is not the CE one
    assert gram_distance(opt.W_gram, regularized_optimum(sizes, 1e-2).W_gram) > 1e-2


def test_la_limit_is_seli_and_ufm_tol_needs_full_batch():
    sizes = step_sizes(4, 10, 2)
    d = [gram_distance(regularized_optimum(sizes, lam, loss=make_loss("la", sizes)).W_gram,
                       seli_geometry(sizes).W_gram) for lam in (1e-2, 1e-4, 1e-7)]
    assert d[0] > d[1] > d[2]  # slowly (≈ 1/log(1/λ)) towards SELI: ι drops out of the limit
    with pytest.raises(ValueError, match="tol=1e-08 needs full-batch"):
        train_ufm(class_sizes=sizes, d=4, tol=1e-8, batch_size=5, progress=False)


def test_bad_inputs():
    with pytest.raises(ValueError, match="delta="):
        cs_svm([5, 1, 1], [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="3 entries but there are k=2"):
        cs_svm([5, 1], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="kind='la'"):
        cs_svm([5, 1], [1.0, 1.0], "la")
    with pytest.raises(ValueError, match="delta_ratio=0"):
        step_geometry(4, 10, 2, 0)
    with pytest.raises(ValueError, match="k_min=4"):
        step_geometry(4, 10, 4, 1.0)
    with pytest.raises(ValueError, match="kind="):
        step_geometry(4, 10, 2, 1.0, "vs")
