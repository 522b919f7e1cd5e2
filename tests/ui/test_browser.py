"""Real-browser tests (marker ``ui``, opt-in: ``pytest -m ui``; ``make test`` runs them when Chromium exists).

JupyterLab is started on 127.0.0.1 (token and xsrf off, a temporary smoke-parameterized copy of notebooks/) and
stopped by PID; Debian's /usr/bin/chromium is driven headless by Playwright. For every notebook: run all cells,
then move one slider of its first app with the keyboard and assert that the plotted data changed, with no error
output and no widget error. One notebook is also opened under Voilà. Screenshots go to results/ui/; the screenshot
tour (every notebook's top, each of its apps and its claims table, as a student sees them after "Run all") goes to
results/ui/tour/ with an index, tour.md.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "results" / "ui"
TOUR = SHOTS / "tour"
PLOT_DATA = ("JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot'))"
             ".map(e => (e.data || []).map(t => [t.x, t.y, t.z])))")
CURRENT = "window.jupyterapp.shell.currentWidget"


def _requirements() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install chromium): browser tests skipped"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python package 'playwright' not installed (dev extra): browser tests skipped"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, log_path: Path, what: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{what} did not start: {log_path.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True, by its process group."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = _requirements()
    if reason:
        print(reason)
        pytest.skip(reason)
    import papermill as pm

    root = tmp_path_factory.mktemp("nbs")
    for nb in NOTEBOOKS:  # inject smoke=True the way papermill does, without executing
        pm.execute_notebook(str(nb), str(root / nb.name), parameters={"smoke": True}, prepare_only=True)
    settings = root / "lab-settings"  # render every cell (no windowing) and fetch no news
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port = _free_port()
    log = open(root / "jupyter.log", "w")
    args = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
            "--LabApp.expose_app_in_browser=True", "--allow-root", f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"))
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        _wait_for_port(port, root / "jupyter.log", "JupyterLab")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module", autouse=True)
def fresh_tour():
    """The tour is rewritten by every run of this module."""
    import shutil

    shutil.rmtree(TOUR, ignore_errors=True)
    TOUR.mkdir(parents=True)
    (TOUR / "tour.md").write_text("# Screenshot tour: every notebook after Run all (smoke), JupyterLab + Chromium\n\n")


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        yield b
        b.close()


def _move_first_slider(page) -> None:
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(2):
        page.keyboard.press("ArrowRight")


def _wait_changed(page, before: str, seconds: float = 60) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if page.evaluate(PLOT_DATA) != before:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_slider_moves_plot(server, browser, nb):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/lab/workspaces/{nb.stem}/tree/{nb.name}?reset")  # a fresh workspace: only this notebook
        page.wait_for_function(f"window.jupyterapp && {CURRENT} && {CURRENT}.sessionContext && "
                               f"{CURRENT}.sessionContext.session && {CURRENT}.sessionContext.session.kernel",
                               timeout=90_000)
        page.evaluate(f"{CURRENT}.sessionContext.ready")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        done = (f"(() => {{ const w = {CURRENT}; const cells = w.content.widgets.filter(c => c.model.type === 'code');"
                "const err = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));"
                "const ran = cells.every(c => c.model.executionCount !== null);"
                "return w.sessionContext.session.kernel.status === 'idle' && (ran || err); })()")
        page.wait_for_function(done, timeout=240_000, polling=1000)
        errors = page.evaluate(f"{CURRENT}.content.widgets.filter(c => c.model.type === 'code').flatMap(c => "
                               "c.model.outputs.toJSON().filter(o => o.output_type === 'error')"
                               ".map(o => o.ename + ': ' + o.evalue))")
        assert not errors, errors
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        if "_app(" in nb.read_text():  # a notebook with an app: its first slider must redraw a plot
            page.wait_for_selector(".widget-slider .noUi-handle", timeout=60_000)
            before = page.evaluate(PLOT_DATA)
            _move_first_slider(page)
            changed = _wait_changed(page, before)
            page.screenshot(path=str(SHOTS / f"{nb.stem}.png"))
            assert changed, "moving the slider did not change any plotted data"
        else:
            print(f"{nb.stem}: no app with a slider; checked that it runs and draws its figures")
            page.screenshot(path=str(SHOTS / f"{nb.stem}.png"))
        for text in ("Error displaying widget", "Failed to load model class", "Error rendering"):
            assert page.locator(f"text={text}").count() == 0, text
        shots = _tour(page, nb.stem)
        assert shots["top"].exists() and bool(shots["apps"]) == ("_app(" in nb.read_text()), shots
    finally:
        page.evaluate(f"{CURRENT} && {CURRENT}.sessionContext ? {CURRENT}.sessionContext.shutdown() : null")
        page.close()


def _tour(page, stem: str) -> dict:
    """Screenshots of the notebook's top, each app (an output holding a slider) and the claims table; appends
    their list to tour.md. Returns {"top": path, "apps": [paths], "claims": path or None}."""
    TOUR.mkdir(parents=True, exist_ok=True)
    page.evaluate(f"{CURRENT}.content.activeCellIndex = 0; {CURRENT}.content.scrollToItem(0)")
    page.locator(".jp-NotebookPanel-notebook .jp-Cell").first.scroll_into_view_if_needed()
    top = TOUR / f"{stem}_0_top.png"
    page.screenshot(path=str(top))
    apps = []
    for i, el in enumerate(page.locator(".jp-OutputArea-output:has(.widget-slider)").all(), start=1):
        el.scroll_into_view_if_needed()
        apps.append(TOUR / f"{stem}_{i}_app.png")
        el.screenshot(path=str(apps[-1]))
    tables = page.locator(".jp-OutputArea-output:has-text('claims hold')")
    claims = None
    if tables.count():
        claims = TOUR / f"{stem}_9_claims.png"
        tables.last.scroll_into_view_if_needed()
        tables.last.screenshot(path=str(claims))
    with open(TOUR / "tour.md", "a", encoding="utf-8") as fh:
        fh.write(f"## {stem}\n\n" + "".join(f"![{p.stem}]({p.name})\n" for p in [top, *apps, *([claims] if claims
                                                                                                     else [])]) + "\n")
    return {"top": top, "apps": apps, "claims": claims}


def test_voila_renders_a_dashboard(server, browser, tmp_path):
    """Standalone Voilà (its server-extension route fails on jupyter_server 2.21's async contents manager)."""
    import papermill as pm

    nb = tmp_path / NOTEBOOKS[0].name
    pm.execute_notebook(str(NOTEBOOKS[0]), str(nb), parameters={"smoke": True}, prepare_only=True)
    port = _free_port()
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                             "--ServerApp.allow_root=True", str(nb)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _wait_for_port(port, tmp_path / "voila.log", "Voilà")
        page.goto(f"http://127.0.0.1:{port}/", timeout=240_000)
        page.wait_for_selector(".js-plotly-plot", timeout=240_000)
        page.wait_for_selector(".widget-slider .noUi-handle", timeout=60_000)
        assert page.locator("text=seli_theory_app(").count() == 0, "code cells are visible in the dashboard"
        before = page.evaluate(PLOT_DATA)
        _move_first_slider(page)
        changed = _wait_changed(page, before)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"voila_{NOTEBOOKS[0].stem}.png"))
        assert changed, "moving the slider under Voilà did not change any plotted data"
    finally:
        page.close()
        _stop(proc)
        log.close()
