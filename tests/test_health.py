"""Liveness and readiness probes."""

import json

from core import health


def test_healthz_answers_on_any_host(db, client_for):
    assert client_for("10.0.0.1").get("/healthz").status_code == 200


def test_readyz_is_ready_when_database_broker_and_gateway_answer(db, client_for):
    response = client_for("localhost").get("/readyz")
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok", "gateway": "ok"}


def test_readyz_names_the_dependency_that_failed(db, client_for, monkeypatch):
    def broker_down():
        raise ConnectionError("connection refused")

    monkeypatch.setitem(health.CHECKS, "broker", broker_down)
    response = client_for("localhost").get("/readyz")
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["checks"]["broker"].startswith("error: ConnectionError")
    assert body["checks"]["database"] == "ok"
