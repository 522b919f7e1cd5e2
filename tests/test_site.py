"""The static course site: builds from executed notebooks, references nothing remote, links resolve, figures
become local plotly divs, the index carries the claims and robustness tables."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _site_fixture import make_executed

from nclab import site


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.loads, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "video", "audio", "source", "embed") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _refs(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = make_executed(tmp_path_factory.mktemp("executed"))
    out = tmp_path_factory.mktemp("site")
    return site.build_site(src, out), out


def test_pages_load_nothing_remote_and_local_refs_exist(built):
    pages, out = built
    assert [p.name for p in pages] == ["index.html", "01_alpha.html", "02_beta.html"]
    for page in pages:
        refs = _refs(page)
        text = page.read_text(encoding="utf-8")
        assert not [r for r in refs.loads if re.match(r"(https?:)?//", r)], (page.name, refs.loads)
        assert "cdn.plot.ly" not in text and "require.config" not in text and "mybinder.org/badge" not in text
        for ref in refs.loads + [h for h in refs.links if not re.match(r"(https?:|#|mailto:)", h)]:
            assert (out / ref.split("?")[0].split("#")[0]).exists(), (page.name, ref)
    assert (out / "assets" / "plotly.min.js").stat().st_size > 1_000_000


def test_figures_widgets_progress_and_navigation(built):
    pages, out = built
    alpha = (out / "01_alpha.html").read_text(encoding="utf-8")
    assert alpha.count("Plotly.newPlot") == 2 and 'id="nclab-fig-1"' in alpha
    assert "Interactive app (ipywidgets)" in alpha and "VBox(children" not in alpha
    assert "50/50" not in alpha and "done" in alpha  # a widget progress bar's text is stale: dropped
    assert '<script src="assets/plotly.min.js">' in alpha
    nav = _refs(out / "01_alpha.html").links
    assert "index.html" in nav and "02_beta.html" in nav
    assert "01_alpha.html" in _refs(out / "02_beta.html").links
    if site._mathjax_source() is not None:
        assert "assets/mathjax/MathJax.js" in alpha and (out / "assets" / "mathjax" / "MathJax.js").exists()


def test_index_has_papers_checks_claims_and_robustness(built):
    _, out = built
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Alpha — a toy lesson" in index and "arXiv 2101.00001" in index
    assert "<li>01 alpha claim</li>" in index and "02_beta distance is small" in index
    claims = index.split('id="claims"')[1].split("</table>")[0]
    assert claims.count("<tr>") == 3 and "✓" in claims and "✗" in claims
    rob = index.split('id="robustness"')[1].split("</table>")[0]
    assert "19/20" in rob and "seed=13" in rob


def test_offline_outputs_drops_remote_html_and_keeps_the_rest(tmp_path):
    import nbformat

    src = make_executed(tmp_path / "x")
    nb = site.offline_outputs(nbformat.read(src / "01_alpha.ipynb", as_version=4))
    outs = nb.cells[1].outputs
    assert len(outs) == 3  # the require.config html and the progress bar are gone
    assert all("https://cdn" not in str(o) for o in outs)
    assert "mybinder.org/x" in nb.cells[0].source and "badge_logo" not in nb.cells[0].source


def test_bad_source_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="source="):
        site.build_site(tmp_path, tmp_path / "out")
    with pytest.raises(SystemExit):
        site.main_site([str(tmp_path / "out"), "--from", str(tmp_path)])
    src = make_executed(tmp_path / "ex")
    (src / "robustness.json").unlink()
    assert site.main_site([str(tmp_path / "site"), "--from", str(src)]) == 0
    assert "3 pages" in capsys.readouterr().out
    assert "No sweep robustness report" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
