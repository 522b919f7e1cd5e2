"""Plotly figure builders: pure functions (arrays in, ``go.Figure`` out), the light/dark theme, and the
choice between a live ``FigureWidget`` and a static figure redrawn in an ``ipywidgets.Output``.

Settings (plain environment variables, read when a figure is made): ``NCLAB_PLOT=widget|static`` (default:
static in Colab and VS Code, where FigureWidget does not render, widget elsewhere) and
``NCLAB_THEME=light|dark`` (default light; ``set_theme`` changes it for the session).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from nclab._checks import integer, real

# JupyterLab renders the mimetype; exported HTML pages (``nclab run``) get a loader for plotly.js.
pio.renderers.default = "plotly_mimetype+notebook_connected"

THEMES = {"light": "plotly_white+nclab", "dark": "plotly_dark+nclab"}
# Layered on either theme: dimensionless log axes read 1e-6, not 1µ; figures fill the cell's width.
_AXIS = dict(exponentformat="power", automargin=True)
pio.templates["nclab"] = go.layout.Template(layout=dict(
    autosize=True, xaxis=_AXIS, yaxis=_AXIS, title=dict(x=0.02, xanchor="left"),
    font=dict(size=12), coloraxis=dict(colorbar=dict(exponentformat="power"))))
_theme: str | None = None


def set_theme(name: str) -> None:
    """Use the "light" or "dark" plot theme for figures made from now on."""
    global _theme
    if name not in THEMES:
        raise ValueError(f"theme={name!r} is not allowed: use {sorted(THEMES)}")
    _theme = name


def theme() -> str:
    """The current theme: ``set_theme``'s choice, else $NCLAB_THEME, else "light"."""
    name = _theme or os.environ.get("NCLAB_THEME", "light")
    if name not in THEMES:
        raise ValueError(f"NCLAB_THEME={name!r} is not allowed: use {sorted(THEMES)}")
    return name


def template() -> str:
    """The plotly template of the current theme."""
    return THEMES[theme()]


def heatmaps(mats: dict[str, np.ndarray], height: int = 300, zmid: float | None = 0.0,
             zmax: float | None = None, scale_title: str = "") -> go.Figure:
    """One row of heatmaps (titles = dict keys), rows drawn top-down, diverging colour scale; with ``zmax``
    every panel uses the one fixed scale [−zmax, zmax] (so panels and slider positions compare), titled
    ``scale_title`` on the colour bar; class axes get integer ticks."""
    if not isinstance(mats, dict) or not mats:
        raise ValueError(f"mats must be a non-empty dict title → matrix, got {type(mats).__name__}")
    zmid = None if zmid is None else real("zmid", zmid)
    fixed = {} if zmax is None else {"zmin": -real("zmax", zmax, 0.0), "zmax": real("zmax", zmax, 0.0)}
    if fixed and fixed["zmax"] == 0:
        raise ValueError("zmax=0 is not allowed: use a positive scale or None for each panel's own")
    height = integer("height", height, 50, 10_000)
    names = list(mats)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    for i, name in enumerate(names, start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(mats[name]), colorscale="RdBu", zmid=None if fixed else zmid,
                                 reversescale=True, showscale=(i == len(names)), name=name,
                                 colorbar=dict(title=dict(text=scale_title, side="right")), **fixed),
                      row=1, col=i)
        fig.update_yaxes(autorange="reversed", dtick=1, row=1, col=i)
        fig.update_xaxes(dtick=1, row=1, col=i)
    fig.update_layout(template=template(), height=height, margin=dict(l=20, r=20, t=40, b=20))
    return fig


def curves(x, series: dict[str, np.ndarray], *, xlabel: str = "", ylabel: str = "", log_x: bool = False,
           log_y: bool = False, dash: dict[str, str] | None = None, height: int = 320,
           title: str = "") -> go.Figure:
    """Lines y(x) for each named series (NaN points are gaps); optional per-series dash style."""
    if not isinstance(series, dict):
        raise ValueError(f"series must be a dict name → values, got {type(series).__name__}")
    height = integer("height", height, 50, 10_000)
    fig = go.Figure()
    for name, y in series.items():
        fig.add_trace(go.Scatter(x=np.asarray(x), y=np.asarray(y, dtype=float), mode="lines", name=name,
                                 line=dict(dash=(dash or {}).get(name, "solid"))))
    fig.update_layout(template=template(), height=height, title=title, xaxis_title=xlabel, yaxis_title=ylabel,
                      margin=dict(l=40, r=20, t=40, b=40))
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def add_vline(fig: go.Figure, x: float, name: str = "current") -> go.Figure:
    """A vertical marker line as a trace (so it can be moved by updating its data)."""
    fig.add_trace(go.Scatter(x=[x, x], y=[0, 1], yaxis="y2", mode="lines", name=name,
                             line=dict(color="black", dash="dot"), showlegend=False))
    fig.update_layout(yaxis2=dict(overlaying="y", range=[0, 1], visible=False))
    return fig


def history_figure(histories: dict[str, dict], keys: list[str], *, title: str = "",
                   ylabel: str = "distance (normalized)", labels: dict[str, str] | None = None) -> go.Figure:
    """Distance-vs-iteration curves on log–log axes: one line per (run, key), named "run: label" with
    ``labels[key]`` (default the key); step 0 is dropped."""
    fig = go.Figure()
    for run, hist in histories.items():
        steps = np.asarray(hist["step"])
        keep = steps > 0
        for key in keys:
            fig.add_trace(go.Scatter(x=steps[keep], y=np.asarray(hist[key])[keep], mode="lines",
                                     name=f"{run}: {(labels or {}).get(key, key)}"))
    fig.update_layout(template=template(), title=title, xaxis_title="iteration", yaxis_title=ylabel,
                      height=360, margin=dict(l=40, r=20, t=40, b=40))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def class_axes(fig, title: str = "class") -> None:
    """Title the class axes of a row of heatmaps (every x axis, the first y axis; the ticks are integers
    already) and leave room for the titles."""
    fig.update_xaxes(title_text=title)
    fig.update_yaxes(title_text=title, row=1, col=1)
    fig.update_layout(margin=dict(l=50, r=20, t=40, b=50))


def subplot_marker(fig, row: int) -> None:
    """A dotted marker line in subplot ``row`` (a trace, so an update moves it by its data)."""
    fig.add_scatter(x=[], y=[], mode="lines", name="current", showlegend=False,
                    line=dict(color="black", dash="dot"), row=row, col=1)


def ratio_cosine_figure(title: str, xlabel: str, ratio_label: str, height: int = 520):
    """Two stacked panels sharing x: norm ratios (log y) on top, cosines ([−1, 1]) below."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("norm ratios", "cosines"))
    fig.update_layout(template=template(), height=height, title=title, margin=dict(l=40, r=20, t=60, b=40))
    fig.update_yaxes(type="log", title_text=ratio_label, row=1, col=1)
    fig.update_yaxes(range=[-1.05, 1.05], title_text="cosine", row=2, col=1)
    fig.update_xaxes(title_text=xlabel, row=2, col=1)
    return fig


def positive_span(arrays) -> list:
    """[min, max] of the finite positive entries of some arrays ([1, 1] if none): a log axis range."""
    vals = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return [float(vals.min()), float(vals.max())] if vals.size else [1.0, 1.0]


def plot_mode() -> str:
    """"widget" or "static": $NCLAB_PLOT if set, else "static" under Colab or VS Code, else "widget"."""
    env = os.environ.get("NCLAB_PLOT")
    if env:
        if env not in ("widget", "static"):
            raise ValueError(f"NCLAB_PLOT={env!r} is not allowed: use 'widget' or 'static'")
        return env
    vscode = any(k in os.environ for k in ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI"))
    if "google.colab" in sys.modules or vscode:
        return "static"
    return "widget"


class StaticFigure:
    """A ``go.Figure`` with the FigureWidget surface the apps use (``data``, ``layout``, ``batch_update``),
    redrawn into an ``ipywidgets.Output`` after every batch update — for front-ends without FigureWidget."""

    def __init__(self, fig: go.Figure):
        import ipywidgets as widgets

        self.figure = go.Figure(fig)
        self.output = widgets.Output()
        self.draws = 0
        self._draw()

    @property
    def data(self):
        return self.figure.data

    @property
    def layout(self):
        return self.figure.layout

    @contextlib.contextmanager
    def batch_update(self):
        with self.figure.batch_update():
            yield self
        self._draw()

    def _draw(self) -> None:
        from IPython.display import clear_output, display

        with self.output:
            clear_output(wait=True)
            display(self.figure)
        self.draws += 1


def as_widget(fig: go.Figure, mode: str | None = None):
    """A live ``go.FigureWidget`` (mode "widget") or a ``StaticFigure`` ("static"); default ``plot_mode()``."""
    mode = plot_mode() if mode is None else mode
    if mode == "widget":
        return go.FigureWidget(fig)
    if mode == "static":
        return StaticFigure(fig)
    raise ValueError(f"mode={mode!r} is not allowed: use 'widget' or 'static'")


def view(fig):
    """The displayable widget of an app figure (the Output of a StaticFigure, else the figure itself)."""
    return fig.output if isinstance(fig, StaticFigure) else fig
