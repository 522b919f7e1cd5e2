import numpy as np
import plotly.graph_objects as go
import pytest

from nclab import plots
from nclab.apps.seli import (
    CURVES,
    apply_ridge,
    apply_seli_theory,
    ridge_app,
    ridge_state,
    seli_theory_app,
    seli_theory_figures,
    seli_theory_state,
)
from nclab.convex import zero_threshold
from nclab.labels import step_sizes
from nclab.metrics import normalized
from nclab.seli import seli_from_svd, seli_geometry, step_closed_form


def test_heatmaps_and_curves_builders():
    fig = plots.heatmaps({"a": np.eye(2), "b": -np.eye(2)})
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    np.testing.assert_array_equal(fig.data[1].z, -np.eye(2))
    fig = plots.curves([1, 2, 3], {"x": [1, 2, 3], "y": [3, 2, np.nan]}, log_x=True, dash={"y": "dash"})
    assert fig.layout.xaxis.type == "log" and fig.data[1].line.dash == "dash"
    hist = {"step": [0, 1, 10], "d_W": [1.0, 0.5, 0.1]}
    fig = plots.history_figure({"run": hist}, ["d_W"])
    assert list(fig.data[0].x) == [1, 10]  # step 0 cannot sit on a log axis


def test_seli_theory_state_is_pure_and_matches_closed_form():
    s1 = seli_theory_state(5, 20, 2)
    s2 = seli_theory_state(5, 20, 2)
    np.testing.assert_array_equal(s1["curves"]["cos(w_min, w_min′)"], s2["curves"]["cos(w_min, w_min′)"])
    i = int(np.argmin(np.abs(s1["R_grid"] - 20)))
    assert s1["curves"]["‖w_maj‖/‖w_min‖"][i] == pytest.approx(np.sqrt(step_closed_form(5, 20, 2)["w_sq_ratio"]))
    np.testing.assert_allclose(s1["grams"]["W Wᵀ (SELI)"], normalized(seli_geometry(step_sizes(5, 20, 2)).W_gram))
    assert s1["etf_cos"] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="k_min"):
        seli_theory_state(4, 10, 4)


def test_apply_seli_theory_on_plain_figures_moves_marker_and_data():
    figs = seli_theory_figures(seli_theory_state(4, 10, 2))
    before = np.array(figs[1].data[0].y, dtype=float)
    state = seli_theory_state(4, 100, 1)
    apply_seli_theory(figs, state)
    assert list(figs[1].data[-1].x) == [100.0, 100.0]
    assert not np.allclose(np.array(figs[1].data[0].y, dtype=float)[:5], before[:5])
    # k_min = 1: the min–min cosine is undefined and drawn as a gap, never as NaN
    idx = list(CURVES).index("cos(w_min, w_min′)")
    assert all(v is None for v in figs[1].data[idx].y)
    # ratios (log axis, top) and cosines ([−1, 1], bottom) sit on separate axes
    assert {figs[1].data[i].yaxis for i, (_, is_ratio) in enumerate(CURVES.values()) if is_ratio} == {"y"}
    assert {figs[1].data[i].yaxis for i, (_, is_ratio) in enumerate(CURVES.values()) if not is_ratio} == {"y2"}
    assert figs[1].layout.yaxis.type == "log" and list(figs[1].layout.yaxis2.range) == [-1.05, 1.05]


def test_seli_app_slider_changes_plotted_data_and_kmin_is_clamped():
    app = seli_theory_app(k=4, R=10, k_min=2)
    z0 = np.array(app.figures[0].data[0].z)
    # the readout shows the R the closed forms use: 10**2.95 = 891.251 (not "891")
    assert format(10**2.95, app.controls["R"].readout_format) == "891.251"
    app.controls["R"].value = 100
    assert not np.allclose(np.array(app.figures[0].data[0].z), z0)
    # the plotted Gram is SELI at R = 100, computed independently by the SVD of P Y (not the closed form)
    np.testing.assert_allclose(np.array(app.figures[0].data[0].z),
                               normalized(seli_from_svd(step_sizes(4, 100, 2, 1)).W_gram), atol=1e-10)
    assert np.isfinite(app.last_update_ms) and app.last_update_ms > 0  # the update ran and was timed
    app.controls["k"].value = 6
    app.controls["k_min"].value = 5
    app.controls["k"].value = 3
    assert app.controls["k_min"].value == 2 and app.controls["k_min"].max == 2
    assert np.array(app.figures[0].data[0].z).shape == (3, 3)
    assert "error" not in app.status.value.lower()


def test_ridge_state_caps_lambda_below_zero_solution():
    state = ridge_state(4, 100, 2, lam=1.0)
    lam0 = zero_threshold(step_sizes(4, 100, 2))
    assert state["lam"] == pytest.approx(0.9 * lam0)
    assert np.all(np.isfinite(state["path"]["d_W"]))
    # the readout says the λ used, and that the blown-up ratio near λ₀ is minority collapse
    assert "capped" in state["message"] and state["minority_collapse"] and "minority collapse" in state["message"]
    small = ridge_state(4, 10, 2, lam=1e-5)
    assert not small["minority_collapse"] and "minority collapse" not in small["message"]
    with pytest.raises(ValueError, match="lam"):
        ridge_state(4, 10, 2, lam=-1e-3)


def test_ridge_app_updates_in_place():
    app = ridge_app(R=10, lam=1e-2)
    before = np.array(app.figures[0].data[0].z)
    app.controls["lam"].value = 1e-5
    assert not np.allclose(np.array(app.figures[0].data[0].z), before)
    assert app.controls["lam"].continuous_update is False
    assert app.controls["lam"].readout_format == ".3g"
    # one fixed colour scale for all four Gram panels; short panel titles (they must not overlap)
    assert {(t.zmin, t.zmax) for t in app.figures[0].data} == {(-1.0, 1.0)}
    assert max(len(a.text) for a in app.figures[0].layout.annotations) <= 14
    figs = [go.Figure(f) for f in app.figures]
    apply_ridge(figs, ridge_state(4, 10, 2, 1e-3))
    assert list(figs[1].data[-1].x) == pytest.approx([1e-3, 1e-3])


def test_cssvm_state_closed_form_agrees_with_solver_markers():
    from nclab.apps.cssvm import cssvm_state

    s = cssvm_state("cdt", 4, 10.0, 2, 0.3)
    for label, dots in s["solver"].items():
        line = np.interp(s["solver_gammas"], s["gamma_grid"], s["curves"][label])
        np.testing.assert_allclose(dots, line, atol=2e-3)  # interpolation on a 0.025-spaced grid
    assert s["symmetric"]["H"] == pytest.approx(-0.5)
    assert "etf" in cssvm_state("ldt", 4, 10.0, 2, 0.3)["symmetric"]


def test_cssvm_app_button_jumps_to_symmetric_gamma():
    from nclab.apps.cssvm import cssvm_app, jump_to_symmetric

    app = cssvm_app(kind="cdt", gamma=0.0)
    before = np.array(app.figures[0].data[-1].x)
    app.extra[0].value = "H"
    app.extra[1].click()
    assert app.controls["gamma"].value == pytest.approx(-0.5)
    assert not np.allclose(np.array(app.figures[0].data[-1].x), before)
    app.extra[0].value = "W"
    app.extra[1].click()  # equal classifier norms at γ ≈ 0.7976: the slider (and its readout) holds 0.798
    assert app.controls["gamma"].value == 0.798 and "γ=+0.798" in app.status.value
    app.extra[0].value = "etf"
    app.extra[1].click()
    assert app.controls["kind"].value == "ldt" and app.controls["gamma"].value == 0.5
    assert jump_to_symmetric({"symmetric": {"W": float("nan")}}, "W") is None
    # at LDT γ = ½ (the "ETF (LDT)" jump) the classifier curves meet the ETF references at the marker: W ratio 1,
    # every W cosine −1/(k−1); ratios and cosines are drawn on separate axes
    s = app.state
    i = int(np.argmin(np.abs(s["gamma_grid"] - 0.5)))
    assert s["curves"]["W: ‖maj‖²/‖min‖²"][i] == pytest.approx(1.0)
    for c in ("cos maj–maj", "cos min–min", "cos maj–min"):
        assert s["curves"][f"W: {c}"][i] == pytest.approx(-1 / 3)
        assert s["curves"][f"H: {c}"][i] == pytest.approx(-1 / 3)
    assert s["curves"]["H: ‖maj‖²/‖min‖²"][i] == pytest.approx(0.1)  # ‖h_c‖² ∝ 1/n_c: still 1/R
    fig = app.figures[0]
    assert fig.data[0].yaxis == "y" and fig.data[2].yaxis == "y2" and fig.layout.yaxis.type == "log"


def test_scl_theory_state_relu_is_of_and_value_matches_formula():
    from nclab.apps.scl import scl_theory_state

    s = scl_theory_state(4, 10, 2, 1.0, True)
    assert s["d_OF"] < 1e-4 and s["value"] == pytest.approx(s["formula"], rel=1e-7)
    s2 = scl_theory_state(4, 10, 2, 1.0, False)
    assert s2["d_OF"] > 0.1


def test_scl_theory_app_opens_without_relu_and_sliders_move_the_gram():
    from nclab.apps.scl import scl_theory_app

    app = scl_theory_app()
    assert app.controls["relu"].value is False and "no ReLU" in app.status.value
    z0 = np.array(app.figures[0].data[0].z)
    assert np.abs(z0 - np.eye(4)).max() > 0.5  # imbalance visible: not the OF
    app.controls["R"].value = 1
    assert np.abs(np.array(app.figures[0].data[0].z) - z0).max() > 0.5
    assert app.figures[0].layout.xaxis.title.text == "class" and app.figures[0].layout.xaxis.dtick == 1


def test_batching_app_binding_flips_verdict():
    from nclab.apps.scl import batching_app

    app = batching_app(scheme="partition", binding=False)
    assert "NOT" in app.status.value
    z0 = np.array(app.figures[0].data[0].z)
    app.controls["binding"].value = True
    assert "unique minimizer" in app.status.value and "NOT" not in app.status.value
    assert not np.array_equal(np.array(app.figures[0].data[0].z), z0)


def test_prototypes_state_cached_and_app_updates():
    from nclab.apps.prototypes import _prototype_geometry, prototypes_app, prototypes_state

    prototypes_state("ETF", 4, 1.0, 2, False)
    hits = _prototype_geometry.cache_info().hits
    s = prototypes_state("ETF", 4, 1.0, 2, False)
    assert _prototype_geometry.cache_info().hits == hits + 1  # the second call re-uses the trained result
    assert set(s["grams"]) == {"learned class means", "prototypes", "CE-limit (n_w → ∞)"}
    app = prototypes_app(preset="OF", n_w=4, R=2)
    z0 = np.array(app.figures[0].data[0].z)
    app.controls["n_w"].value = 256
    assert not np.allclose(np.array(app.figures[0].data[0].z), z0)


def test_prototypes_app_opens_where_n_w_moves_the_geometry():
    from nclab.apps.prototypes import prototypes_app

    app = prototypes_app()
    assert app.controls["n_w"].value == 0
    minority = app.figures[1].data[0].y[1]  # learned minority–minority cosine, drawn as a bar
    assert minority > 0.3  # the minorities nearly merge without prototypes
    app.controls["n_w"].value = 16
    assert app.figures[1].data[0].y[1] < minority - 0.3  # raising n_w visibly pulls them apart
    assert app.figures[1].data[0].y[1] == pytest.approx(app.state["pair_cos"]["learned class means"][1])


def test_ntp_state_and_apps():
    from nclab.apps.ntp import ntp_app, ntp_data_app, ntp_data_state, ntp_state
    from nclab.ntp import synthetic

    data = synthetic(8, 6, 3, seed=0)
    s3, s6 = ntp_state(data, -3), ntp_state(data, -6)
    assert s6["gap"] < s3["gap"] and s6["cos"] > s3["cos"]
    assert set(s3["grams"]) == {"in-support part", "L_in (log-ratios)"} and len(s3["growing"]) == 3
    app = ntp_app(data, lam=1e-2)
    z0, g0 = np.array(app.figures[0].data[0].z), np.array(app.figures[1].data[0].z)
    zmax = app.figures[1].data[0].zmax
    app.controls["lam"].value = 1e-5
    assert not np.allclose(np.array(app.figures[0].data[0].z), z0)
    assert not np.allclose(np.array(app.figures[1].data[0].z), g0)
    assert app.figures[1].data[0].zmax == zmax and zmax >= np.abs(app.figures[1].data[0].z).max()  # fixed scale
    assert app.controls["lam"].readout_format == ".1e"
    assert ntp_data_state(10, 6, 20, 3, 0)["grams"]["support S (words × contexts)"].shape == (6, 10)
    lab = ntp_data_app()
    lab.controls["V"].value = 12
    assert np.array(lab.figures[0].data[0].z).shape[0] == 12


def test_darex_apps():
    from nclab.apps.darex import darex_theory_app, darex_theory_state, flowchart_app

    s = darex_theory_state(0.99, 0.01, 0.0, 0.01, 1.0)
    np.testing.assert_allclose(s["mc_var"].sum(), s["var"].sum(), rtol=0.25)  # 400 draws
    assert s["dare_var"][-1] > 10 * s["dare_var"][len(s["ps"]) // 2]  # the blow-up as p → 1
    app = darex_theory_app(p=0.99, q=0.2)
    app.controls["p"].value = 0.5
    assert app.controls["q"].value >= 0.5  # q is kept ≥ 1 − p
    mean_axis, var_axis = app.figures[0].data[0].yaxis, app.figures[0].data[2].yaxis
    assert mean_axis != var_axis  # means and variances on separate axes
    assert app.controls["p"].readout_format == ".3f"  # 0.999 reads 0.999, not 1.00
    f = flowchart_app()
    assert f"{0.999:{f.controls['p'].readout_format}}" == "0.999"
    f.controls["delta_scale"].value = "large"
    assert "importance" in f.status.value


def test_mcl_apps():
    from nclab.apps.mcl import boost_app, mcl_app, mcl_state
    from nclab.data import KeyRecallLanguage
    from nclab.mcl import OracleModel, probability_cache

    lang = KeyRecallLanguage(n_keys=4, n_fillers=10, rho=0.1, seed=0)
    cache = probability_cache(OracleModel(lang), lang.sample(4, 24, seed=1), start=6, truth=lang.true_min_context)
    s = mcl_state(cache, 0.2, 1, "jsd", 0.1)
    assert s["auroc"] == pytest.approx(1.0) and 0.5 < s["short_fraction"] < 1
    app = mcl_app(cache)
    before = len(app.figures[0].data[1].x)
    app.controls["threshold"].value = 0.001
    assert "AUROC" in app.status.value and len(app.figures[0].data[1].x) == before
    assert all(w.style.description_width == "initial" for w in app.controls.values())  # labels not truncated
    b = boost_app({"alpha": [0, 1, 2], "plain": [0.4] * 3, "boosted": [0.4, 0.6, 0.8]})
    b.controls["alpha"].value = 2
    assert list(b.figures[0].data[-1].x) == [2.0, 2.0] and "0.800" in b.status.value


def test_mcl_app_swaps_its_model():
    from nclab.apps.mcl import MCLApp, mcl_app, mcl_state
    from nclab.data import KeyRecallLanguage
    from nclab.mcl import OracleModel, TinyTransformer, probability_cache

    lang = KeyRecallLanguage(n_keys=4, n_fillers=10, rho=0.1, seed=0)
    X = lang.sample(3, 16, seed=1)
    oracle = probability_cache(OracleModel(lang), X, start=6, truth=lang.true_min_context)
    untrained = probability_cache(TinyTransformer(lang.V, max_len=16, seed=0), X, start=6,
                                  truth=lang.true_min_context)
    app = mcl_app(oracle, model="exact oracle")
    assert app.state["auroc"] == pytest.approx(1.0) and "exact oracle" in app.status.value
    app.controls["threshold"].value = 0.01
    state = app.add_model("transformer", untrained)
    assert app.controls["model"].value == "transformer" and list(app.controls["model"].options) == [
        "exact oracle", "transformer"]
    want = mcl_state(untrained, 0.2, 1, "jsd", app.controls["threshold"].value)
    assert state["auroc"] == pytest.approx(want["auroc"]) and "transformer" in app.status.value
    assert list(app.figures[1].data[0].y) == pytest.approx(list(want["tpr"]))  # the figures show the new model
    app.controls["model"].value = "exact oracle"  # and back
    assert app.state["auroc"] == pytest.approx(1.0)
    app.add_model("exact oracle", untrained)  # replacing the shown model redraws it
    assert app.state["auroc"] == pytest.approx(want["auroc"])
    with pytest.raises(ValueError, match="cache for model"):
        app.add_model("x", [1, 2])
    with pytest.raises(ValueError, match="caches is empty"):
        MCLApp({})


def test_theme_setting_and_errors(monkeypatch):
    monkeypatch.setattr(plots, "_theme", None)
    monkeypatch.setenv("NCLAB_THEME", "dark")
    assert plots.theme() == "dark" and plots.curves([1], {"a": [1]}).layout.template is not None
    assert plots.template() == "plotly_dark+nclab"
    plots.set_theme("light")
    assert plots.template() == "plotly_white+nclab"
    with pytest.raises(ValueError, match="theme='sepia'"):
        plots.set_theme("sepia")
    monkeypatch.setattr(plots, "_theme", None)
    monkeypatch.setenv("NCLAB_THEME", "neon")
    with pytest.raises(ValueError, match="NCLAB_THEME='neon'"):
        plots.theme()


def test_plot_mode_detection(monkeypatch):
    import sys

    for var in ("NCLAB_PLOT", "VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert plots.plot_mode() == "widget"
    monkeypatch.setenv("VSCODE_PID", "123")
    assert plots.plot_mode() == "static"
    monkeypatch.setenv("NCLAB_PLOT", "widget")
    assert plots.plot_mode() == "widget"  # the explicit setting wins
    monkeypatch.setenv("NCLAB_PLOT", "png")
    with pytest.raises(ValueError, match="NCLAB_PLOT='png'"):
        plots.plot_mode()


@pytest.mark.parametrize("mode", ["widget", "static"])
def test_apps_update_in_both_plot_modes(monkeypatch, mode):
    import ipywidgets as widgets

    monkeypatch.setenv("NCLAB_PLOT", mode)
    app = seli_theory_app(k=4, R=10, k_min=2)
    fig = app.figures[0]
    assert isinstance(fig, go.FigureWidget if mode == "widget" else plots.StaticFigure)
    z0 = np.array(fig.data[0].z)
    draws = getattr(fig, "draws", 0)
    app.controls["R"].value = 100
    assert not np.allclose(np.array(fig.data[0].z), z0)
    if mode == "static":
        assert fig.draws == draws + 1  # redrawn once per update, inside the Output
        assert any(isinstance(w, widgets.Output) for w in app.widget().children)
