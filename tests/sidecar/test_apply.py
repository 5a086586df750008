"""`connect-health apply` logic against the fake worker: validate all first, write only what differs, prune carefully.

The integration suite repeats the important paths on a real worker; here the fake makes the refusals and
validation errors cheap to produce and every request easy to count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from connect_health import apply as apply_mod
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.declared import Declared, parse

from .fakeconnect import Answer, FakeConnect, Seen, fixture


@pytest.fixture
def client(fake: FakeConnect) -> Iterator[ConnectClient]:
    c = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2))
    yield c
    c.close()


def valid(seen: Seen) -> Answer:
    return Answer(200, {"name": seen.path.split("/")[2], "error_count": 0, "groups": ["Common"], "configs": []})


def same_as_worker(data: dict[str, Any] | None = None) -> dict[str, Declared]:
    data = data or fixture("healthy.json")
    return parse({n: {"config": {k: v for k, v in e["info"]["config"].items() if k != "name"}}
                  for n, e in data.items()})


def run_apply(client: ConnectClient, declared: dict[str, Declared], **kwargs: Any) -> tuple[int, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("prune", False)
    kwargs.setdefault("prune_selector", None)
    kwargs.setdefault("dry_run", False)
    code = apply_mod.run(client, declared, wait=0, out=lines.append, **kwargs)
    return code, lines


def writes(fake: FakeConnect) -> list[tuple[str, str]]:
    return [(s.method, s.path) for s in fake.requests() if s.method in ("PUT", "POST", "DELETE")
            and not s.path.endswith("/config/validate")]


def test_reapplying_the_same_declarations_sends_no_write(fake: FakeConnect, client: ConnectClient) -> None:
    code, lines = run_apply(client, same_as_worker())
    assert code == 0 and writes(fake) == []
    assert fake.requests("PUT") == []  # not even a validation: the worker holds exactly this config
    assert lines[-1] == "applied 3 declared connector(s), 0 write(s), 0 refused"


def test_create_update_and_pause(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    declared["jdbc-sink"] = Declared("jdbc-sink", {**declared["jdbc-sink"].config, "tasks.max": "4"}, "paused")
    declared["new-source"] = Declared("new-source", {"connector.class": "FileStreamSource", "file": "/x",
                                                     "topic": "t"})
    fake.route("PUT", "/connector-plugins/io.confluent.connect.jdbc.JdbcSinkConnector/config/validate", valid)
    fake.route("PUT", "/connector-plugins/FileStreamSource/config/validate", valid)
    fake.route("PUT", "/connectors/jdbc-sink/config", Answer(200, {}))
    fake.route("PUT", "/connectors/new-source/config", Answer(201, {}))
    fake.route("PUT", "/connectors/jdbc-sink/pause", Answer(202))
    code, lines = run_apply(client, declared)
    assert code == 0, lines
    assert writes(fake) == [("PUT", "/connectors/jdbc-sink/config"), ("PUT", "/connectors/jdbc-sink/pause"),
                            ("PUT", "/connectors/new-source/config")]
    put = fake.requests("PUT", "/connectors/jdbc-sink/config")[0].json()
    assert put["tasks.max"] == "4" and "name" not in put
    validated = fake.requests("PUT", "/connector-plugins/io.confluent.connect.jdbc.JdbcSinkConnector/config/validate")
    assert validated[0].json()["name"] == "jdbc-sink"  # validation sees the name Connect will use
    assert "updated jdbc-sink" in lines and "paused jdbc-sink" in lines and "created new-source" in lines


def test_one_invalid_connector_means_nothing_is_applied(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    declared["file-sink"] = Declared("file-sink", {"connector.class": "FileStreamSink", "topics": "lines"})
    declared["jdbc-sink"] = Declared("jdbc-sink", {**declared["jdbc-sink"].config, "tasks.max": "4"})
    fake.route("PUT", "/connector-plugins/io.confluent.connect.jdbc.JdbcSinkConnector/config/validate", valid)
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", Answer(200, {
        "name": "org.apache.kafka.connect.file.FileStreamSinkConnector", "error_count": 1, "groups": ["Common"],
        "configs": [{"definition": {"name": "file"}, "value": {
            "name": "file", "value": None, "recommended_values": [], "visible": True,
            "errors": ["Missing required configuration \"file\" which has no default value."]}}]}))
    code, lines = run_apply(client, declared)
    assert code == 1
    assert writes(fake) == []
    assert "invalid: connector file-sink: file: Missing required configuration \"file\" which has no default value." \
        in lines
    assert "nothing applied: 1 validation error(s)" in lines


def test_prune_respects_the_selector(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    del declared["file-sink"], declared["jdbc-sink"]
    fake.route("DELETE", "/connectors/file-sink", Answer(204))
    fake.route("DELETE", "/connectors/jdbc-sink", Answer(204))
    code, lines = run_apply(client, declared, prune=True, prune_selector=re.compile("^file-"))
    assert code == 0
    assert writes(fake) == [("DELETE", "/connectors/file-sink")]
    assert "kept jdbc-sink (undeclared, outside --prune-selector)" in lines


def test_without_prune_nothing_is_deleted(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    del declared["file-sink"]
    code, _ = run_apply(client, declared)
    assert code == 0 and fake.requests("DELETE") == []


def test_a_refused_write_exits_1_naming_it(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    declared["file-source"] = Declared("file-source", declared["file-source"].config, "stopped")
    fake.route("PUT", "/connectors/file-source/stop", Answer(409, {"error_code": 409, "message": "rebalance"}))
    code, lines = run_apply(client, declared)
    assert code == 1
    assert "refused: stop file-source: refused (409): rebalance" in lines


def test_stop_on_an_old_worker_pauses_without_a_stop_request(fake: FakeConnect, client: ConnectClient) -> None:
    """Issue 18, item 7: a call the worker lacks falls back (stop -> pause) and never fails the run; it used to be
    refused with exit 1. More cases (Confluent versions, 404/405 answers) in test_apply_end_state.py."""
    fake.route("GET", "/", Answer(200, {"version": "3.4.1", "commit": "x", "kafka_cluster_id": "y"}))
    fake.route("PUT", "/connectors/file-source/pause", Answer(202))
    declared = same_as_worker()
    declared["file-source"] = Declared("file-source", declared["file-source"].config, "stopped")
    code, lines = run_apply(client, declared)
    assert code == 0, lines
    assert writes(fake) == [("PUT", "/connectors/file-source/pause")]  # no PUT .../stop
    assert "stop file-source: Kafka 3.4.1 has no STOPPED state (Kafka 3.5+): pausing it instead" in lines


def test_a_worker_that_never_gets_ready(fake: FakeConnect, client: ConnectClient) -> None:
    fake.route("GET", "/health", Answer(503, {"status": "starting"}))
    code, lines = run_apply(client, same_as_worker())
    assert code == 1 and "was not ready within 0s: GET /health answered 503" in lines[-1]
