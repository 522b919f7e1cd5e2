"""The course site in real Chromium with every non-local request blocked (marker ``ui``): every page loads with
no script error, figures draw, math typesets, every local link resolves; screenshots go to results/ui/.

The site is built from a small executed-notebook fixture, or from ``$NCLAB_SITE_FROM`` (the --out folder of
``nclab run``) when set. Served by a local http.server thread on 127.0.0.1.
"""

import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "results" / "ui"


def _requirements() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install chromium): site browser test skipped"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python package 'playwright' not installed (dev extra): site browser test skipped"
    return None


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    reason = _requirements()
    if reason:
        print(reason)
        pytest.skip(reason)
    from nclab.site import build_site

    source = os.environ.get("NCLAB_SITE_FROM")
    if not source:
        from _site_fixture import make_executed

        source = make_executed(tmp_path_factory.mktemp("executed"))
    out = tmp_path_factory.mktemp("site")
    pages = build_site(source, out)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", out, [p.name for p in pages]
    finally:
        server.shutdown()
        server.server_close()


def test_site_renders_offline(served):
    from playwright.sync_api import sync_playwright

    base, out, pages = served
    blocked, failed, errors = [], [], []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--no-first-run", "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1300, "height": 900})

        def route(r):
            if r.request.url.startswith(base):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        context.set_default_timeout(180_000)  # a loaded CI machine: plotly.js is 4 MB, MathJax typesets slowly
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        # local misses that are not faults: the favicon, and MathJax probing TeX font files that
        # jupyter-server-mathjax does not ship (it typesets with its STIX-Web fonts)
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 and not (
            r.url.endswith("favicon.ico") or "/assets/mathjax/fonts/" in r.url) else None)
        shot_page = None
        for name in pages:
            resp = page.goto(base + name, wait_until="load")
            assert resp is not None and resp.ok, name
            html = (out / name).read_text(encoding="utf-8")
            n_figs = html.count("Plotly.newPlot")
            if n_figs:
                page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figs}",
                                       timeout=60_000)
                shot_page = shot_page or name
            if "assets/mathjax/MathJax.js" in html:
                page.wait_for_function("window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0 "
                                       "&& !MathJax.Hub.queue.running", timeout=90_000)
                text = page.inner_text("body")
                rendered = page.locator(".MathJax, .MathJax_Display").count()
                assert rendered or not re.search(r"\$[^$\n]+\$", text), f"{name}: math left as raw TeX"
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                if re.match(r"(https?:|#|mailto:)", href):
                    continue
                r = context.request.get(base + href.split("#")[0])
                assert r.ok, f"{name}: link {href} -> {r.status}"
            if name == "index.html":
                page.screenshot(path=str(SHOTS / "site_index.png"), full_page=True)
        assert shot_page, "no page with a plotly figure"
        page.goto(base + shot_page, wait_until="load")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"site_{Path(shot_page).stem}.png"))
        browser.close()
    assert not blocked, f"the site tried to reach the network: {blocked[:5]}"
    assert not failed, failed[:5]
    assert not errors, errors[:5]
