"""Checked exercises: the marked solutions pass, every known wrong variant gets its own hint, a stub is
reported "not done", other failures are reported (never raised)."""

import numpy as np
import pytest

from nclab import exercises as E
from nclab.exercises.core import as_array

NAMES = sorted(E.BY_NAME)


def _solution(name):
    ns = {}
    exec(E.BY_NAME[name].solution, ns)
    return ns[name]


def test_registry_covers_every_notebook_with_two_or_three_exercises():
    assert sorted(E.EXERCISES) == [f"{i:02d}" for i in range(1, 9)]
    for key, exs in E.EXERCISES.items():
        assert 2 <= len(exs) <= 3, key
        assert [ex.number for ex in exs] == list(range(1, len(exs) + 1))
        for ex in exs:
            assert "### BEGIN SOLUTION" in ex.solution and "### END SOLUTION" in ex.solution
            assert callable(getattr(E, f"check_{ex.name}"))
    assert E.for_notebook("05_ntp_subspace_collapse") == E.EXERCISES["05"]
    assert E.for_notebook("99_none") == []


@pytest.mark.parametrize("name", NAMES)
def test_marked_solution_passes_on_several_seeds(name):
    fn = _solution(name)
    for seed in (0, 1):
        fb = getattr(E, f"check_{name}")(fn, seed=seed)
        assert fb.status == "correct" and fb, str(fb)


@pytest.mark.parametrize("name", NAMES)
def test_each_wrong_variant_gets_its_own_hint(name):
    ex = E.BY_NAME[name]
    assert len(ex.spec.variants) >= 2
    hints = [h for h, _ in ex.spec.variants]
    assert len(set(hints)) == len(hints)
    for hint, wrong in ex.spec.variants:
        fb = ex.check(wrong)
        assert fb.status == "wrong" and not fb
        assert fb.message == hint, f"{name}: expected hint {hint!r}, got {fb.message!r}"


@pytest.mark.parametrize("name", NAMES)
def test_stub_reports_not_done(name):
    def stub(*args):
        raise NotImplementedError("not done yet")

    fb = E.check(name, stub)
    assert fb.status == "not done"
    assert f"exercise {E.BY_NAME[name].number} ({name}): not done yet" in str(fb)


def test_crash_and_non_callable_are_reported_not_raised():
    def broken(y, k):
        return y[10**6]

    fb = E.check_sel_matrix(broken)
    assert fb.status == "error" and "IndexError" in fb.message
    assert E.check_sel_matrix("sel_matrix").status == "error"


def test_generic_hints_shape_transpose_factor_nan():
    from nclab.labels import sel_matrix

    assert "expected shape" in E.check_sel_matrix(lambda y, k: sel_matrix(y, k)[:, :2]).message
    assert "constant factor 3" in E.check_sel_matrix(lambda y, k: 3 * sel_matrix(y, k)).message
    assert "wrong sign" in E.check_sel_matrix(lambda y, k: -sel_matrix(y, k)).message
    fb = E.check_sel_matrix(lambda y, k: sel_matrix(y, k) + np.nan)
    assert "NaN" in fb.message
    fb = E.check_sel_matrix(lambda y, k: sel_matrix(y, k) + 0.01 * np.arange(len(y)))
    assert fb.status == "wrong" and "largest error" in fb.message


def test_rotation_invariant_check_accepts_a_rotated_answer():
    sol = _solution("etf_prototypes")

    def rotated(k, d):
        Q, _ = np.linalg.qr(np.random.default_rng(k).normal(size=(d, d)))
        return sol(k, d) @ Q

    assert E.check_etf_prototypes(rotated)


def test_unknown_name_and_feedback_display():
    with pytest.raises(ValueError, match="exercise name='nope'"):
        E.check("nope", print)
    fb = E.check_jsd(_solution("jsd"))
    assert "✓" in repr(fb) and "exercise 1 (jsd)" in fb._repr_html_()


def test_as_array_handles_torch_complex_none():
    import torch

    assert as_array(None) is None
    assert as_array(torch.ones(2)).dtype == float
    assert as_array(np.array([1 + 0j])).dtype == float
    assert np.iscomplexobj(as_array(np.array([1 + 1j])))


def test_probe_exercises_hint_at_the_student_mistake():
    """Notebook 08: answers written as a student would (not the registered variants) get the intended hint."""

    def raw_distance(A, B):
        return np.linalg.norm(A - B)

    assert "Frobenius norm first" in E.check_normalized_gram_distance(raw_distance).message

    def nc1_sample_mean(H, y, k):  # centres the class means on the mean of all examples
        M = np.array([H[y == c].mean(axis=0) for c in range(k)])
        Sw = sum(np.outer(h - M[c], h - M[c]) for h, c in zip(H, y, strict=True)) / len(H)
        Sb = sum(np.outer(m - H.mean(axis=0), m - H.mean(axis=0)) for m in M) / k
        return np.trace(Sw @ np.linalg.pinv(Sb)) / k

    assert "unweighted" in E.check_nc1_from_features(nc1_sample_mean).message

    def merge_without_between_term(n_a, mu_a, S_a, n_b, mu_b, S_b):
        return S_a + S_b

    fb = E.check_merge_scatter(merge_without_between_term)
    assert fb.status == "wrong" and "between-chunk term" in fb.message

    def merge_from_rows(n_a, mu_a, S_a, n_b, mu_b, S_b):  # a correct answer by another route: the pooled mean
        mu = (n_a * mu_a + n_b * mu_b) / (n_a + n_b)
        return S_a + n_a * np.outer(mu_a - mu, mu_a - mu) + S_b + n_b * np.outer(mu_b - mu, mu_b - mu)

    assert E.check_merge_scatter(merge_from_rows)
