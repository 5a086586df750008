"""`apply` judged by the worker's end state (issue 18, item 7).

- Kafka versions come from the worker's own ``GET /``; Confluent Platform's ``-ccs``/``-ce`` releases map to the Kafka
  they ship (a table, from Confluent's interoperability table and changelogs).
- A call the worker lacks (``PUT .../stop`` before Kafka 3.5: 404/405) falls back to the nearest call (pause) with one
  line, and never fails the run.
- A write whose answer was lost may have been done: when its retry is refused (a DELETE retried after the first one
  deleted the connector answers 404) or never answered, the worker is read again, and the write is a success when
  the worker holds what was declared.

Against the fake worker, which can lose an answer on demand (the real worker behind the launcher's fault proxy does
the DELETE case in tests/integration/test_apply.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from connect_health import apply as apply_mod
from connect_health import poller, versions
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.declared import Declared

from .fakeconnect import ROOT, Answer, FakeClock, FakeConnect, Seen, fixture
from .test_apply import same_as_worker, writes


@pytest.fixture
def client(fake: FakeConnect) -> Iterator[ConnectClient]:
    c = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2))
    yield c
    c.close()


def run(client: ConnectClient, declared: dict[str, Declared], *, prune: bool = False,
        wait: float = 30) -> tuple[int, list[str]]:
    clock, lines = FakeClock(), list[str]()
    code = apply_mod.run(client, declared, wait=wait, prune=prune, prune_selector=None, dry_run=False,
                         out=lines.append, sleep=clock.advance, clock=clock)
    return code, lines


# --- versions ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("reported", "kafka"), [
    ("3.6.2", (3, 6)), ("4.1.0", (4, 1)), ("3.9.1", (3, 9)), ("2.8.2", (2, 8)), (" 3.4.1 ", (3, 4)),
    ("3.6.0.redhat-00005", (3, 6)), ("3.7.0-SNAPSHOT", (3, 7)), ("4.0.0-rc1", (4, 0)),
    # Confluent Platform: 5.x -> 2.x, 6.0-6.2 -> 2.6-2.8, 7.x -> 3.x, 8.x -> 4.x
    ("5.0.0-ccs", (2, 0)), ("5.5.15-ccs", (2, 5)), ("6.0.0-ccs", (2, 6)), ("6.2.15-ce", (2, 8)),
    ("7.0.1-ccs", (3, 0)), ("7.4.0-ccs", (3, 4)), ("7.4.0-ce", (3, 4)), ("7.5.0-ccs", (3, 5)),
    ("7.9.0-ccs", (3, 9)), ("8.0.0-ce", (4, 0)), ("8.0.4-ccs", (4, 0)), ("8.1.0-ccs", (4, 1)),
    ("7.4.0-CCS", (3, 4)),
    # unknown: no version, or a Confluent release outside the table
    ("", None), ("unknown", None), ("7.10.0-ccs", None), ("9.0.0-ccs", None), ("4.1.0-ccs", None),
])
def test_kafka_version_of_what_the_worker_reports(reported: str, kafka: tuple[int, int] | None) -> None:
    assert versions.kafka_version(reported) == kafka
    assert poller.kafka_version(reported) == kafka  # the poller reads versions the same way


@pytest.mark.parametrize(("reported", "said"), [
    ("7.4.0-ccs", "Kafka 3.4 (the worker reports 7.4.0-ccs)"), ("3.4.1", "Kafka 3.4.1"),
    ("weird", "an unknown Kafka (the worker reports 'weird')"),
])
def test_describe(reported: str, said: str) -> None:
    assert versions.describe(reported) == said


# --- a call the worker lacks ---------------------------------------------------------------------------------------

def stopped_source() -> dict[str, Declared]:
    declared = same_as_worker()
    declared["file-source"] = Declared("file-source", declared["file-source"].config, "stopped")
    return declared


@pytest.mark.parametrize("reported", ["7.4.0-ccs", "7.4.0-ce", "3.4.1", "6.2.0-ccs"])
def test_stop_on_a_worker_before_kafka_3_5_pauses_instead(fake: FakeConnect, client: ConnectClient,
                                                          reported: str) -> None:
    """The worker reports a version without STOPPED: no PUT /stop is sent, the connector is paused, and the run
    succeeds with one line saying so."""
    fake.route("GET", "/", Answer(200, {**ROOT, "version": reported}))
    fake.route("PUT", "/connectors/file-source/pause", Answer(202))
    code, lines = run(client, stopped_source())
    assert code == 0, lines
    assert writes(fake) == [("PUT", "/connectors/file-source/pause")]
    assert any(line.startswith("stop file-source: Kafka ") and "has no STOPPED state (Kafka 3.5+): pausing it "
               "instead" in line for line in lines), lines
    assert "paused file-source" in lines


@pytest.mark.parametrize("reported", ["7.5.0-ccs", "8.0.0-ce", "3.6.2", "4.1.0"])
def test_stop_on_a_worker_from_kafka_3_5_is_sent(fake: FakeConnect, client: ConnectClient, reported: str) -> None:
    fake.route("GET", "/", Answer(200, {**ROOT, "version": reported}))
    fake.route("PUT", "/connectors/file-source/stop", Answer(202))
    code, lines = run(client, stopped_source())
    assert code == 0, lines
    assert writes(fake) == [("PUT", "/connectors/file-source/stop")]
    assert "stopped file-source" in lines


def jersey(status: int) -> Answer:
    """What Jersey answers for a path or method no resource has (a worker older than the call)."""
    message = {404: "HTTP 404 Not Found", 405: "HTTP 405 Method Not Allowed"}[status]
    return Answer(status, {"error_code": status, "message": message})


@pytest.mark.parametrize("status", [404, 405])
@pytest.mark.parametrize("reported", ["weird-build", "99.0.0-ccs"])
def test_a_stop_the_worker_lacks_falls_back_to_pause(fake: FakeConnect, client: ConnectClient, status: int,
                                                     reported: str) -> None:
    """The version tells nothing, so stop is tried; the worker answers that it has no such call: pause instead."""
    fake.route("GET", "/", Answer(200, {**ROOT, "version": reported}))
    fake.route("PUT", "/connectors/file-source/stop", jersey(status))
    fake.route("GET", "/connectors/file-source", Answer(200, {"name": "file-source", "config": {}, "tasks": []}))
    fake.route("PUT", "/connectors/file-source/pause", Answer(202))
    code, lines = run(client, stopped_source())
    assert code == 0, lines
    assert writes(fake) == [("PUT", "/connectors/file-source/stop"), ("PUT", "/connectors/file-source/pause")]
    assert any(line.startswith(f"stop file-source: the worker has no PUT /connectors/file-source/stop (answered "
                               f"{status}): pausing it instead") for line in lines), lines
    assert "paused file-source" in lines and not any(line.startswith("refused") for line in lines)


def test_a_stop_answered_404_for_a_connector_gone_meanwhile_is_refused(fake: FakeConnect,
                                                                       client: ConnectClient) -> None:
    """404 because the connector was deleted behind apply's back, not because the call is missing: no pause."""
    fake.route("PUT", "/connectors/file-source/stop", Answer(404, {"error_code": 404,
                                                                   "message": "Connector file-source not found"}))
    code, lines = run(client, stopped_source())
    assert code == 1
    assert writes(fake) == [("PUT", "/connectors/file-source/stop")]
    assert "refused: stop file-source: refused (404): Connector file-source not found" in lines


def test_a_stop_that_stays_paused_on_an_old_worker_sends_nothing(fake: FakeConnect, client: ConnectClient) -> None:
    data = fixture("healthy.json")
    data["file-source"]["status"]["connector"]["state"] = "PAUSED"
    fake.connectors(data)
    fake.route("GET", "/", Answer(200, {**ROOT, "version": "7.4.0-ccs"}))
    code, lines = run(client, stopped_source())
    assert code == 0 and writes(fake) == [], lines
    assert any("has no STOPPED state" in line and "stays paused" in line for line in lines), lines


# --- a write whose answer was lost ---------------------------------------------------------------------------------

LOST = Answer(200, {"error_code": 0, "message": "x" * 200}, truncate_to=5)  # the worker acted; the answer is cut


class Worker:
    """The fake's routes for one connector that a write really changes, so a re-read sees the write."""

    def __init__(self, fake: FakeConnect, name: str, config: dict[str, str], state: str = "RUNNING") -> None:
        self.fake, self.name, self.config, self.state, self.exists = fake, name, dict(config), state, True
        fake.route("GET", f"/connectors/{name}", self._get)
        fake.route("GET", f"/connectors/{name}/config", self._get_config)
        fake.route("GET", f"/connectors/{name}/status", self._get_status)

    def _missing(self) -> Answer:
        return Answer(404, {"error_code": 404, "message": f"Connector {self.name} not found"})

    def _get(self, _: Seen) -> Answer:
        return Answer(200, {"name": self.name, "config": self.config, "tasks": []}) if self.exists \
            else self._missing()

    def _get_config(self, _: Seen) -> Answer:
        return Answer(200, {**self.config, "name": self.name}) if self.exists else self._missing()

    def _get_status(self, _: Seen) -> Answer:
        return Answer(200, {"name": self.name, "connector": {"state": self.state, "worker_id": "w"}, "tasks": [],
                            "type": "source"}) if self.exists else self._missing()

    def answers(self, method: str, path: str, *then: Answer, act: Callable[[Seen], None]) -> None:
        """Each request to ``path`` is acted on, then answered by the next of ``then`` (the last one repeats)."""
        queue = list(then)

        def route(seen: Seen) -> Answer:
            act(seen)
            return queue.pop(0) if len(queue) > 1 else queue[0]
        self.fake.route(method, path, route)


def test_a_delete_whose_answer_was_lost_and_whose_retry_answers_404_is_a_success(fake: FakeConnect,
                                                                                  client: ConnectClient) -> None:
    declared = same_as_worker()
    del declared["file-sink"]
    sink = Worker(fake, "file-sink", {})

    def delete(_: Seen) -> None:
        sink.exists = False

    sink.answers("DELETE", "/connectors/file-sink", LOST,
                 Answer(404, {"error_code": 404, "message": "Connector file-sink not found"}), act=delete)
    code, lines = run(client, declared, prune=True)
    assert code == 0, lines
    assert len(fake.requests("DELETE", "/connectors/file-sink")) == 2
    assert "deleted file-sink" in lines and not any(line.startswith("refused") for line in lines), lines
    assert any(line.startswith("delete file-sink: answered 404 after an answer was lost") and "gone, as declared"
               in line for line in lines), lines
    assert lines[-1] == "applied 2 declared connector(s), 1 write(s), 0 refused"


def test_a_delete_answered_404_for_a_connector_still_there_is_refused(fake: FakeConnect,
                                                                     client: ConnectClient) -> None:
    """The end state decides: a 404 while GET still finds the connector is not "gone"."""
    declared = same_as_worker()
    del declared["file-sink"]
    Worker(fake, "file-sink", {})
    fake.route("DELETE", "/connectors/file-sink", Answer(404, {"error_code": 404, "message": "odd"}))
    code, lines = run(client, declared, prune=True)
    assert code == 1
    assert "refused: delete file-sink: refused (404): odd" in lines


def test_a_config_write_never_answered_is_a_success_when_the_worker_holds_it(fake: FakeConnect,
                                                                            client: ConnectClient) -> None:
    """Every PUT is done and every answer lost, up to the deadline: a re-read shows the declared config."""
    declared = same_as_worker()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"})
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate",
               lambda s: Answer(200, {"name": "FileStreamSink", "error_count": 0, "configs": []}))
    sink = Worker(fake, "new-sink", {})
    sink.exists = False

    def put(seen: Seen) -> None:
        sink.exists, sink.config = True, {k: v for k, v in seen.json().items() if k != "name"}

    sink.answers("PUT", "/connectors/new-sink/config", LOST, act=put)
    code, lines = run(client, declared, wait=5)
    assert code == 0, lines
    assert len(fake.requests("PUT", "/connectors/new-sink/config")) >= 2
    assert any(line.startswith("create new-sink: no answer") and "holds the declared config" in line
               for line in lines), lines
    assert "created new-sink" in lines


def test_a_config_write_never_answered_and_not_held_fails_the_run(fake: FakeConnect, client: ConnectClient) -> None:
    declared = same_as_worker()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"})
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate",
               lambda s: Answer(200, {"name": "FileStreamSink", "error_count": 0, "configs": []}))
    fake.route("PUT", "/connectors/new-sink/config", LOST)  # nothing is written
    code, lines = run(client, declared, wait=5)
    assert code == 1
    assert lines[-1].startswith("error: PUT /connectors/new-sink/config: answer cut short"), lines


def test_a_pause_never_answered_is_a_success_when_the_worker_is_paused(fake: FakeConnect,
                                                                      client: ConnectClient) -> None:
    declared = same_as_worker()
    declared["file-source"] = Declared("file-source", declared["file-source"].config, "paused")
    source = Worker(fake, "file-source", {})

    def pause(_: Seen) -> None:
        source.state = "PAUSED"

    source.answers("PUT", "/connectors/file-source/pause", LOST, act=pause)
    code, lines = run(client, declared, wait=5)
    assert code == 0, lines
    assert any(line.startswith("pause file-source: no answer") and "PAUSED, as declared" in line
               for line in lines), lines
    assert "paused file-source" in lines


def test_a_refused_write_without_a_lost_answer_is_still_refused(fake: FakeConnect, client: ConnectClient) -> None:
    """No answer was lost: the refusal is the worker's word, even if a re-read would show the state."""
    declared = same_as_worker()
    declared["file-source"] = Declared("file-source", declared["file-source"].config, "paused")
    Worker(fake, "file-source", {}, state="PAUSED")
    fake.route("PUT", "/connectors/file-source/pause", Answer(500, {"error_code": 500, "message": "no"}))
    code, lines = run(client, declared)
    assert code == 1
    assert "refused: pause file-source: refused (500): no" in lines
