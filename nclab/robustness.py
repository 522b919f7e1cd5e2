"""Robustness report of a sweep folder: per claim, over the finished points, how often it holds and the spread of
its value. Writes ``robustness.json`` ({"claims": {"<notebook>/<claim>": {points, holds, holds_fraction, min,
median, max, worst_point}}, "failed_points": [...]}), ``robustness.html`` (plotly, plotly.js inline) and,
on request, a Markdown table."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from nclab.claims import atomic_write
from nclab.sweep import finished_points


def summarize(points: list[dict]) -> dict:
    """The robustness.json dict of point records. ``worst_point``: the point whose value lies furthest on the
    failing side of the threshold (largest value for ``<``/``<=`` claims, smallest for ``>``/``>=``)."""
    values: dict[str, list] = {}
    failed = []
    for p in points:
        if p.get("error"):
            failed.append({"notebook": p["notebook"], "point": p["point"], "params": p["params"], "error": p["error"]})
        for name, c in p.get("claims", {}).items():
            values.setdefault(f"{p['notebook']}/{name}", []).append((p["point"], c))
    claims = {}
    for key in sorted(values):
        rows = values[key]
        vals = np.array([_num(c["value"]) for _, c in rows], dtype=float)
        finite = vals[np.isfinite(vals)]
        holds = sum(bool(c["holds"]) for _, c in rows)
        upper = rows[0][1].get("op", "<") in ("<", "<=")
        badness = [(not c["holds"], _sortable(v, upper)) for (_, c), v in zip(rows, vals, strict=True)]
        worst = max(range(len(rows)), key=lambda i: badness[i])
        claims[key] = {"points": len(rows), "holds": holds, "holds_fraction": holds / len(rows),
                       "min": _stat(finite, np.min), "median": _stat(finite, np.median), "max": _stat(finite, np.max),
                       "worst_point": rows[worst][0]}
    return {"claims": claims, "failed_points": failed}


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _sortable(v: float, upper: bool) -> float:
    if math.isnan(v):
        return math.inf
    return v if upper else -v


def _stat(a: np.ndarray, f) -> float | None:
    return float(f(a)) if a.size else None


def thresholds(points: list[dict]) -> dict[str, tuple[str, float]]:
    """{"<notebook>/<claim>": (op, threshold)} as recorded by the points (the first one seen)."""
    out = {}
    for p in points:
        for name, c in p.get("claims", {}).items():
            out.setdefault(f"{p['notebook']}/{name}", (c.get("op", ""), c["threshold"]))
    return out


def report(out, markdown=None) -> dict:
    """Write ``out/robustness.json`` and ``out/robustness.html`` (and ``markdown`` if given); return the summary."""
    out = Path(out)
    if not (out / "points").is_dir():
        raise FileNotFoundError(f"no sweep at {out}: {out / 'points'} does not exist")
    points = finished_points(out)
    summary = summarize(points)
    atomic_write(out / "robustness.json", json.dumps(summary, indent=2, allow_nan=False))
    atomic_write(out / "robustness.html", to_html(summary, points))
    if markdown is not None:
        atomic_write(markdown, to_markdown(summary, points, f"nclab sweep report {out} --markdown {markdown}"))
    return summary


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3g}"


def to_markdown(summary: dict, points: list[dict], command: str = "nclab sweep report DIR --markdown FILE") -> str:
    """A Markdown table: claim, holds h/n, op threshold, min / median / max, worst point; then failed points."""
    th = thresholds(points)
    seeds = sorted({p["params"].get("seed") for p in points if "seed" in p["params"]})
    lines = ["# Robustness of the notebooks' claims", "",
             f"{len(points)} executed points (seeds {_ranges(seeds)}); regenerate with `{command}`.", "",
             "| claim | holds | needed | min | median | max | worst point |", "|---|---|---|---|---|---|---|"]
    for key, c in summary["claims"].items():
        op, t = th[key]
        lines.append(f"| `{key}` | {c['holds']}/{c['points']} | {op} {t:.3g} | {_fmt(c['min'])} | "
                     f"{_fmt(c['median'])} | {_fmt(c['max'])} | `{c['worst_point']}` |")
    if summary["failed_points"]:
        lines += ["", "## Failed points", ""]
        lines += [f"- `{f['notebook']}/{f['point']}`: {f['error']}" for f in summary["failed_points"]]
    return "\n".join(lines) + "\n"


def _ranges(seeds: list) -> str:
    ints = [s for s in seeds if isinstance(s, int)]
    if ints and ints == list(range(ints[0], ints[-1] + 1)) and len(ints) > 2:
        return f"{ints[0]}–{ints[-1]}"
    return ", ".join(str(s) for s in seeds) or "—"


def to_html(summary: dict, points: list[dict]) -> str:
    """One page: the table, then per claim its values over the points (one dot each) with the threshold line.
    plotly.js is embedded so the page renders offline."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    th = thresholds(points)
    per_claim: dict[str, list] = {}
    for p in points:
        for name, c in p.get("claims", {}).items():
            per_claim.setdefault(f"{p['notebook']}/{name}", []).append((p["point"], _num(c["value"]), c["holds"]))
    rows = "".join(
        f"<tr class='{'ok' if c['holds'] == c['points'] else 'bad'}'><td>{html.escape(k)}</td>"
        f"<td>{c['holds']}/{c['points']}</td><td>{html.escape(th[k][0])} {th[k][1]:.3g}</td><td>{_fmt(c['min'])}</td>"
        f"<td>{_fmt(c['median'])}</td><td>{_fmt(c['max'])}</td><td>{html.escape(c['worst_point'])}</td></tr>"
        for k, c in summary["claims"].items())
    failed = "".join(f"<li><code>{html.escape(f['notebook'] + '/' + f['point'])}</code>: {html.escape(f['error'])}</li>"
                     for f in summary["failed_points"])
    figs = []
    for key, rows_ in per_claim.items():
        op, t = th[key]
        vals = np.array([v for _, v, _ in rows_])
        ok = [h for _, _, h in rows_]
        rng = np.random.default_rng(0)
        fig = go.Figure(go.Box(x=vals, name="", boxpoints=False, line=dict(color="#999"), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=vals, y=rng.uniform(-0.25, 0.25, len(vals)), mode="markers", name="",
                                 text=[pid for pid, _, _ in rows_], hovertemplate="%{text}: %{x:.4g}<extra></extra>",
                                 marker=dict(color=["#2a7" if h else "#d33" for h in ok], size=8), yaxis="y2"))
        fig.update_layout(yaxis2=dict(overlaying="y", range=[-0.5, 0.5], visible=False), yaxis=dict(visible=False))
        fig.add_vline(x=t, line=dict(color="black", dash="dash"), annotation_text=f"threshold {op} {t:.3g}")
        pos = np.concatenate([vals[np.isfinite(vals)], [t]])
        if np.all(pos > 0) and pos.max() / pos.min() > 100:
            fig.update_xaxes(type="log", exponentformat="e")
        fig.update_layout(title=f"{key}: holds at {sum(ok)}/{len(ok)} points", height=220, showlegend=False,
                          margin=dict(l=40, r=20, t=40, b=30), template="plotly_white", xaxis_title="value")
        figs.append(fig.to_html(full_html=False, include_plotlyjs=False))
    n_nb = len({p["notebook"] for p in points})
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>nclab robustness</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}
tr.bad td{{background:#fee}}</style></head><body>
<h1>Robustness of the claims</h1>
<p>{len(points)} executed points over {n_nb} notebooks; green dots hold, red dots do not; dashed line: threshold.</p>
<table><tr><th>claim</th><th>holds</th><th>needed</th><th>min</th><th>median</th><th>max</th><th>worst point</th></tr>
{rows}</table>
{"<h2>Failed points</h2><ul>" + failed + "</ul>" if failed else ""}
{"".join(figs)}
</body></html>
"""
