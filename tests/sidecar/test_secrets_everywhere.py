"""Connect's own error text never carries a secret out of the sidecar: probe reasons, /status (JSON and HTML),
``check`` and ``apply``'s output (issue 11, item 7). The fake worker answers errors quoting configs, as real
workers do (a validation message, a 500 with the failing config)."""

from __future__ import annotations

from typing import Any

from connect_health import apply as apply_mod
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.declared import parse

from .conftest import health
from .fakeconnect import STARTING, Answer, FakeClock, FakeConnect

SECRET = "Resolved-S3cret"
LEAKY = (f"Invalid value {SECRET} for configuration connection.password: jdbc:postgresql://app:{SECRET}@db:5432/x "
         f"password={SECRET}")


def test_connect_error_text_is_redacted_in_every_reason_and_page(make_app: Any, fake: FakeConnect,
                                                                 clock: FakeClock) -> None:
    app, poller = make_app(health())
    fake.route("GET", "/health", Answer(503, {"status": "starting", "message": LEAKY}))
    poller.poll_once()
    client = app.test_client()
    pages = [client.get(p).get_data(as_text=True) for p in ("/livez", "/readyz", "/startupz", "/status")]
    pages.append(client.get("/status", headers={"Accept": "text/html"}).get_data(as_text=True))
    fake.route("GET", "/health", Answer(200, STARTING))
    fake.connectors(Answer(500, {"error_code": 500, "message": LEAKY}))
    poller.poll_once()
    clock.advance(120)
    poller.poll_once()
    for path in ("/livez", "/readyz", "/startupz", "/status", "/metrics"):
        pages.append(client.get(path).get_data(as_text=True))
    pages.append(client.get("/status", headers={"Accept": "text/html"}).get_data(as_text=True))
    assert any("connection.password" in p for p in pages)  # the message is shown...
    for page in pages:
        assert SECRET not in page  # ... without the secret


def test_apply_prints_validation_messages_without_secrets(fake: FakeConnect) -> None:
    fake.route("PUT", "/connector-plugins/JdbcSink/config/validate", Answer(200, {
        "name": "JdbcSink", "error_count": 1, "groups": [],
        "configs": [{"value": {"name": "connection.url", "errors": [LEAKY]}}]}))
    fake.route("PUT", "/connectors/sink/config", Answer(500, {"error_code": 500, "message": LEAKY}))
    client = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2))
    lines: list[str] = []
    try:
        apply_mod.run(client, parse({"sink": {"config": {"connector.class": "JdbcSink"}}}), wait=0, prune=False,
                      prune_selector=None, dry_run=False, out=lines.append)
    finally:
        client.close()
    text = "\n".join(lines)
    assert "connection.password" in text and SECRET not in text, text
