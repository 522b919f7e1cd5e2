"""Checked exercises for the notebooks: ``check_<name>(student_fn)`` runs the student's function on fresh
seeded random inputs against the nclab reference and answers with a specific hint (``Feedback``).

``EXERCISES[key]`` lists the exercises of notebook ``key`` ("01" … "08"), in order; ``for_notebook(stem)``
finds them from a notebook name. A stub raising ``NotImplementedError`` is reported "not done yet".
"""

from __future__ import annotations

from dataclasses import dataclass

from nclab.exercises import geometry as _g
from nclab.exercises import language as _l
from nclab.exercises import probe as _p
from nclab.exercises.core import Feedback, Spec, run
from nclab.exercises.tasks import TASKS

TASKS = {**TASKS, **_p.TASKS}  # notebook 08 keeps its tasks beside its checks


@dataclass(frozen=True)
class Exercise:
    """One exercise: its notebook key, the checked ``Spec``, a title, the task (markdown) and the solution."""

    notebook: str
    spec: Spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def number(self) -> int:
        return self.spec.number

    @property
    def title(self) -> str:
        return TASKS[self.name][0]

    @property
    def task(self) -> str:
        return TASKS[self.name][1]

    @property
    def solution(self) -> str:
        return TASKS[self.name][2]

    def check(self, fn, seed: int = 0) -> Feedback:
        return run(self.spec, fn, seed)


_SPECS = {"01": [_g.SEL, _g.RATIO, _g.SELI_W], "02": [_g.DELTA, _g.LA], "03": [_g.SCL, _g.OF, _g.SCL_OPT],
          "04": [_g.PGRAM, _g.ETF, _g.FIXED_CE], "05": [_l.IN_SUPPORT, _l.ENTROPY, _l.NTP_LOSS],
          "06": [_l.DARE, _l.DAREX_Q], "07": [_l.JSD, _l.MCL],
          "08": [_p.GRAM, _p.NC1, _p.MERGE]}
EXERCISES: dict[str, list[Exercise]] = {key: [Exercise(key, s) for s in specs] for key, specs in _SPECS.items()}
BY_NAME: dict[str, Exercise] = {ex.name: ex for exs in EXERCISES.values() for ex in exs}


def for_notebook(stem: str) -> list[Exercise]:
    """The exercises of a notebook from its name ("01_seli" or "01"); [] if it has none."""
    return EXERCISES.get(str(stem)[:2], [])


def check(name: str, fn, seed: int = 0) -> Feedback:
    """Check ``fn`` as the answer to exercise ``name`` (one of ``BY_NAME``)."""
    if name not in BY_NAME:
        raise ValueError(f"exercise name={name!r} is unknown: allowed {sorted(BY_NAME)}")
    return BY_NAME[name].check(fn, seed)


def _make_check(ex: Exercise):
    def check_fn(fn, seed: int = 0) -> Feedback:
        return ex.check(fn, seed)

    check_fn.__name__ = f"check_{ex.name}"
    check_fn.__doc__ = f"Check your `{ex.name}` ({ex.title}) on fresh random inputs; returns a Feedback with a hint."
    return check_fn


for _ex in BY_NAME.values():
    globals()[f"check_{_ex.name}"] = _make_check(_ex)

__all__ = ["EXERCISES", "BY_NAME", "Exercise", "Feedback", "check", "for_notebook"] + [
    f"check_{n}" for n in BY_NAME]
