"""Two small "executed" notebooks with the outputs a real run produces (plotly JSON + a CDN-loading html
fallback, a widget view, a tqdm bar, a Binder badge, math), their claims JSON and a robustness.json."""

import json
from pathlib import Path

import nbformat
import plotly.graph_objects as go

CDN_HTML = '<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script><div>figure</div>'
REQUIRE_HTML = "<script>require.config({paths: {plotly: 'https://cdn.plot.ly/plotly-3.0.1.min'}});</script>"


def _plot_output(y):
    fig = go.Figure(go.Scatter(y=y, name="distance"), layout={"title": {"text": "distance vs iteration"}})
    return nbformat.v4.new_output("display_data", data={"application/vnd.plotly.v1+json": fig.to_plotly_json(),
                                                        "text/html": CDN_HTML})


def make_executed(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
              "text/plain": "VBox(children=(FloatSlider(value=10.0),))"}
    bar = {"application/vnd.jupyter.widget-view+json": {"model_id": "def", "version_major": 2},
           "text/plain": "training: 100%|##########| 50/50 [00:01<00:00, 40.00it/s]"}
    for stem, claim in (("01_alpha", True), ("02_beta", False)):
        nb = nbformat.v4.new_notebook()
        title = nbformat.v4.new_markdown_cell(
            f"# {stem[:2]} · {stem[3:].title()} — a toy lesson\n\nThe paper (Doe et al., arXiv 2101.00001) shows "
            "that $\\|W\\|_F^2$ grows. [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/x)")
        code = nbformat.v4.new_code_cell("show()", execution_count=1, outputs=[
            nbformat.v4.new_output("display_data", data={"text/html": REQUIRE_HTML}), _plot_output([3, 2, 1]),
            nbformat.v4.new_output("display_data", data=widget), nbformat.v4.new_output("display_data", data=bar),
            nbformat.v4.new_output("stream", text="done\n")])
        math = nbformat.v4.new_markdown_cell("## Theory\n\n$$W W^\\top = (P N P)^{1/2}$$")
        nb.cells = [title, code, math, nbformat.v4.new_code_cell("x", execution_count=2,
                                                                 outputs=[_plot_output([1, 4, 9])])]
        nbformat.write(nb, folder / f"{stem}.ipynb")
        (folder / f"{stem}.json").write_text(json.dumps({"claims": {f"{stem}_claim": {
            "value": 0.01, "threshold": 0.05, "op": "<", "holds": claim, "why": f"{stem} distance is small"}},
            "figures": {}}))
    (folder / "robustness.json").write_text(json.dumps({"claims": {"01_alpha/01_alpha_claim": {
        "points": 20, "holds": 19, "holds_fraction": 0.95, "min": 0.001, "median": 0.01, "max": 0.07,
        "worst_point": "seed=13"}}, "failed_points": []}))
    return folder
