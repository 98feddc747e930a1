"""Real headless Chromium (Debian's package, driven by Playwright) against a live server.

The fixtures are registered once, by tests/conftest.py, for every test directory: two
definitions of the session browser would start two Playwright loops in one thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test thread; the ORM calls the
# tests make between page actions are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
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
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (bin/test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
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
