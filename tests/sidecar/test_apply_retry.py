"""`connect-health apply` during an upgrade (issue 13): 409s and unanswered calls retried with backoff inside the
`--wait` deadline; a connector whose plugin comes with the same upgrade is validated only once the workers list
the plugin. Against the fake worker (a 409 on demand is what the real one cannot be made to produce); time is a
FakeClock moved by the sleeps, so the backoff is checked without waiting for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from connect_health import apply as apply_mod
from connect_health.client import ConnectClient, Reply
from connect_health.config import ConnectSettings
from connect_health.declared import Declared

from .fakeconnect import Answer, FakeClock, FakeConnect, Seen
from .test_apply import same_as_worker, valid

FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


@pytest.fixture
def client(fake: FakeConnect) -> Iterator[ConnectClient]:
    c = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2))
    yield c
    c.close()


def run(client: ConnectClient, declared: dict[str, Declared], wait: float) -> tuple[int, list[str], list[float]]:
    clock, sleeps, lines = FakeClock(), list[float](), list[str]()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    code = apply_mod.run(client, declared, wait=wait, prune=False, prune_selector=None, dry_run=False,
                         out=lines.append, sleep=sleep, clock=clock)
    return code, lines, sleeps


def with_new_connector() -> dict[str, Declared]:
    declared = same_as_worker()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"})
    return declared


def conflicts(times: int, then: Answer) -> Callable[[Seen], Answer]:
    count = {"n": 0}

    def answer(_: Seen) -> Answer:
        count["n"] += 1
        if count["n"] <= times:
            return Answer(409, {"error_code": 409, "message": "Cannot complete request momentarily due to "
                                                              "stale configuration (typically caused by a "
                                                              "concurrent config change)"})
        return then
    return answer


def test_a_409_during_a_rebalance_is_retried_with_backoff(fake: FakeConnect, client: ConnectClient) -> None:
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", conflicts(3, Answer(201, {})))
    code, lines, sleeps = run(client, with_new_connector(), wait=60)
    assert code == 0, lines
    assert len(fake.requests("PUT", "/connectors/new-sink/config")) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert sum(line.startswith("retrying create new-sink in ") and "409" in line for line in lines) == 3
    assert "created new-sink" in lines


def test_retries_stop_at_the_deadline_and_name_the_refusal(fake: FakeConnect, client: ConnectClient) -> None:
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", conflicts(10**6, Answer(201, {})))
    code, lines, sleeps = run(client, with_new_connector(), wait=20)
    assert code == 1
    assert sum(sleeps) <= 20 and sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert len(fake.requests("PUT", "/connectors/new-sink/config")) == len(sleeps) + 1
    assert any(line.startswith("refused: create new-sink: refused (409)") for line in lines), lines


def test_validation_waits_until_the_workers_list_the_plugin(fake: FakeConnect, client: ConnectClient) -> None:
    """An upgrade adding a plugin: old workers answer GET /connector-plugins without it, then the new ones with."""
    plugins = {"n": 0}

    def listing(_: Seen) -> Answer:
        plugins["n"] += 1
        listed = [{"class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "type": "source"}]
        if plugins["n"] >= 3:
            listed.append({"class": FILE_SINK, "type": "sink"})
        return Answer(200, listed)

    fake.route("GET", "/connector-plugins", listing)
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", Answer(201, {}))
    code, lines, _ = run(client, with_new_connector(), wait=60)
    assert code == 0, lines
    assert plugins["n"] == 3
    assert "waiting for the workers to list FileStreamSink (GET /connector-plugins)" in lines
    seen = [(s.method, s.path) for s in fake.requests()]
    assert seen.index(("PUT", "/connector-plugins/FileStreamSink/config/validate")) > \
        max(i for i, r in enumerate(seen) if r == ("GET", "/connector-plugins"))


def test_a_plugin_never_listed_is_left_to_validation_at_the_deadline(fake: FakeConnect,
                                                                      client: ConnectClient) -> None:
    fake.route("GET", "/connector-plugins", Answer(200, [{"class": "x.Other", "type": "sink"}]))
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", Answer(400, {
        "error_code": 400, "message": "Failed to find any class that implements Connector and which name matches "
                                      "FileStreamSink"}))
    code, lines, sleeps = run(client, with_new_connector(), wait=10)
    assert code == 1 and sum(sleeps) <= 10
    assert any("Failed to find any class" in line for line in lines), lines
    assert not fake.requests("PUT", "/connectors/new-sink/config")


def test_listed_matches_full_names_simple_names_and_aliases() -> None:
    plugins = {FILE_SINK}
    assert apply_mod._listed(FILE_SINK, plugins)
    assert apply_mod._listed("FileStreamSinkConnector", plugins)
    assert apply_mod._listed("FileStreamSink", plugins)
    assert not apply_mod._listed("FileStreamSource", plugins)
    assert not apply_mod._listed("Sink", plugins)


def test_an_unanswered_call_is_retried_like_a_409(fake: FakeConnect, client: ConnectClient) -> None:
    """A connection cut mid-answer (a worker restarting under the Service) is a ConnectError: retried too."""
    calls = {"n": 0}

    def cut_then_created(_: Seen) -> Answer:
        calls["n"] += 1
        if calls["n"] <= 2:
            return Answer(201, {"name": "new-sink", "config": {"x": "y" * 200}}, truncate_to=10)
        return Answer(201, {})

    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", cut_then_created)
    code, lines, sleeps = run(client, with_new_connector(), wait=60)
    assert code == 0, lines
    assert calls["n"] == 3 and sleeps == [0.5, 1.0]
    assert sum(line.startswith("retrying create new-sink in ") for line in lines) == 2


def forward_failures(times: int, then: Answer) -> Callable[[Seen], Answer]:
    """Connect's answer when the worker that took a write cannot forward it to the leader (the leader's pod just
    went away in a rolling update), `times` times; seen on the e2e node before apply retried it."""
    count = {"n": 0}

    def answer(_: Seen) -> Answer:
        count["n"] += 1
        if count["n"] <= times:
            return Answer(500, {"error_code": 500, "message": "IO Error trying to forward REST request: "
                                                              "java.net.ConnectException: Connection refused"})
        return then
    return answer


def test_a_write_the_worker_could_not_forward_to_the_leader_is_retried(fake: FakeConnect,
                                                                       client: ConnectClient) -> None:
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", forward_failures(2, Answer(201, {})))
    code, lines, sleeps = run(client, with_new_connector(), wait=60)
    assert code == 0, lines
    assert sleeps == [0.5, 1.0]
    assert sum(line.startswith("retrying create new-sink in ") and "500: IO Error trying to forward" in line
               for line in lines) == 2
    assert "created new-sink" in lines


def test_any_other_500_is_an_answer_not_retried(fake: FakeConnect, client: ConnectClient) -> None:
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", Answer(500, {
        "error_code": 500, "message": "Failed to start connector new-sink: java.lang.NullPointerException"}))
    code, lines, sleeps = run(client, with_new_connector(), wait=60)
    assert code == 1 and sleeps == []
    assert len(fake.requests("PUT", "/connectors/new-sink/config")) == 1
    assert any(line.startswith("refused: create new-sink: refused (500): Failed to start") for line in lines), lines


@pytest.mark.parametrize(("status", "message", "expected"), [
    (409, "Cannot complete request because of a conflicting operation (e.g. worker rebalance)", True),
    (500, "IO Error trying to forward REST request: java.net.SocketTimeoutException: timeout", True),
    (500, "Error trying to forward REST request: Connection reset", True),
    (500, "Request timed out", True),
    (500, "Connector configuration is invalid", False),
    (400, "IO Error trying to forward REST request", False),
    (503, "Request cannot be completed because the worker is starting", True),
])
def test_retry_later_answers(status: int, message: str, expected: bool) -> None:
    assert Reply(status, {"error_code": status, "message": message}).retry_later is expected
