"""Stalled tasks through the poller (issue 21): the worker's metrics (served by the fake worker here, in the JMX
exporter's text format; the real agent is in tests/integration/test_stall.py) make a RUNNING task stalled, the
ladder restarts that task alone (POST /connectors/{name}/tasks/{id}/restart: onlyFailed would skip a RUNNING task),
and a task still stalled past the ladder fails liveness by its policy, as a FAILED one does."""

from __future__ import annotations

from typing import Any

from connect_health.status import status_document

from .conftest import WORKER, MakePoller, health
from .fakeconnect import Answer, FakeClock, FakeConnect, Seen, fixture


def metrics(read: int, lag: int) -> bytes:
    return (f'kafka_connect_sink_task_sink_record_read_total{{connector="jdbc-sink",task="0",}} {read}.0\n'
            f'kafka_connect_sink_consumer_records_lag{{connector="jdbc-sink",partition="0",task="0",topic="t",}} '
            f'{lag}.0\n'
            # a task on another worker: never judged by this pod, whatever its numbers
            f'kafka_connect_sink_task_sink_record_read_total{{connector="jdbc-sink",task="1",}} 5.0\n'
            f'kafka_connect_sink_consumer_records_lag{{connector="jdbc-sink",partition="1",task="1",topic="t",}} '
            f'9.0\n').encode()


def test_a_stalled_task_is_restarted_alone_then_fails_liveness_past_the_ladder(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy(fixture("healthy.json"))
    fake.route("GET", "/metrics", Answer(200, metrics(100, 40)))
    fake.route("POST", "/connectors/jdbc-sink/tasks/0/restart", Answer(204))
    settings = health(stall_after=60.0, worker_metrics_url=f"{fake.url}/metrics", restart_attempts=1,
                      restart_backoff=10.0)
    poller = make_poller(settings)
    view = poller.poll_once()
    assert view.rest_calls_last_poll == 2  # the scrape is no REST call of Connect's
    assert view.observation.stalled == {}
    clock.advance(59)
    assert poller.poll_once().observation.stalled == {}
    clock.advance(1)
    view = poller.poll_once()
    assert view.observation.stalled == {("jdbc-sink", 0): (60.0, "lag 40")}
    rows = {(r.connector, r.task): r for r in view.report.rows}
    assert rows[("jdbc-sink", 0)].verdict == "stalled"
    assert ("jdbc-sink", 1) not in rows  # on another worker: that pod's to judge
    assert view.report.livez.ok and view.report.readyz.ok
    assert any("jdbc-sink task 0 stalled: RUNNING, lag 40, no progress for 60s" in w
               for w in view.report.readyz.warnings), view.report.readyz.warnings
    posts = [(p.path, p.raw_query) for p in fake.requests("POST")]
    assert posts == [("/connectors/jdbc-sink/tasks/0/restart", "")]
    # the restarted task counts from 0 and reads nothing: no progress, still stalled; past the ladder it fails
    fake.route("GET", "/metrics", Answer(200, metrics(0, 40)))
    clock.advance(10)
    view = poller.poll_once()
    assert not view.report.livez.ok
    assert view.report.livez.reasons[0].startswith("jdbc-sink task 0 stalled: RUNNING, lag 40, no progress for 70s")
    assert "still after 1 restart attempts" in view.report.livez.reasons[0]
    from connect_health.metrics import Metrics
    text = Metrics(lambda: view).render().decode()
    # the alert's series (a stalled unit has no trace to classify: class "unknown", today's ladder)
    assert 'connect_health_connector_failed{class="unknown",connector="jdbc-sink",policy="critical"} 1.0' in text
    assert len(fake.requests("POST")) == 1
    doc = status_document(view, settings)
    assert doc["stall_detection"] == {"enabled": True, "stall_after": 60.0, "error": None,
                                      "stalled": [{"connector": "jdbc-sink", "task": 0, "seconds": 70.0,
                                                   "detail": "lag 40"}]}
    # the downstream drains: progress clears it
    fake.route("GET", "/metrics", Answer(200, metrics(300, 0)))
    for _ in range(10):
        clock.advance(5)
        view = poller.poll_once()
    assert view.observation.stalled == {} and view.report.livez.ok


def test_an_idle_task_is_never_stalled_and_a_blind_scrape_judges_nothing(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy(fixture("healthy.json"))
    fake.route("GET", "/metrics", Answer(200, metrics(100, 0)))
    poller = make_poller(health(stall_after=10.0, worker_metrics_url=f"{fake.url}/metrics"))
    for _ in range(5):
        view = poller.poll_once()
        clock.advance(30)
    assert view.observation.stalled == {} and not fake.requests("POST")
    fake.route("GET", "/metrics", Answer(500, b"oops"))
    view = poller.poll_once()
    assert view.observation.stalled == {}
    assert any(w.startswith("stall detection blind: worker metrics at") and "answered 500" in w
               for w in view.report.readyz.warnings)


def test_without_a_metrics_url_the_feature_is_off_and_status_says_so(
        fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture("healthy.json"))
    settings = health()
    view = make_poller(settings).poll_once()
    assert not fake.requests("GET", "/metrics")
    assert status_document(view, settings)["stall_detection"] == {
        "enabled": False, "stall_after": 300.0, "error": None, "stalled": [],
        "off": "no --worker-metrics-url: tasks RUNNING without progress are not detected"}


def test_metric_event_and_page_of_a_stalled_task(fake: FakeConnect, make_poller: MakePoller,
                                                 clock: FakeClock) -> None:
    from connect_health.app import create_app
    from connect_health.events import EventObserver
    from connect_health.metrics import Metrics

    fake.healthy(fixture("healthy.json"))
    fake.route("GET", "/metrics", Answer(200, metrics(100, 40)))
    fake.route("POST", "/connectors/jdbc-sink/tasks/0/restart", Answer(204))
    settings = health(stall_after=30.0, worker_metrics_url=f"{fake.url}/metrics")
    said: list[tuple[str, str, str]] = []
    events = EventObserver(lambda t, r, m: said.append((t, r, m)))
    poller = make_poller(settings, observers=[events])
    poller.poll_once()
    clock.advance(30)
    view = poller.poll_once()
    text = Metrics(lambda: view).render().decode()
    assert 'connect_health_task_stalled{connector="jdbc-sink",task="0"} 1.0' in text
    # on the ladder
    assert 'connect_health_connector_failed{class="unknown",connector="jdbc-sink",policy="critical"} 0.0' in text
    assert "connect_health_stall_detection 1.0" in text
    assert [(t, r) for t, r, _ in said] == [("Warning", "TaskStalled"), ("Normal", "ConnectorRestarted")]
    assert "jdbc-sink task 0 is RUNNING without progress: lag 40, nothing read for 30s" in said[0][2]
    app = create_app(poller, settings, Metrics(lambda: poller.view))
    page = app.test_client().get("/status?format=html").get_data(as_text=True)
    assert 'class="stalled"' in page and "1 stalled" in page
    fake.route("GET", "/metrics", Answer(200, metrics(101, 0)))
    clock.advance(5)
    view = poller.poll_once()
    assert said[-1][:2] == ("Normal", "TaskProgressing")
    assert "connect_health_task_stalled{" not in Metrics(lambda: view).render().decode()


def test_a_connector_with_a_failed_and_a_stalled_task_gets_both_restarts(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    body = fixture("failed_task_local.json")
    body["jdbc-sink"]["status"]["tasks"].append({"id": 1, "state": "RUNNING", "worker_id": WORKER})
    fake.healthy(body)
    stalled_task1 = (b'kafka_connect_sink_task_sink_record_read_total{connector="jdbc-sink",task="1",} 3.0\n'
                     b'kafka_connect_sink_consumer_records_lag{connector="jdbc-sink",partition="1",task="1",'
                     b'topic="t",} 8.0\n')
    fake.route("GET", "/metrics", Answer(200, stalled_task1))
    fake.route("POST", "/connectors/jdbc-sink/tasks/1/restart", Answer(204))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {"name": "jdbc-sink", "connector": {
        "state": "RUNNING", "worker_id": WORKER}, "tasks": [{"id": 0, "state": "RESTARTING", "worker_id": WORKER}]}))
    poller = make_poller(health(stall_after=10.0, worker_metrics_url=f"{fake.url}/metrics", restart_backoff=60.0))
    poller.poll_once()  # the FAILED task's restart goes at once; task 1 is not stalled yet
    assert [(p.path, p.raw_query) for p in fake.requests("POST")] == [
        ("/connectors/jdbc-sink/restart", "includeTasks=true&onlyFailed=true")]
    clock.advance(60)
    view = poller.poll_once()
    assert view.observation.stalled == {("jdbc-sink", 1): (60.0, "lag 8")}
    assert [(p.path, p.raw_query) for p in fake.requests("POST")][1:] == [
        ("/connectors/jdbc-sink/tasks/1/restart", ""),
        ("/connectors/jdbc-sink/restart", "includeTasks=true&onlyFailed=true")]


PG_CONFIG = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "topic.prefix": "shop",
             "tasks.max": "1", "heartbeat.interval.ms": "10000",
             "heartbeat.action.query": "insert into hb (id, at) values (1, now()) on conflict (id) do nothing"}


def cdc_answer(seen: Seen) -> Answer:
    """Connect's expanded list: the Debezium source runs its task here; its config only with expand=info."""
    unit = {"state": "RUNNING", "worker_id": WORKER}
    entry: dict[str, Any] = {"status": {"name": "cdc", "connector": unit, "type": "source",
                                        "tasks": [{"id": 0, **unit}]}}
    if ("expand", "info") in seen.query:
        entry["info"] = {"name": "cdc", "config": {"name": "cdc", **PG_CONFIG}, "type": "source",
                         "tasks": [{"connector": "cdc", "task": 0}]}
    return Answer(200, {"cdc": entry})


def debezium_metrics(events: int) -> bytes:
    return (f'debezium_postgres_streaming_events_seen_total{{server="shop"}} {events}.0\n'
            'debezium_postgres_streaming_connected{server="shop"} 1.0\n').encode()


def test_a_debezium_source_is_mapped_by_its_config_within_two_rest_calls_then_stalled(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy({})
    fake.route("GET", "/connectors", cdc_answer)
    fake.route("GET", "/metrics", Answer(200, debezium_metrics(40)))
    settings = health(stall_after=60.0, worker_metrics_url=f"{fake.url}/metrics", restart_attempts=0)
    poller = make_poller(settings)
    view = poller.poll_once()
    lists = fake.requests("GET", "/connectors")
    assert ("expand", "info") not in lists[-1].query  # nothing declared, no Debezium stream seen yet: no configs
    assert view.observation.stalled == {}
    clock.advance(1)
    view = poller.poll_once()  # the stream of an unknown topic.prefix: this poll's one list call brings the configs
    assert ("expand", "info") in fake.requests("GET", "/connectors")[-1].query
    assert view.rest_calls_last_poll == 2
    for _ in range(6):
        clock.advance(10)
        view = poller.poll_once()
    assert view.observation.stalled == {("cdc", 0): (60.0, "no change event although heartbeat.action.query runs "
                                                     "every 10000 ms")}
    assert sum(("expand", "info") in s.query for s in fake.requests("GET", "/connectors")) == 3  # every 30 s
    # the heartbeat's event comes back: progressing again
    fake.route("GET", "/metrics", Answer(200, debezium_metrics(41)))
    clock.advance(1)
    assert poller.poll_once().observation.stalled == {}
