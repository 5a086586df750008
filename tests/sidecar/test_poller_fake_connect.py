"""The poller against a fake Connect worker served over real HTTP on 127.0.0.1.

The fake (fakeconnect.py) stands in for cases a real worker cannot produce on demand: malformed, truncated and
oversized JSON, 500s, hanging answers, a worker without GET /health (404 -> fallback to GET /), a worker answering
204 to a KIP-745 restart (-> legacy per-task restarts) and 409 conflicts. Real-worker behaviour is covered by the
integration suite.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from connect_health import client as client_mod
from connect_health.poller import HERDER_PROBE

from .conftest import OTHER, WORKER, MakePoller, health
from .fakeconnect import STARTING, Answer, FakeClock, FakeConnect, Seen, fixture


def many_connectors(n: int) -> dict[str, Any]:
    """n RUNNING connectors, two tasks each, spread over two workers (shape of the expanded list answer)."""
    out = {}
    for i in range(n):
        name = f"sink-{i:04d}"
        worker = WORKER if i % 2 else OTHER
        out[name] = {
            "info": {"name": name, "config": {"connector.class": "FileStreamSink", "name": name, "topics": "t",
                                              "file": f"/tmp/{name}.txt", "tasks.max": "2"},
                     "tasks": [{"connector": name, "task": 0}, {"connector": name, "task": 1}], "type": "sink"},
            "status": {"name": name, "connector": {"state": "RUNNING", "worker_id": worker},
                       "tasks": [{"id": 0, "state": "RUNNING", "worker_id": WORKER},
                                 {"id": 1, "state": "RUNNING", "worker_id": OTHER}], "type": "sink"},
        }
    return out


# --- REST calls per poll -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 500])
def test_two_rest_calls_per_poll_whatever_the_number_of_connectors(fake: FakeConnect, make_poller: MakePoller,
                                                                    n: int) -> None:
    fake.healthy(many_connectors(n))
    poller = make_poller()
    for _ in range(3):
        fake.clear()
        view = poller.poll_once()
        assert view.rest_calls_last_poll == 2
        assert [(s.method, s.path) for s in fake.requests()] == [("GET", "/health"), ("GET", "/connectors")]
    listing = fake.requests("GET", "/connectors")[0]
    assert listing.query == (("expand", "status"),)  # configs only when connectors are declared: test_scale.py
    assert len(view.report.rows) == 2 * n  # each connector's instance and its task here; its task elsewhere counted
    assert view.observation.snapshot is not None and view.observation.snapshot.cluster_tasks == {"RUNNING": 2 * n}
    assert view.observation.reachable and view.report.livez.ok and view.report.startupz.ok


def test_health_404_falls_back_to_get_root_and_remembers(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.without_health("3.8.1")
    poller = make_poller()
    first = poller.poll_once()
    assert [s.path for s in fake.requests()] == ["/health", "/", HERDER_PROBE, "/connectors"]
    assert first.health_endpoint == "/" and first.report.startupz.ok and first.observation.reachable
    fake.clear()
    second = poller.poll_once()
    # /health is not asked again; the herder probe is the one extra call of a worker without it
    assert [s.path for s in fake.requests()] == ["/", HERDER_PROBE, "/connectors"]
    assert second.rest_calls_last_poll == 3


def test_health_404_from_a_worker_of_3_9_or_later_means_starting_not_no_health(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    # A starting worker's REST server can answer 404 for /health before its resources are registered; a real worker
    # cannot be held in that window on demand (it lasts milliseconds), hence the fake. GET / tells the version.
    fake.without_health("4.3.1")
    poller = make_poller()
    view = poller.poll_once()
    assert [s.path for s in fake.requests()] == ["/health", "/"]
    assert not view.report.startupz.ok and view.report.livez.ok and not view.report.readyz.ok
    assert "404 on Kafka 4.3.1" in view.report.startupz.reasons[0]
    clock.advance(60)
    fake.healthy(fixture("healthy.json"))
    fake.clear()
    view = poller.poll_once()
    assert view.report.startupz.ok and view.health_endpoint == "/health"
    assert [s.path for s in fake.requests()] == ["/health", "/connectors"]  # /health is used from then on


@pytest.mark.parametrize(("version", "legacy"), [("3.6.2", True), ("3.8.1", True), ("3.9.0", False),
                                                 ("4.3.1", False), ("7.8.0-ccs", True), ("7.9.0-ccs", False),
                                                 ("8.0.0-ce", False), ("unknown", True)])
def test_no_health_is_decided_from_the_version_get_root_reports(fake: FakeConnect, make_poller: MakePoller,
                                                                version: str, legacy: bool) -> None:
    fake.without_health(version)
    view = make_poller().poll_once()
    assert (view.health_endpoint == "/") is legacy
    assert view.report.startupz.ok is legacy


# --- a busy or stuck herder (GET /health fails, GET / answers) ---------------------------------------------------
# A real worker's herder can be kept busy by a broker outage, but not on demand and not for a chosen time: the fake
# stands in (the broker-stop integration and e2e tests cover the real thing).

def test_health_timing_out_while_get_root_answers_is_a_stuck_herder_not_an_unresponsive_worker(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    poller = make_poller(health(unresponsive_after=30, herder_stuck_after=600), timeout=0.3)
    assert poller.poll_once().report.livez.ok
    fake.route("GET", "/health", Answer(200, {}, hang=True))
    fake.clear()
    view = poller.poll_once()
    assert [s.path for s in fake.requests()] == ["/health", "/"]  # the extra GET / only after /health failed
    assert view.observation.herder_stuck and not view.observation.reachable
    assert view.report.livez.ok and not view.report.readyz.ok
    assert "herder not answering" in view.report.readyz.reasons[0]
    for _ in range(3):
        clock.advance(100)  # far past --unresponsive-after: the process answers, restarting it fixes nothing
        view = poller.poll_once()
        assert view.report.livez.ok and not view.report.readyz.ok
    clock.advance(400)  # past --herder-stuck-after: a herder stuck that long is deadlocked; a restart may help
    view = poller.poll_once()
    assert not view.report.livez.ok and "herder stuck for 700s (limit 600s)" in view.report.livez.reasons[0]
    fake.healthy(fixture("healthy.json"))
    view = poller.poll_once()
    assert view.report.livez.ok and view.report.readyz.ok and view.observation.herder_stuck_since is None


def test_health_500_while_get_root_answers_is_a_stuck_herder(fake: FakeConnect, make_poller: MakePoller,
                                                             clock: FakeClock) -> None:
    poller = make_poller(health(unresponsive_after=30, herder_stuck_after=600))
    poller.poll_once()
    fake.route("GET", "/health", Answer(500, {"status": "unhealthy", "message": "Worker was unable to handle this "
                                              "request and may be unable to handle other requests."}))
    poller.poll_once()
    clock.advance(120)
    view = poller.poll_once()
    assert view.report.livez.ok and not view.report.readyz.ok and view.observation.herder_stuck


# Kafka < 3.9: GET /connectors?expand=status reads the backing stores and answers while the herder is deadlocked
# (seen on a real 3.6.2 worker: tests/integration/test_herder.py); GET /connectors/{name} waits for the herder thread.
@pytest.mark.parametrize("stuck", [Answer(200, {}, hang=True),
                                   Answer(500, {"error_code": 500, "message": "Request timed out"})],
                         ids=["timeout", "500"])
def test_without_health_the_herder_probe_failing_after_get_root_answered_is_a_stuck_herder(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, stuck: Answer) -> None:
    fake.without_health("3.6.2")
    poller = make_poller(health(unresponsive_after=30, herder_stuck_after=600), timeout=0.3)
    assert poller.poll_once().report.startupz.ok
    fake.route("GET", HERDER_PROBE, stuck)
    poller.poll_once()
    clock.advance(120)
    fake.clear()
    view = poller.poll_once()
    assert [s.path for s in fake.requests()] == ["/", HERDER_PROBE]  # GET /connectors would not tell
    assert view.observation.herder_stuck and view.report.livez.ok and not view.report.readyz.ok
    assert "herder not answering for 120s" in view.report.readyz.reasons[0]
    clock.advance(500)
    view = poller.poll_once()
    assert not view.report.livez.ok and "herder stuck for 620s (limit 600s)" in view.report.livez.reasons[0]
    fake.route("GET", HERDER_PROBE, Answer(404, {"error_code": 404, "message": "Connector x not found"}))
    view = poller.poll_once()
    assert view.report.livez.ok and view.report.readyz.ok and not view.observation.herder_stuck


@pytest.mark.parametrize("answer", [Answer(404, {"error_code": 404, "message": "Connector x not found"}),
                                    Answer(200, {"name": "x", "config": {}, "tasks": [], "type": "sink"}),
                                    Answer(409, {"error_code": 409, "message": "Cannot complete request momentarily "
                                                 "due to stale configuration (typically caused by a concurrent "
                                                 "config change)"})],
                         ids=["no-such-connector", "a-connector-of-that-name", "rebalance"])
def test_without_health_any_answer_of_the_herder_probe_is_the_herder_answering(
        fake: FakeConnect, make_poller: MakePoller, answer: Answer) -> None:
    fake.without_health("3.6.2")
    fake.route("GET", HERDER_PROBE, answer)
    view = make_poller().poll_once()
    assert view.report.startupz.ok and view.report.readyz.ok and not view.observation.herder_stuck


def test_without_health_get_connectors_failing_is_the_rest_api_not_the_herder(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.without_health("3.6.2")
    poller = make_poller(health(unresponsive_after=30, herder_stuck_after=600), timeout=0.3)
    assert poller.poll_once().report.startupz.ok
    fake.connectors(Answer(200, {}, hang=True))
    poller.poll_once()
    clock.advance(31)
    view = poller.poll_once()
    assert not view.observation.herder_stuck  # the herder probe answered: the same judgement as on Kafka >= 3.9
    assert not view.report.livez.ok and "unresponsive for 31s" in view.report.livez.reasons[0]


def test_nothing_answering_stays_on_the_unresponsive_budget(fake: FakeConnect, make_poller: MakePoller,
                                                            clock: FakeClock) -> None:
    poller = make_poller(health(unresponsive_after=30, herder_stuck_after=600))
    poller.poll_once()
    fake.route("GET", "/health", Answer(500, {"status": "unhealthy"}))
    fake.route("GET", "/", Answer(500, {"error_code": 500, "message": "boom"}))
    poller.poll_once()
    clock.advance(31)
    view = poller.poll_once()
    assert not view.observation.herder_stuck
    assert not view.report.livez.ok and "unresponsive for 31s" in view.report.livez.reasons[0]


def test_health_503_means_starting_and_connectors_are_not_listed(fake: FakeConnect, make_poller: MakePoller,
                                                                 clock: FakeClock) -> None:
    fake.route("GET", "/health", Answer(503, STARTING))
    poller = make_poller()
    view = poller.poll_once()
    assert fake.requests("GET", "/connectors") == []
    assert not view.report.startupz.ok and view.report.livez.ok and not view.report.readyz.ok
    assert "starting: Worker is still starting up." in view.report.startupz.reasons[0]
    clock.advance(3600)  # however long startup takes, liveness is the startup probe's business
    assert poller.poll_once().report.livez.ok
    fake.healthy(fixture("healthy.json"))
    view = poller.poll_once()
    assert view.report.startupz.ok and view.report.readyz.ok and view.health_endpoint == "/health"


def test_health_503_after_startup_means_connect_restarted_and_reopens_the_startup_window(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(health(unresponsive_after=5))
    assert poller.poll_once().report.startupz.ok
    fake.route("GET", "/health", Answer(503, STARTING))  # the kubelet restarted the Connect container
    view = poller.poll_once()
    assert not view.report.startupz.ok and view.report.livez.ok
    clock.advance(60)  # a slow start is the startup probe's business, not the unresponsive budget's
    assert poller.poll_once().report.livez.ok
    fake.healthy(fixture("healthy.json"))
    assert poller.poll_once().report.startupz.ok


# --- the restart ladder over REST ----------------------------------------------------------------------------

RESTARTING_BODY = {"name": "jdbc-sink", "connector": {"state": "RUNNING", "worker_id": OTHER},
                   "tasks": [{"id": 0, "state": "RESTARTING", "worker_id": WORKER}], "type": "sink"}


def test_a_local_failure_is_restarted_with_kip745_then_fails_liveness_past_the_ladder(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, RESTARTING_BODY))
    poller = make_poller(health(restart_attempts=2, restart_backoff=10))
    view = poller.poll_once()
    posts = fake.requests("POST")
    assert [(p.path, p.raw_query) for p in posts] == [
        ("/connectors/jdbc-sink/restart", "includeTasks=true&onlyFailed=true")]
    assert view.rest_calls_last_poll == 3
    assert view.restarts == {("jdbc-sink", "requested"): 1}
    assert view.report.livez.ok
    clock.advance(10)
    view = poller.poll_once()
    assert len(fake.requests("POST")) == 2 and view.report.livez.ok
    clock.advance(19.9)
    assert poller.poll_once().report.livez.ok  # the last wait (20 s) is not over
    clock.advance(0.1)
    view = poller.poll_once()
    assert not view.report.livez.ok
    assert view.report.livez.reasons == ("jdbc-sink task 0 FAILED (still FAILED after 2 restart attempts)",)
    assert len(fake.requests("POST")) == 2  # nothing more is sent once exhausted
    # The task recovers: liveness comes back once it is healthy in half the polls of --flap-window.
    fake.connectors(fixture("healthy.json"))
    oks = []
    for _ in range(10):
        clock.advance(5)
        oks.append(poller.poll_once().report.livez.ok)
    assert oks[-1] and oks.index(True) <= 4, oks


def test_remote_failures_are_never_restarted_in_worker_scope(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture("failed_task_remote.json"))
    view = make_poller().poll_once()
    assert fake.requests("POST") == [] and view.restarts == {}


def test_restart_path_is_percent_encoded(fake: FakeConnect, make_poller: MakePoller) -> None:
    data = fixture("failed_task_local.json")
    data["orders/eu sink"] = data.pop("jdbc-sink")
    fake.healthy(data)
    fake.route("POST", "/connectors/orders%2Feu%20sink/restart", Answer(202, RESTARTING_BODY))
    view = make_poller().poll_once()
    assert [p.path for p in fake.requests("POST")] == ["/connectors/orders%2Feu%20sink/restart"]
    assert view.restarts == {("orders/eu sink", "requested"): 1}


def test_a_204_to_kip745_switches_to_legacy_per_task_restarts(fake: FakeConnect, make_poller: MakePoller,
                                                              clock: FakeClock) -> None:
    data = fixture("failed_task_local.json")
    # the connector instance failed here too, and a second task failed on another worker
    data["jdbc-sink"]["status"]["connector"] = {"state": "FAILED", "worker_id": WORKER, "trace": "boom"}
    data["jdbc-sink"]["status"]["tasks"][1]["state"] = "FAILED"
    fake.healthy(data)
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(204))  # Kafka < 3.0 ignores the parameters
    fake.route("POST", "/connectors/jdbc-sink/tasks/0/restart", Answer(204))
    poller = make_poller()
    view = poller.poll_once()
    posts = [(p.path, p.raw_query) for p in fake.requests("POST")]
    assert posts == [
        ("/connectors/jdbc-sink/restart", "includeTasks=true&onlyFailed=true"),
        ("/connectors/jdbc-sink/restart", "includeTasks=false&onlyFailed=false"),
        ("/connectors/jdbc-sink/tasks/0/restart", ""),  # task 1 failed on another worker: not ours
    ]
    assert poller.lane.legacy and view.restarts == {("jdbc-sink", "requested"): 1}
    fake.clear()
    clock.advance(30)
    poller.poll_once()
    assert [(p.path, p.raw_query) for p in fake.requests("POST")] == [
        ("/connectors/jdbc-sink/restart", "includeTasks=false&onlyFailed=false"),
        ("/connectors/jdbc-sink/tasks/0/restart", ""),
    ]


def test_409_conflicts_are_retried_without_counting_while_a_rebalance_lasts(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    conflict = {"error_code": 409, "message": "Cannot complete request momentarily due to stale configuration "
                                              "(typically caused by a concurrent config change)"}
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(409, conflict))
    poller = make_poller(health(restart_attempts=1, restart_backoff=5))
    for _ in range(3):
        view = poller.poll_once()
        clock.advance(60)
    assert len(fake.requests("POST")) == 3
    assert view.restarts == {("jdbc-sink", "conflict"): 3}
    assert poller._rungs["jdbc-sink"].attempts == 0
    assert poller.poll_once().report.livez.ok  # a rebalance does not exhaust the ladder...
    clock.advance(60)
    assert not poller.poll_once().report.livez.ok  # ... one that never ends does (test_stale_beliefs.py)


def test_restart_errors_are_counted_and_do_not_break_the_poll(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart",
               Answer(500, {"error_code": 500, "message": "java.lang.IllegalStateException: herder stopped"}))
    view = make_poller().poll_once()
    assert view.restarts == {("jdbc-sink", "error"): 1}
    assert view.observation.reachable


def test_a_restart_the_worker_could_not_forward_to_the_leader_is_a_conflict_not_an_attempt(
        fake: FakeConnect, make_poller: MakePoller) -> None:
    """The leader just left (a rolling update): the worker answers 500 "IO Error trying to forward REST request",
    which apply met on the e2e node. Like a 409, no restart was done, so it must not burn a rung of the ladder."""
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(500, {
        "error_code": 500, "message": "IO Error trying to forward REST request: java.net.NoRouteToHostException: "
                                     "No route to host"}))
    poller = make_poller()
    view = poller.poll_once()
    assert view.restarts == {("jdbc-sink", "conflict"): 1}
    assert poller._rungs["jdbc-sink"].attempts == 0


def test_check_mode_poller_sends_no_restart(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    view = make_poller(restart=False).poll_once()
    assert fake.requests("POST") == [] and view.restarts == {}


# --- broken answers become an 'unresponsive' observation -------------------------------------------------------

BROKEN = {
    "not-json": (Answer(200, b"<html><body>502 Bad Gateway</body></html>"), "answer is not JSON"),
    "truncated-json": (Answer(200, b'{"jdbc-sink": {"status": {"name": "jdbc-sink", "connector": {"st'),
                       "answer is not JSON"),
    "cut-short-by-the-peer": (Answer(200, json.dumps(fixture("healthy.json")).encode(), truncate_to=100),
                              "answer cut short"),
    # a length declared past what the sidecar keeps is no refusal any more (traces are cut as the answer streams
    # in): this one then ends after 2 bytes, an answer cut short
    "declared-oversized": (Answer(200, b"{}", headers={"Content-Length": str(client_mod.MAX_BODY + 1)}),
                           "answer cut short"),
    "json-list": (Answer(200, ["file-source", "jdbc-sink"]), "expected a JSON object of connectors, got list"),
    "json-string": (Answer(200, "RUNNING"), "got str"),
    "json-null-literal": (Answer(200, b"null"), "got NoneType"),
    "http-500": (Answer(500, {"error_code": 500, "message": "Request timed out\nat org.apache..."}),
                 "GET /connectors answered 500: Request timed out"),
    "deeply-nested-json": (Answer(200, b"[" * 200_000 + b"]" * 200_000), "GET /connectors"),
}


@pytest.mark.parametrize("answer,expected", BROKEN.values(), ids=BROKEN.keys())
def test_broken_connectors_answers_become_unresponsive_observations(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, answer: Answer, expected: str) -> None:
    poller = make_poller()
    good = poller.poll_once()
    assert good.observation.reachable and good.report.startupz.ok
    fake.connectors(answer)
    clock.advance(1)
    view = poller.poll_once()  # must not raise
    obs = view.observation
    assert not obs.reachable and obs.error is not None and expected in obs.error, obs.error
    assert "\n" not in obs.error  # one line, fit for a probe reason
    assert view.stale  # the last good snapshot is still shown
    assert len(view.report.rows) == len(good.report.rows)
    assert view.report.livez.ok and not view.report.readyz.ok
    clock.advance(60)  # every poll keeps failing for --unresponsive-after
    view = poller.poll_once()
    assert not view.report.livez.ok
    assert view.report.livez.reasons[0].startswith("Connect REST API unresponsive for 60s (limit 60s)")
    fake.connectors(fixture("healthy.json"))
    view = poller.poll_once()
    assert view.report.livez.ok and view.observation.reachable and not view.stale


def test_streamed_answer_beyond_the_body_limit_is_refused(fake: FakeConnect, make_poller: MakePoller,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MAX_BODY", 64 * 1024)  # no Content-Length: the limit applies while reading
    fake.connectors(Answer(200, many_connectors(400), stream_without_length=True))
    view = make_poller().poll_once()
    # the sidecar's own limit, not a worker that does not answer: readiness says so, liveness and startup hold
    assert "exceeds the 65536 byte limit" in (view.observation.sidecar_error or "")
    assert view.report.livez.ok and view.report.startupz.ok and not view.report.readyz.ok


def test_health_500_is_an_unresponsive_worker(fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    poller = make_poller()
    poller.poll_once()
    fake.route("GET", "/health", Answer(500, {"status": "unhealthy", "message": "Worker was unable to handle this "
                                              "request and may be unable to handle other requests."}))
    view = poller.poll_once()
    assert not view.observation.reachable
    assert (view.observation.error or "").startswith("GET /health answered 500: unhealthy: Worker was unable")
    assert fake.requests("GET", "/connectors")[-1].at < fake.requests("GET", "/health")[-1].at


def test_unreachable_worker_before_startup_never_fails_liveness(make_poller: MakePoller, clock: FakeClock,
                                                                fake: FakeConnect) -> None:
    fake.route("GET", "/health", Answer(502, b"bad gateway"))
    poller = make_poller()
    for _ in range(5):
        view = poller.poll_once()
        clock.advance(600)
    assert view.report.livez.ok and not view.report.startupz.ok and not view.report.readyz.ok
    assert not view.observation.started


def test_hanging_connect_times_out_into_an_observation(fake: FakeConnect, make_poller: MakePoller) -> None:
    poller = make_poller(timeout=0.3)
    poller.poll_once()
    fake.connectors(Answer(200, {}, hang=True))
    started = time.monotonic()
    view = poller.poll_once()
    assert time.monotonic() - started < 5
    assert not view.observation.reachable and "timed out after 0.3s" in (view.observation.error or "")


def test_probes_answer_from_the_cache_while_connect_hangs(fake: FakeConnect, make_sidecar: Any) -> None:
    sidecar = make_sidecar(health(), timeout=10, clock_fn=time.monotonic)
    poller, app = sidecar.poller, sidecar.app
    poller.poll_once()
    fake.connectors(Answer(200, {}, hang=True))
    in_flight = threading.Thread(target=poller.poll_once, daemon=True)
    in_flight.start()
    assert fake.hanging.wait(5), "the poll never reached the hanging fake"
    seen_before = len(fake.requests())
    client = app.test_client()
    started = time.monotonic()
    for path in ("/livez", "/health", "/readyz", "/startupz", "/ping", "/status", "/metrics") * 10:
        t0 = time.monotonic()
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        assert time.monotonic() - t0 < 1.0, path  # an inline call to Connect would block for 10 s
    elapsed = time.monotonic() - started
    seen_after = fake.requests()
    assert len(seen_after) == seen_before, [(s.method, s.path) for s in seen_after[seen_before:]]
    assert in_flight.is_alive()  # the poll is still stuck in Connect all along
    assert elapsed < 5
    fake.release.set()
    in_flight.join(10)
    assert not in_flight.is_alive()


def test_the_poller_thread_keeps_polling_and_stops(fake: FakeConnect, make_poller: MakePoller) -> None:
    polled = threading.Event()
    views: list[Any] = []
    seen_by_second: list[int] = []

    def on_poll(view: Any) -> None:
        views.append(view)
        if len(views) >= 3:
            polled.set()

    poller = make_poller(clock=time.monotonic, observers=[on_poll, lambda view: seen_by_second.append(view.polls)])
    poller.start(0.01)
    try:
        assert polled.wait(5)
    finally:
        poller.stop()
    assert poller._thread is not None and not poller._thread.is_alive()
    assert [v.polls for v in views[:3]] == [1, 2, 3]
    assert seen_by_second[:3] == [1, 2, 3]  # every observer sees every View


def test_basic_auth_is_sent_on_every_call(fake: FakeConnect) -> None:
    from connect_health.client import ConnectClient
    from connect_health.config import ConnectSettings
    from connect_health.poller import Poller

    client = ConnectClient(ConnectSettings(url=fake.url, user="admin", password="Sup3rS3cret"))
    try:
        Poller(client, health()).poll_once()
    finally:
        client.close()
    import base64

    token = base64.b64encode(b"admin:Sup3rS3cret").decode()
    seen: list[Seen] = fake.requests()
    assert seen and all(s.headers.get("Authorization") == f"Basic {token}" for s in seen)


def test_an_answer_larger_than_the_sidecar_keeps_is_the_sidecars_problem_never_liveness(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    """Connect answered in full, but even with traces cut it is more than the sidecar keeps (configs of thousands
    of connectors): readiness names the sidecar's limit; liveness never fails for it (issue 18, item 3: before,
    every pod failed liveness past 32 MiB and /startupz never passed after the restart)."""
    poller = make_poller()
    assert poller.poll_once().report.livez.ok
    data = fixture("healthy.json")
    data["file-source"]["info"]["config"]["padding"] = "x" * (client_mod.MAX_BODY + 1024)
    fake.connectors(data)
    for _ in range(3):
        clock.advance(60)
        view = poller.poll_once()
        assert view.observation.sidecar_error and "exceeds" in view.observation.sidecar_error
        assert view.report.livez.ok, view.report.livez.reasons
        assert not view.report.readyz.ok


def test_a_dns_failure_is_the_sidecars_problem_never_a_restart_or_liveness(clock: FakeClock) -> None:
    """Connect's host name does not resolve: nothing says Connect is gone (issue 18, item 5: any new-connection
    error used to count as a refused port, a new incarnation and a pod restart that never happened)."""
    from connect_health.client import ConnectClient
    from connect_health.config import ConnectSettings
    from connect_health.poller import Poller

    client = ConnectClient(ConnectSettings(url="http://connect.nosuch.invalid:8083", request_timeout=2.0))
    try:
        poller = Poller(client, health(), clock=clock)
        for _ in range(3):
            clock.advance(60)
            view = poller.poll_once()
            assert "DNS" in (view.observation.sidecar_error or ""), view.observation
            assert view.report.livez.ok and not view.report.readyz.ok
            assert not view.observation.down and poller.life.incarnation == 0
    finally:
        client.close()
