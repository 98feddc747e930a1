"""The interactive docs in real headless Chromium: Swagger UI renders every operation from
our own static files, under the page's Content-Security-Policy, with no violation."""

import pytest

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_every_operation_without_a_csp_violation_or_a_cdn(page, live_url):
    violations: list[str] = []
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(live_url) and not r.url.startswith("data:")
            else None
        ),
    )
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(f"{live_url}/api/v1/docs/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock", timeout=15000)
    operations = page.locator(".opblock").count()
    schema = page.evaluate("fetch('/api/v1/schema/?format=json').then(r => r.json())")
    expected = sum(
        1
        for item in schema["paths"].values()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    assert operations == expected
    assert violations == [], violations
    assert outside == [], outside
    errors = [m for m in page.console_messages if m.startswith(("error", "pageerror"))]
    assert errors == [], errors
