"""A static course site from executed notebooks that renders offline: an index (papers, what each notebook
checks, its exercises, the claims table, the robustness table of a sweep) and one page per notebook with its
interactive plotly figures, linked by a navigation bar.

Pages are nbconvert's "lab" HTML with every remote reference replaced: plotly.js is copied from the installed
plotly package, MathJax 2.7 from the ``jupyter-server-mathjax`` package (without it math stays plain TeX),
require.js, widget and mermaid loaders are left out. Widget outputs (the live apps) need a kernel: their
place shows a note; progress bars are left out.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import time
from pathlib import Path

import nbformat

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|require\.config|cdn\.plot\.ly""", re.I)
MATHJAX_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({tex2jax: {inlineMath: [['$','$'], ['\\\\(','\\\\)']], displayMath: [['$$','$$'], ['\\\\[','\\\\]']],
  processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], imageFont: null, preferredFont: null, webFont: "STIX-Web",
  linebreaks: {automatic: true}}, showMathMenu: false, messageStyle: "none"});
</script>
<script src="assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"></script>"""
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}<script src="assets/plotly.min.js"></script>{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{{ resources.nclab_mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<link rel="stylesheet" href="assets/site.css">{% endblock extra_css %}
{%- block body_header -%}{{ super() }}{{ resources.nclab_nav }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.nclab_nav }}{{ super() }}{% endblock body_footer %}
"""
CSS = """nav.nclab-nav{display:flex;gap:1.2em;align-items:center;padding:.6em 1em;margin:0 0 1em;background:#f3f5f8;
border-bottom:1px solid #d0d7de;font-family:system-ui,sans-serif;font-size:15px;flex-wrap:wrap}
nav.nclab-nav a{text-decoration:none;color:#0b5cad}nav.nclab-nav .here{font-weight:600}
.nclab-note{border-left:4px solid #9a6700;background:#fff8e5;padding:.4em .8em;font-family:system-ui,sans-serif}
body.nclab-index{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:0 1em 3em;line-height:1.45}
table.nclab{border-collapse:collapse;margin:.6em 0 1.4em;font-size:14px}
table.nclab td,table.nclab th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
table.nclab th{background:#f3f5f8}.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
"""


def _page(stem: str) -> str:
    return f"{stem}.html"


def _nav(stems: list[str], here: str | None) -> str:
    links = ['<a href="index.html"' + (' class="here"' if here is None else "") + ">Course index</a>"]
    if here is not None:
        i = stems.index(here)
        if i > 0:
            links.append(f'<a href="{_page(stems[i - 1])}" rel="prev">← {html.escape(stems[i - 1])}</a>')
        if i + 1 < len(stems):
            links.append(f'<a href="{_page(stems[i + 1])}" rel="next">{html.escape(stems[i + 1])} →</a>')
    links += [f'<a href="{_page(s)}"' + (' class="here"' if s == here else "") + f">{s[:2]}</a>" for s in stems]
    return '<nav class="nclab-nav">' + " ".join(links) + "</nav>"


def _is_progress(text: str) -> bool:
    return bool(re.search(r"\d+%\|", text))


REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)]*\)")


def offline_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy of ``nb`` that loads nothing remote: plotly JSON → a div drawn by the local plotly.js; widget
    views → a note (progress bars are dropped); html that loads remote scripts is dropped; remote images in
    markdown (badges) → their alt text (links stay links)."""
    import plotly.io as pio

    nb = nbformat.from_dict(nb)
    n_fig = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = REMOTE_IMAGE.sub(lambda m: m.group(1) or "image", cell.source)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                n_fig += 1
                fig = data[PLOTLY_MIME]
                div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"nclab-fig-{n_fig}",
                                  config={"displaylogo": False, "responsive": True}, validate=False)
                out["data"] = {"text/html": div}
            elif WIDGET_MIME in data:
                if _is_progress(data.get("text/plain", "")):
                    continue  # a progress bar's text is its state when first shown (0%): misleading
                else:
                    out["data"] = {"text/html": '<div class="nclab-note">Interactive app (ipywidgets): run this '
                                                "notebook in JupyterLab, Binder or Colab to use it.</div>"}
            elif "text/html" in data and REMOTE.search("".join(data["text/html"])):
                continue
            outputs.append(out)
        cell.outputs = outputs
    return nb


def _mathjax_source() -> Path | None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return static if (static / "MathJax.js").exists() else None


def _copy_assets(out: Path) -> bool:
    """plotly.min.js, site.css and (if installed) MathJax into out/assets; return whether MathJax is there."""
    import plotly

    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    (assets / "site.css").write_text(CSS, encoding="utf-8")
    mj = _mathjax_source()
    if mj is not None and not (assets / "mathjax" / "MathJax.js").exists():
        shutil.copytree(mj, assets / "mathjax", ignore=shutil.ignore_patterns("test", "unpacked"), dirs_exist_ok=True)
    return mj is not None


def _title_and_blurb(nb) -> tuple[str, str]:
    from nbconvert.filters.markdown import markdown2html

    md = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    md = REMOTE_IMAGE.sub(lambda m: m.group(1) or "image", md)
    lines = md.strip().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else ""
    para = next((p for p in "\n".join(lines[1:]).split("\n\n") if p.strip()), "")
    return title, markdown2html(para.strip()) if para else ""


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4g}" if isinstance(x, int | float) else html.escape(str(x))


def _claims_table(runs: dict) -> str:
    rows = []
    for stem, data in runs.items():
        for name, c in data.get("claims", {}).items():
            ok = '<span class="ok">✓</span>' if c.get("holds") else '<span class="bad">✗</span>'
            rows.append(f"<tr><td>{stem[:2]}</td><td>{html.escape(name)}</td><td>{html.escape(c.get('why', ''))}</td>"
                        f"<td>{_fmt(c.get('value'))}</td><td>{html.escape(c.get('op', ''))} "
                        f"{_fmt(c.get('threshold'))}</td><td>{ok}</td></tr>")
    if not rows:
        return "<p>No claims JSON found next to the executed notebooks.</p>"
    return ('<table class="nclab" id="claims"><tr><th>nb</th><th>claim</th><th>tolerance note</th><th>measured</th>'
            "<th>needed</th><th>holds</th></tr>" + "".join(rows) + "</table>")


def _robustness_table(path: Path | None) -> str:
    if path is None or not path.exists():
        return "<p>No sweep robustness report given (run <code>nclab sweep</code>, then pass its robustness.json).</p>"
    data = json.loads(path.read_text())
    rows = [f"<tr><td>{html.escape(name)}</td><td>{c.get('holds', '—')}/{c.get('points', '—')}</td>"
            f"<td>{_fmt(c.get('holds_fraction'))}</td><td>{_fmt(c.get('min'))}</td><td>{_fmt(c.get('median'))}</td>"
            f"<td>{_fmt(c.get('max'))}</td><td>{html.escape(str(c.get('worst_point', '')))}</td></tr>"
            for name, c in data.get("claims", {}).items()]
    failed = len(data.get("failed_points", []))
    return ('<table class="nclab" id="robustness"><tr><th>claim</th><th>holds / points</th><th>fraction</th>'
            "<th>min</th><th>median</th><th>max</th><th>worst point</th></tr>" + "".join(rows) + "</table>"
            + f"<p>{failed} sweep point(s) failed to run.</p>")


def _index(stems, notebooks, runs, robustness, mathjax: bool) -> str:
    from nclab.exercises import for_notebook

    rows = []
    for stem in stems:
        title, blurb = _title_and_blurb(notebooks[stem])
        claims = runs.get(stem, {}).get("claims", {})
        checks = "".join(f"<li>{html.escape(n.replace('_', ' '))}</li>" for n in claims)
        exs = "".join(f"<li>{html.escape(e.title)} (<code>{e.name}</code>)</li>" for e in for_notebook(stem))
        rows.append(f'<tr><td><a href="{_page(stem)}">{html.escape(title or stem)}</a></td><td>{blurb}</td>'
                    f"<td><ul>{checks or '<li>—</li>'}</ul></td><td><ul>{exs or '<li>—</li>'}</ul></td></tr>")
    head = (MATHJAX_CONFIG if mathjax else "") + '<link rel="stylesheet" href="assets/site.css">'
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nclab course</title>{head}</head>'
            f'<body class="nclab-index">{_nav(stems, None)}<h1>nclab — neural-collapse geometry, one notebook per '
            "paper</h1><p>Each page is an executed notebook with its interactive figures; the live apps and the "
            "exercises need a kernel (JupyterLab, Binder or Colab).</p><h2>Notebooks</h2>"
            '<table class="nclab" id="notebooks"><tr><th>notebook</th><th>paper</th><th>what it checks</th>'
            f"<th>exercises</th></tr>{''.join(rows)}</table><h2>Claims (this run)</h2>{_claims_table(runs)}"
            f"<h2>Robustness across a sweep</h2>{_robustness_table(robustness)}</body></html>")


def build_site(source, out_dir, robustness=None) -> list[Path]:
    """Build the site from the executed notebooks (and their claims JSON) in ``source`` into ``out_dir``;
    ``robustness``: a sweep's robustness.json (default: ``source``/robustness.json if present). Returns pages."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    src = Path(source)
    paths = sorted(src.glob(NOTEBOOK_GLOB)) if src.is_dir() else []
    if not paths:
        raise ValueError(f"source={str(src)!r} holds no executed notebooks ({NOTEBOOK_GLOB}); run `nclab run` first")
    out = Path(out_dir)
    mathjax = _copy_assets(out)
    stems = [p.stem for p in paths]
    notebooks = {p.stem: nbformat.read(p, as_version=4) for p in paths}
    runs = {s: json.loads((src / f"{s}.json").read_text()) for s in stems if (src / f"{s}.json").exists()}
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"nclab_site.html.j2": TEMPLATE})],
                            template_file="nclab_site.html.j2")
    pages = []
    for stem in stems:
        resources = {"nclab_nav": _nav(stems, stem), "nclab_mathjax": MATHJAX_CONFIG if mathjax else ""}
        body, _ = exporter.from_notebook_node(offline_outputs(notebooks[stem]), resources=resources)
        (out / _page(stem)).write_text(body, encoding="utf-8")
        pages.append(out / _page(stem))
    rob = Path(robustness) if robustness is not None else src / "robustness.json"
    (out / "index.html").write_text(_index(stems, notebooks, runs, rob, mathjax), encoding="utf-8")
    return [out / "index.html"] + pages


def main_site(argv: list[str] | None = None) -> int:
    """``nclab site OUT [--from results] [--robustness PATH]``: the offline course site."""
    parser = argparse.ArgumentParser(prog="nclab site", description=main_site.__doc__)
    parser.add_argument("out", help="folder for the site (index.html, one page per notebook, assets/)")
    parser.add_argument("--from", dest="source", default="results",
                        help="executed notebooks and claims JSON (the --out of `nclab run`; default: results)")
    parser.add_argument("--robustness", default=None, help="a sweep's robustness.json (default: FROM/robustness.json)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        pages = build_site(args.source, args.out, args.robustness)
    except ValueError as err:
        parser.error(str(err))
    print(f"{len(pages)} pages in {Path(args.out).resolve()} ({time.perf_counter() - t0:.1f} s); "
          f"open {Path(args.out).resolve() / 'index.html'}")
    return 0
