"""The generic interactive app: ipywidgets controls + plotly FigureWidgets, updated in place.

Each app = a *pure* state function (control values → arrays to draw, testable without a kernel) and
an apply function writing that state into figures inside ``batch_update``.
"""

from __future__ import annotations

import contextlib
import time

import ipywidgets as widgets
import numpy as np

from nclab import plots


class App:
    """Controls (name → widget) driving figures through ``state_fn(**values)`` and
    ``apply_fn(figures, state)``; ``last_update_ms`` records the latest update's wall time."""

    def __init__(self, controls: dict, figures: list, state_fn, apply_fn, title: str = ""):
        self.controls = controls
        self.figures = [plots.as_widget(f) for f in figures]
        self.state_fn, self.apply_fn = state_fn, apply_fn
        self.status = widgets.HTML()
        self.title = title
        self.last_update_ms = float("nan")
        self.state = None
        self.extra: list = []  # further widgets (buttons) shown beside the controls
        for w in controls.values():
            w.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _on_change(self, change) -> None:
        self.update()

    def update(self) -> dict:
        """Recompute the state from the controls and redraw every figure in one batch."""
        t0 = time.perf_counter()
        try:
            self.state = self.state_fn(**self.values())
        except ValueError as err:  # defensive: controls are constrained, but never draw garbage
            self.status.value = f"<span style='color:#b00'>{err}</span>"
            return {}
        with contextlib.ExitStack() as stack:
            for fig in self.figures:
                stack.enter_context(fig.batch_update())
            self.apply_fn(self.figures, self.state)
        self.last_update_ms = 1e3 * (time.perf_counter() - t0)
        self.status.value = self.state.get("message", "") + f" <small>(update {self.last_update_ms:.0f} ms)</small>"
        return self.state

    def widget(self) -> widgets.Widget:
        head = [widgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        controls = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        return widgets.VBox([*head, controls, *([widgets.HBox(self.extra)] if self.extra else []), self.status,
                             *[plots.view(f) for f in self.figures]])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())


def nan_to_none(a) -> list:
    """Floats for plotly, with NaN/inf as None (a gap in a line)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


def apply_heatmaps(figs: list, state: dict, retitle: bool = False) -> None:
    """Write ``state["grams"]`` (name → matrix) into the first figure's heatmaps, in order; with
    ``retitle`` the subplot titles become the names too."""
    for trace, mat in zip(figs[0].data, state["grams"].values(), strict=True):
        trace.z = mat
    if retitle:
        for ann, name in zip(figs[0].layout.annotations, state["grams"], strict=True):
            ann.text = name
