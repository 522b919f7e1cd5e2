"""Plotly figure builders: pure functions (arrays in, ``go.Figure`` out) plus ``as_widget``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

# JupyterLab renders the mimetype; exported HTML pages (``nclab run``) get a loader for plotly.js.
pio.renderers.default = "plotly_mimetype+notebook_connected"

TEMPLATE = "plotly_white"


def heatmaps(mats: dict[str, np.ndarray], height: int = 300, zmid: float | None = 0.0) -> go.Figure:
    """One row of heatmaps (titles = dict keys), rows drawn top-down, shared diverging colour scale."""
    names = list(mats)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    for i, name in enumerate(names, start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(mats[name]), colorscale="RdBu", zmid=zmid, reversescale=True,
                                 showscale=(i == len(names)), name=name), row=1, col=i)
        fig.update_yaxes(autorange="reversed", row=1, col=i)
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=20, r=20, t=40, b=20))
    return fig


def curves(x, series: dict[str, np.ndarray], *, xlabel: str = "", ylabel: str = "", log_x: bool = False,
           log_y: bool = False, dash: dict[str, str] | None = None, height: int = 320,
           title: str = "") -> go.Figure:
    """Lines y(x) for each named series (NaN points are gaps); optional per-series dash style."""
    fig = go.Figure()
    for name, y in series.items():
        fig.add_trace(go.Scatter(x=np.asarray(x), y=np.asarray(y, dtype=float), mode="lines", name=name,
                                 line=dict(dash=(dash or {}).get(name, "solid"))))
    fig.update_layout(template=TEMPLATE, height=height, title=title, xaxis_title=xlabel, yaxis_title=ylabel,
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


def history_figure(histories: dict[str, dict], keys: list[str], *, title: str = "") -> go.Figure:
    """Distance-vs-iteration curves on log–log axes: one line per (run, key); step 0 is dropped."""
    fig = go.Figure()
    for run, hist in histories.items():
        steps = np.asarray(hist["step"])
        keep = steps > 0
        for key in keys:
            fig.add_trace(go.Scatter(x=steps[keep], y=np.asarray(hist[key])[keep], mode="lines",
                                     name=f"{run}: {key}"))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title="iteration", yaxis_title="distance",
                      height=360, margin=dict(l=40, r=20, t=40, b=40))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def as_widget(fig: go.Figure):
    """A ``go.FigureWidget`` of ``fig`` (updated in place by the apps)."""
    return go.FigureWidget(fig)
