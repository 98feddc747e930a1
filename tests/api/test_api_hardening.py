"""Partner API hardening (issue 20.6): throttled failed authentication, no keys in URLs or
the access log, JSON 404s for any unknown path, strict string fields."""

import datetime as dt
import logging

import pytest

HOST = "t1.localhost"


@pytest.fixture
def failure_budget(settings):
    """Five failures a minute (the autouse _clear_cache empties Redis after each test)."""
    settings.API_AUTH_FAILURE_RATE = "5/m"


def test_failed_authentication_is_throttled_per_address_with_retry_after(
    api_for, write_key, failure_budget
):
    for i in range(5):
        response = api_for(HOST, f"sfk_0000000{i}_{'x' * 43}").get("/api/v1/products/")
        assert response.status_code == 401, response.content
    refused = api_for(HOST, "sfk_00000009_" + "y" * 43).get("/api/v1/products/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    # While the address waits, even a good key from it is not checked.
    assert api_for(HOST, write_key).get("/api/v1/products/").status_code == 429


def test_a_malformed_authorization_header_counts_as_a_failure(api_for, tenant, failure_budget):
    from django.test import Client

    client = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION="Basic abc")
    codes = [client.get("/api/v1/products/").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_good_keys_do_not_spend_the_failure_budget(api_for, read_key, failure_budget):
    for _ in range(8):
        assert api_for(HOST, read_key).get("/api/v1/products/").status_code == 200


@pytest.mark.parametrize(
    "query",
    ["api_key={token}", "key={token}", "token=abc", "access_token=abc", "q={token}", "API_KEY=abc"],
)
def test_an_api_key_in_the_query_string_is_refused(api_for, read_key, query):
    query = query.format(token=read_key)
    for api in (api_for(HOST, read_key), api_for(HOST, None)):
        response = api.get(f"/api/v1/products/?{query}")
        assert response.status_code == 401, (query, response.content)
        body = response.json()["error"]
        assert "Authorization header" in body["message"]
        assert read_key not in response.content.decode()


def test_the_access_log_redacts_a_key_sent_in_the_url(read_key, caplog):
    """gunicorn's access log (Procfile --logger-class) goes through core.logging.redact."""
    from gunicorn.config import Config

    from core.access_log import RedactingLogger

    logger = RedactingLogger(Config())
    logger.cfg.set("accesslog", "-")
    logger.setup(logger.cfg)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/api/v1/products/?api_key={read_key}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/api/v1/products/",
        "QUERY_STRING": f"key={read_key}",
        "REMOTE_ADDR": "127.0.0.1",
    }

    class Resp:
        status = "401 Unauthorized"
        sent = 10
        headers = []

    atoms = logger.atoms(Resp(), [], environ, dt.timedelta(seconds=0))
    assert read_key not in atoms["r"] and read_key not in atoms["q"]
    assert "/api/v1/products/" in atoms["r"]
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logger.access(Resp(), [], environ, dt.timedelta(seconds=0))
    assert read_key not in caplog.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/%0A",
        "/api/v1/products/%0A",
        "/api/v1/products/%0A/",
        "/api/v1/x%0Ay/",
        "/api/v1/nope",
        "/api/v1/%0D%0A",
        "/api/v1/products/1/%0A",
    ],
)
def test_an_unknown_api_path_gets_the_json_404(api_for, read_key, path):
    response = api_for(HOST, read_key).get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert response["Content-Type"].startswith("application/json"), (path, response.content)
    assert response.json()["error"]["code"] == "not_found"
