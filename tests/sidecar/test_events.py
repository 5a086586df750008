"""Kubernetes Events of the sidecar (connect_health.events): what a poll sequence says, and how it reaches the API.

The API server here is a stand-in (a small HTTP server on 127.0.0.1 recording the POSTs and answering 201 or 403):
the real node of the e2e issue was being built when this was written, and a stand-in is the only way to produce a
refusing (403) or unreachable API server on demand. What is checked against it is the request a real one receives:
the path, the bearer token (re-read from its file), and the core/v1 Event body `kubectl describe pod` lists.
The polls are real Poller polls against the fake Connect worker of these unit tests (fakeconnect.py).
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from connect_health.events import EventObserver, KubeEvents, PodRef

from .conftest import MakePoller, health
from .fakeconnect import Answer, FakeClock, FakeConnect, fixture

RESTARTING_BODY = {"name": "jdbc-sink", "connector": {"state": "RUNNING", "worker_id": "10.0.0.7:8083"},
                   "tasks": [{"id": 0, "state": "RESTARTING", "worker_id": "10.0.0.7:8083"}], "type": "sink"}
NOW = datetime.datetime(2026, 11, 29, 15, 0, 0, tzinfo=datetime.UTC)


class StandInApiServer:
    """Records POST /api/v1/namespaces/<ns>/events; answers `status` (201 by default)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self.status = 201
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((self.path, dict(self.headers), body))
                payload = json.dumps(body if outer.status == 201 else
                                     {"kind": "Status", "message": "events is forbidden", "code": 403}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    server = StandInApiServer()
    yield server
    server.stop()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("tok-1\n")
    return path


@pytest.fixture
def events(api: StandInApiServer, token: Path) -> Iterator[KubeEvents]:
    ev = KubeEvents(api.url, PodRef("rel-kafka-connect-7d9-abc", "team-a", "uid-123"), str(token), None,
                    clock=lambda: NOW)
    yield ev
    ev.close()


def test_a_restart_and_liveness_turning_503_and_back_are_said_once_each(fake: FakeConnect, make_poller: MakePoller,
                                                                       clock: FakeClock) -> None:
    said: list[tuple[str, str, str]] = []
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, RESTARTING_BODY))
    poller = make_poller(health(restart_attempts=1, restart_backoff=10),
                         observers=(EventObserver(lambda *e: said.append(e)),))
    poller.poll_once()  # the first restart is sent in the first poll; that View is the observer's baseline
    clock.advance(10)
    poller.poll_once()  # still FAILED: the ladder is spent
    assert [(t, r) for t, r, _ in said] == [("Warning", "LivenessFailing")]
    assert "jdbc-sink task 0 FAILED" in said[0][2] and "503" in said[0][2]
    clock.advance(5)
    poller.poll_once()
    assert len(said) == 1  # nothing new: nothing changed
    fake.connectors(fixture("healthy.json"))
    for _ in range(10):
        clock.advance(5)
        poller.poll_once()
    assert [(t, r) for t, r, _ in said] == [("Warning", "LivenessFailing"), ("Normal", "LivenessRecovered")]


def test_each_restart_sent_after_the_first_poll_is_an_event(fake: FakeConnect, make_poller: MakePoller,
                                                            clock: FakeClock) -> None:
    said: list[tuple[str, str, str]] = []
    fake.healthy(fixture("healthy.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, RESTARTING_BODY))
    poller = make_poller(health(restart_attempts=3, restart_backoff=10),
                         observers=(EventObserver(lambda *e: said.append(e)),))
    poller.poll_once()
    fake.connectors(fixture("failed_task_local.json"))
    clock.advance(1)
    poller.poll_once()
    clock.advance(10)
    poller.poll_once()
    restarts = [m for t, r, m in said if r == "ConnectorRestarted"]
    assert len(restarts) == 2 and all(t == "Normal" for t, r, _ in said if r == "ConnectorRestarted")
    assert "jdbc-sink" in restarts[0] and "restart 1 " in restarts[0] and "restart 2 " in restarts[1]


def test_an_event_reaches_the_api_server_on_the_pod_with_the_token(api: StandInApiServer, events: KubeEvents,
                                                                  token: Path) -> None:
    events("Warning", "LivenessFailing", "connect-health /livez answers 503: jdbc-sink task 0 FAILED")
    assert events.flush()
    token.write_text("tok-2\n")  # a projected token rotates: the next event uses the new one
    events("Normal", "LivenessRecovered", "connect-health /livez answers 200 again")
    assert events.flush()
    assert events.sent == 2 and events.failed == 0
    (path, headers, body), (_, headers2, _) = api.posts
    assert path == "/api/v1/namespaces/team-a/events"
    assert headers["Authorization"] == "Bearer tok-1" and headers2["Authorization"] == "Bearer tok-2"
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "rel-kafka-connect-7d9-abc",
                                      "namespace": "team-a", "uid": "uid-123",
                                      "fieldPath": "spec.containers{connect-health}"}
    assert body["metadata"] == {"generateName": "rel-kafka-connect-7d9-abc.", "namespace": "team-a"}
    assert (body["type"], body["reason"]) == ("Warning", "LivenessFailing")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-11-29T15:00:00Z"
    assert body["source"] == {"component": "connect-health"} and body["count"] == 1


def test_a_refused_event_is_one_log_line_and_never_raises(api: StandInApiServer, events: KubeEvents,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    api.status = 403
    events("Normal", "ConnectorRestarted", "connect-health restarted connector jdbc-sink")
    assert events.flush()
    assert events.sent == 0 and events.failed == 1
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "403" in refused[0] and "rbac.events" in refused[0]


def test_an_unreachable_api_server_never_delays_the_caller(token: Path, caplog: pytest.LogCaptureFixture) -> None:
    ev = KubeEvents("http://127.0.0.1:9", PodRef("p", "ns"), str(token), None, timeout=1)
    try:
        ev("Normal", "ConnectorRestarted", "connect-health restarted connector x")  # returns at once
        assert ev.flush(timeout=10)
        assert ev.failed == 1 and any("not sent" in r.getMessage() for r in caplog.records)
    finally:
        ev.close()


def test_secrets_in_a_message_are_redacted(events: KubeEvents) -> None:
    body = events.event("Warning", "LivenessFailing", "trace: connection.password=Sup3rS3cret failed")
    assert "Sup3rS3cret" not in body["message"]


def test_from_environment_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        KubeEvents.from_environment({}, str(tmp_path))
    with pytest.raises(ValueError, match="POD_NAME"):
        KubeEvents.from_environment({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, str(tmp_path))
    with pytest.raises(ValueError, match="token"):
        KubeEvents.from_environment({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "POD_NAME": "p",
                                     "POD_NAMESPACE": "ns"}, str(tmp_path))
    (tmp_path / "token").write_text("t")
    (tmp_path / "namespace").write_text("from-file\n")
    ev = KubeEvents.from_environment({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "POD_NAME": "p"}, str(tmp_path))
    try:
        assert ev.api_url == "https://10.96.0.1:443" and ev.pod == PodRef("p", "from-file", "")
        assert ev.ca_file is None
    finally:
        ev.close()
