"""Regression tests for issue 14: bad input gets a ValueError naming the parameter, never a silent answer."""

import re

import numpy as np
import pytest
import torch

from nclab.data import step_imbalanced, take_sizes
from nclab.frames import psd_sqrt
from nclab.labels import class_sizes, one_hot, step_sizes
from nclab.metrics import nc1
from nclab.nets import MLP, train_classifier


def test_psd_sqrt_rejects_negative_eigenvalue_naming_it():
    with pytest.raises(ValueError, match=r"smallest eigenvalue -4"):
        psd_sqrt(np.diag([1.0, -4.0]))


def test_psd_sqrt_keeps_round_off_and_squares_back():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((5, 3))
    A = B @ B.T  # rank 3: two eigenvalues are 0 up to round-off (possibly slightly negative)
    S = psd_sqrt(A)
    assert np.allclose(S @ S, A, atol=1e-10)
    assert np.allclose(psd_sqrt(np.diag([1.0, 4.0])), np.diag([1.0, 2.0]))


@pytest.mark.parametrize("A, what", [(np.ones((2, 3)), "square"), ([[1.0, 2.0], [0.0, 1.0]], "symmetric"),
                                     ([[np.nan, 0], [0, 1]], "NaN"), ("abc", "numeric")])
def test_psd_sqrt_rejects_malformed(A, what):
    with pytest.raises(ValueError, match=what):
        psd_sqrt(A)


def test_nc1_of_a_single_class_is_an_error():
    H = np.random.default_rng(0).standard_normal((3, 6))
    with pytest.raises(ValueError, match="single class"):
        nc1(H, np.zeros(6, dtype=int))


def test_nc1_rejects_nan_features():
    H = np.ones((2, 4))
    H[0, 0] = np.nan
    with pytest.raises(ValueError, match="H has NaN"):
        nc1(H, [0, 0, 1, 1])


@pytest.mark.parametrize("y", [["a", "b"], [0.5, 1.0], [0, np.nan], [[0, 1]], []])
def test_one_hot_names_y(y):
    with pytest.raises(ValueError, match=r"\by\b"):
        one_hot(y)


def test_step_sizes_huge_R_names_R_and_range():
    with pytest.raises(ValueError, match=r"R=1e\+30 is out of range: allowed \[1, 1e\+12\]"):
        step_sizes(4, 1e30, 2)
    assert step_sizes(4, 1e6, 2, 2).tolist() == [2_000_000] * 2 + [2] * 2


def test_class_sizes_too_large_or_strings():
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=1e\+20 is out of range"):
        class_sizes([10, 1e20])
    with pytest.raises(ValueError, match="class_sizes"):
        class_sizes(["a", "b"])


def test_step_imbalanced_too_many_test_examples():
    with pytest.raises(ValueError, match=r"test_per_class=1000 .* allowed test_per_class <= \d+"):
        step_imbalanced("digits", k=4, R=5, k_min=2, n_min=4, test_per_class=1000)


def test_step_imbalanced_too_many_training_examples_names_R_and_n_min():
    with pytest.raises(ValueError, match=r"R=100, n_min=10"):
        step_imbalanced("digits", k=4, R=100, k_min=2, n_min=10)


def test_take_sizes_needs_one_label_per_row():
    with pytest.raises(ValueError, match="y must be a label vector"):
        take_sizes(np.zeros((4, 2)), [0, 1, 0], [1, 1])


def _model():
    return MLP(4, 3, hidden=8, depth=1, feat_dim=4, seed=0)


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((6, 5)), [0, 1, 2, 0, 1, 2], r"X has 5 columns but the model takes in_dim=4"),
    (np.zeros((6, 4)), [0, 1, 2, 0, 1], r"X has 6 rows but y has 5 labels"),
    (np.zeros((6, 4)), [0, 1, 3, 0, 1, 2], r"y contains class 3 but the model has k=3"),
    (np.zeros((6, 4)), [0, 1, -1, 0, 1, 2], r"y=.* must hold non-negative integer"),
    (np.full((6, 4), np.nan), [0, 1, 2, 0, 1, 2], r"X has NaN"),
])
def test_train_classifier_rejects_mismatched_data(X, y, match):
    with pytest.raises(ValueError, match=match):
        train_classifier(_model(), X, y, epochs=1, progress=False)


def test_train_classifier_checks_any_module_by_a_probe_forward():
    model = torch.nn.Linear(4, 3, bias=False)
    with pytest.raises(ValueError, match="cannot take X with 5 columns"):
        train_classifier(model, np.zeros((3, 5)), [0, 1, 2], epochs=1, progress=False)
    with pytest.raises(ValueError, match="k=3 outputs"):
        train_classifier(model, np.zeros((3, 4)), [0, 1, 5], epochs=1, progress=False)
    hist = train_classifier(model, np.eye(3, 4), [0, 1, 2], epochs=2, progress=False)
    assert len(hist["loss"]) == 2


# ---- issue 14, second round: the modules the first round left (each was a hang, a silent NaN or an accepted
# wrong value in the common-inputs table)
def _bad_calls():
    import torch

    from nclab import convex, darex, frames, mcl, ntp
    from nclab.mcl_models import TinyTransformer

    delta = {"w": torch.ones(3, 3)}
    probs = [[0.5, 0.5], [0.9, 0.1]]
    return {
        "geometry_from_class_logits inf (hung)": (lambda: frames.geometry_from_class_logits(
            [[np.inf, 0], [0, 1]], [2, 2]), "M has NaN or infinite"),
        "subspace_collapse inf (hung)": (lambda: ntp.subspace_collapse(
            np.array([[np.inf, 1, 2], [0, 1, 2]]), [0, 0, 1], 1), "H has NaN or infinite"),
        "TinyTransformer layers=1e30 (hung)": (lambda: TinyTransformer(5, layers=1e30), "layers="),
        "TinyTransformer layers=0": (lambda: TinyTransformer(5, layers=0), "layers=0"),
        "check_schedule t=2.5": (lambda: mcl.check_schedule([1, 2], t=2.5), "t=2.5"),
        "divergence of 1.5": (lambda: mcl.divergence([1.5, -0.5], [0.5, 0.5]), "p must hold probabilit"),
        "divergence rows not summing to 1": (lambda: mcl.divergence([0.9, 0.9], [0.5, 0.5]), "summing to 1.8"),
        "mcl_from_probs NaN": (lambda: mcl.mcl_from_probs([[np.nan, 1.0]] * 2, [1, 2], 0), "P must hold"),
        "mcl_from_probs target out of vocabulary": (lambda: mcl.mcl_from_probs(probs, [1, 2], 7), "target=7"),
        "damcl kind": (lambda: mcl.damcl_from_probs(probs, [1, 2], div="l2"), "div='l2'"),
        "dare q=1.5": (lambda: darex.dare(delta, 0.5, q=1.5), "q=1.5"),
        "magnitude_prune scale=-1": (lambda: darex.magnitude_prune(delta, 0.5, scale=-1), "scale=-1"),
        "output_change_stats NaN delta": (lambda: darex.output_change_stats(
            [[np.nan, 1.0]], [1.0, 1.0], 0.5), "Delta has NaN"),
        "ntp_max_margin NaN support": (lambda: convex.ntp_max_margin([[1, np.nan], [0, 1]]), "S has NaN"),
        "decompose NaN logits": (lambda: ntp.decompose([[np.nan, 1.0], [0, 1]], [[1, 0], [0, 1]]), "L has NaN"),
    }


@pytest.mark.parametrize("case", sorted(_bad_calls()))
def test_second_round_bad_inputs_get_a_clear_error(case):
    call, message = _bad_calls()[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
