"""Production static files: collectstatic fingerprints and compresses; whitenoise caches forever."""

from __future__ import annotations

import json

from django.core.management import call_command
from django.core.signals import request_finished
from django.db import close_old_connections
from django.template import Context, Template
from django.test import RequestFactory
from whitenoise.middleware import WhiteNoiseMiddleware

PRODUCTION_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_collectstatic_fingerprints_our_css_and_whitenoise_serves_it_compressed_and_immutable(
    settings, tmp_path
):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PRODUCTION_STORAGE}}
    call_command("collectstatic", interactive=False, verbosity=0)

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed = manifest["storefront/store.css"]
    assert hashed != "storefront/store.css" and hashed.startswith("storefront/store.")
    for name in ("storefront/checkout.js", "storefront/upsell.js"):
        assert manifest[name] != name
    assert (tmp_path / (hashed + ".gz")).exists()
    # Pages link the fingerprinted name, so a new release can never be served a stale file.
    link = Template("{% load static %}{% static 'storefront/store.css' %}").render(Context())
    assert link == f"/static/{hashed}"

    serve = WhiteNoiseMiddleware(get_response=lambda request: None)
    response = serve(RequestFactory().get(f"/static/{hashed}", HTTP_ACCEPT_ENCODING="gzip, br"))
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] in ("gzip", "br")
    cache = response.headers["Cache-Control"]
    assert "immutable" in cache and "max-age=315360000" in cache, cache
    body = b"".join(response.streaming_content) if response.streaming else response.content
    # Closed as Django's test client closes a response: without close_old_connections, which
    # would touch a connection an earlier test on this worker left open (this test has no
    # database access, so that failed, depending on what ran before it).
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert len(body) < (tmp_path / hashed).stat().st_size  # really compressed
