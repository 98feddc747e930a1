"""Real headless Chromium (Debian's package, driven by Playwright) against a live server.

The fixtures are registered once, by tests/conftest.py, for every test directory: two
definitions of the session browser would start two Playwright loops in one thread.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test thread; the ORM calls the
# tests make between page actions are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Debian's Chromium, as its headless shell when installed (package chromium-headless-shell,
# built from the same source as `chromium`): the same Blink and V8 without the desktop
# browser around them, which is what Playwright itself runs for headless pages. Measured on
# this machine (docs/testing.md), a navigation costs the shell half the CPU and a new
# browser context a fifth; the full browser is the fallback.
CHROMIUM = "/usr/bin/chromium"
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
# Full-page pictures of every audited page, for people (README, docs/screenshots/): taken
# when asked, `SCREENSHOTS=1 bin/test tests/browser`. Each costs a fraction of a second and
# the suite audits over a hundred pages; a failing test's page is always kept (`page`).
SCREENSHOTS_WANTED = os.environ.get("SCREENSHOTS", "") not in ("", "0")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def live_server_port(django_db_setup, django_db_blocker):
    """One threaded live server for the session, serving static files too."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    with django_db_blocker.unblock():
        thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        yield thread.port
        thread.terminate()


@pytest.fixture
def live_url(live_tenant, live_server_port):
    """Base URL of tenant t1 on the live server (Chromium resolves *.localhost itself)."""
    return f"http://t1.localhost:{live_server_port}"


@pytest.fixture(scope="session")
def browser():
    executable = next((path for path in (HEADLESS_SHELL, CHROMIUM) if os.path.exists(path)), None)
    if executable is None:
        pytest.skip("Debian's chromium is not installed (bin/test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    pg = context.new_page()
    messages: list[str] = []
    pg.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    pg.console_messages = messages  # type: ignore[attr-defined]
    yield pg
    call = getattr(request.node, "call_report", None)
    if SCREENSHOTS_WANTED or call is None or call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name[:80]}.png"), full_page=True)
        except Exception:
            pass
    context.close()


def fill_card(page, number: str) -> None:
    """localstripe's fake Card Element: five plain inputs told apart by placeholder. On the
    checkout page the buyer also ticks "save my card" (it starts unticked): the flows here
    are those of a buyer who agrees to one-click add-ons."""
    save = page.locator("#id_save_card")
    if save.count():
        save.check()
    page.get_by_placeholder("number").first.fill(number)
    page.get_by_placeholder("exp_month").first.fill("12")
    page.get_by_placeholder("exp_year").first.fill("34")
    page.get_by_placeholder("cvc").first.fill("123")
    postal = page.get_by_placeholder("postal_code")
    if postal.count():
        postal.first.fill("10115")


def axe_path() -> Path:
    if not AXE.exists():
        if shutil.which("npm") is None:
            pytest.skip("node_modules/axe-core is missing and npm is not installed")
        pytest.fail("node_modules/axe-core is missing: run `npm ci` (bin/test does)")
    return AXE


def axe_context(browser, viewport: dict, **options):
    """A browser context in which every page (its top frame, where a script tag added after
    the load put it before) has axe-core, ready for `axe.run(document)`.

    axe is 650 KB: sent once per context rather than once per page, and compiled from
    V8's cache after the first page, it costs a tenth of what `add_script_tag` did. It is
    loaded before the page's own scripts, which neither see nor touch `window.axe`.
    """
    source = axe_path().read_text()
    context = browser.new_context(viewport=viewport, **options)
    context.add_init_script(script=f"if (window === window.top) {{\n{source}\n}}")
    return context


# Every rule runs and every violation comes back with all its nodes; the rules that passed
# (the tests count them) come back with one node each instead of all (axe's `resultTypes`):
# on an admin page that is 50 KB for Python to read rather than 450-700 KB, 0.5 s, not 2-4 s.
AXE_RUN = "axe.run(document, {resultTypes: ['violations']})"

ANIMATION_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


class Network:
    """The requests of one page still on their way (attach before `goto`).

    `settle()` replaces Playwright's `networkidle`, which waits for 500 ms without a request
    on every page: it waits for the load event, then until no request is open and two
    rendered frames (where lazy pictures and fonts are asked for) started none.
    """

    def __init__(self, page):
        self.page = page
        self.started = 0
        self.open: set = set()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, request) -> None:
        self.started += 1
        self.open.add(request)

    def _end(self, request) -> None:
        self.open.discard(request)

    def settle(self, timeout: float = 30.0) -> None:
        self.page.wait_for_load_state("load")
        deadline = time.monotonic() + timeout
        while True:
            started = self.started
            self.page.evaluate(ANIMATION_FRAMES)
            while self.open:
                if time.monotonic() > deadline:
                    raise AssertionError(f"still loading: {sorted(r.url for r in self.open)}")
                self.page.wait_for_timeout(10)  # lets Playwright deliver the page's events
            if self.started == started:
                return


def screenshot(page, name: str) -> None:
    """artifacts/screenshots/<name>.png of the whole page, when pictures are wanted."""
    if SCREENSHOTS_WANTED:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
