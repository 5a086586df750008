"""The sidecar never acts on a stale or wrong belief (issue 11): a new Connect incarnation starts a new view, a
rotated password is re-read, a broken poll never freezes the view, a trickling worker is caught by the poll's
deadline, a rebalance (409) is not "not answering", flapping is judged over a window, and a poison connector
stops costing pod restarts once a restart has not fixed it.

The fake worker (fakeconnect.py) stands in where a real one cannot produce the case on demand: a worker that
refuses connections and comes back on the same port, a body trickled byte by byte, 401s, 409s on GET /connectors.
The same faults on a real stack are in bench/faults (``make faults``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.poller import Poller, View

from .conftest import MakePoller, health
from .fakeconnect import HEALTHY, STARTING, Answer, FakeClock, FakeConnect, Seen, fixture

FAILED_HERE = "failed_task_local.json"


def restart_on_same_port(fake: FakeConnect, poller: Poller) -> FakeConnect:
    """The Connect container restarted: a poll finds nothing listening on its port, then a new worker answers."""
    port = fake.port
    fake.stop()
    view = poller.poll_once()
    assert view.observation.down and not view.report.startupz.ok
    return FakeConnect(port=port).start()


@pytest.fixture
def stopped_fakes() -> Iterator[list[FakeConnect]]:
    fakes: list[FakeConnect] = []
    yield fakes
    for f in fakes:
        f.stop()


def failed_past_one_rung(make_poller: MakePoller, clock: FakeClock) -> tuple[Poller, View]:
    """A poller with a one-rung ladder, polled until jdbc-sink (FAILED on this worker) is past it: the old
    incarnation's verdict each test below then has to drop."""
    poller = make_poller(health(restart_attempts=1, restart_backoff=10))
    poller.poll_once()
    clock.advance(10)
    poller.poll_once()
    return poller, poller.poll_once()


# --- 1. a new worker incarnation starts a new view -------------------------------------------------------------

def test_connect_down_never_passes_startup_on_the_old_answer_and_the_new_worker_gets_a_new_ladder(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, stopped_fakes: list[FakeConnect]) -> None:
    fake.healthy(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller, view = failed_past_one_rung(make_poller, clock)
    assert not view.report.livez.ok and view.report.startupz.ok  # failed past the 1-rung ladder
    port = fake.port
    fake.stop()  # Connect killed: nothing listens on its port
    view = poller.poll_once()
    assert not view.report.startupz.ok, "startup passed on the dead worker's last answer"
    assert not view.report.readyz.ok
    assert not any("jdbc-sink" in r for r in view.report.livez.reasons), view.report.livez.reasons
    new = FakeConnect(port=port).start()
    stopped_fakes.append(new)
    new.route("GET", "/health", Answer(503, STARTING))
    clock.advance(5)
    view = poller.poll_once()
    assert view.report.livez.ok, view.report.livez.reasons  # the old failure is not the new worker's
    assert not view.report.startupz.ok
    new.healthy(fixture(FAILED_HERE))  # started, and the cause is still there
    new.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    view = poller.poll_once()
    assert view.report.startupz.ok
    assert view.report.livez.ok, "no new ladder for the new worker"
    assert len(new.requests("POST")) == 1  # the new ladder's first rung


def test_on_kafka_before_3_9_a_restart_is_noticed_by_the_refused_port(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, stopped_fakes: list[FakeConnect]) -> None:
    fake.without_health()
    fake.connectors(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller, view = failed_past_one_rung(make_poller, clock)
    assert not view.report.livez.ok
    new = restart_on_same_port(fake, poller)
    stopped_fakes.append(new)
    new.without_health()
    new.connectors(fixture(FAILED_HERE))
    new.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    view = poller.poll_once()
    assert view.report.livez.ok and view.report.startupz.ok
    assert len(new.requests("POST")) == 1


def test_a_different_commit_on_get_root_is_a_new_worker(fake: FakeConnect, make_poller: MakePoller,
                                                        clock: FakeClock) -> None:
    fake.route("GET", "/health", Answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"}))
    fake.route("GET", "/", Answer(200, {"version": "3.8.1", "commit": "aaaa", "kafka_cluster_id": "x"}))
    fake.connectors(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller, view = failed_past_one_rung(make_poller, clock)
    assert not view.report.livez.ok
    fake.route("GET", "/", Answer(200, {"version": "3.8.2", "commit": "bbbb", "kafka_cluster_id": "x"}))
    fake.clear()
    view = poller.poll_once()
    assert view.report.livez.ok and len(fake.requests("POST")) == 1


def test_health_503_again_drops_the_old_verdicts(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture(FAILED_HERE))
    poller = make_poller(health(restart_attempts=0))
    assert not poller.poll_once().report.livez.ok
    fake.route("GET", "/health", Answer(503, STARTING))
    view = poller.poll_once()
    assert view.report.livez.ok, view.report.livez.reasons
    assert view.observation.snapshot is None and view.report.rows == ()


# --- 2. credentials -------------------------------------------------------------------------------------------

def _auth_route(fake: FakeConnect, password: str) -> None:
    good = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()

    def answer(body: Any) -> Any:
        def route(seen: Seen) -> Answer:
            if seen.headers.get("Authorization") != good:
                return Answer(401, {"error_code": 401, "message": "User cannot access the resource."})
            return Answer(200, body)
        return route

    fake.route("GET", "/health", answer(HEALTHY))
    fake.route("GET", "/connectors", answer(fixture("healthy.json")))


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    """The sidecar's mounted password file, holding "old-pw"."""
    path = tmp_path / "password"
    path.write_text("old-pw\n")
    return path


@pytest.fixture
def auth_poller(fake: FakeConnect, pwfile: Path, clock: FakeClock) -> Iterator[Poller]:
    """A poller logging in as admin with the password of `pwfile` (started as "old-pw")."""
    client = ConnectClient(ConnectSettings(url=fake.url, user="admin", password="old-pw",
                                           password_file=str(pwfile), request_timeout=2))
    yield Poller(client, health(unresponsive_after=10), clock=clock)
    client.close()


def test_a_rotated_password_file_is_read_again_and_401_is_never_a_liveness_failure(
        fake: FakeConnect, pwfile: Path, auth_poller: Poller, clock: FakeClock) -> None:
    poller = auth_poller
    _auth_route(fake, "old-pw")
    assert poller.poll_once().report.readyz.ok
    _auth_route(fake, "new-pw")  # Connect's secret rotated; the mounted file not yet
    for _ in range(5):
        clock.advance(60)
        view = poller.poll_once()
    assert view.report.livez.ok, view.report.livez.reasons  # the sidecar's problem, not Connect's
    assert not view.report.readyz.ok
    assert any("401" in r and "credentials" in r for r in view.report.readyz.reasons), view.report.readyz
    assert "credentials" in (view.observation.sidecar_error or "")
    pwfile.write_text("new-pw\n")  # the kubelet updates the mounted Secret
    view = poller.poll_once()
    assert view.report.readyz.ok, view.report.readyz


def test_credentials_refused_before_startup_never_fail_the_startup_probe(
        fake: FakeConnect, pwfile: Path, auth_poller: Poller, clock: FakeClock) -> None:
    """Connect restarted with a rotated password before the sidecar's mounted file changed: the sidecar cannot see
    whether the worker finished starting. A failing /startupz would have the kubelet kill a healthy Connect for the
    sidecar's problem (seen with a real worker in tests/integration/test_rest_basic_auth.py): startupz passes with
    a warning, readiness fails naming the credentials, liveness holds; the new password is read at the next poll."""
    poller = auth_poller
    _auth_route(fake, "new-pw")
    for _ in range(3):
        view = poller.poll_once()
        clock.advance(60)
    report = view.report
    assert not view.observation.started
    assert report.startupz.ok and any("credentials" in w for w in report.startupz.warnings), report.startupz
    assert report.livez.ok, report.livez
    assert not report.readyz.ok and any("credentials" in r for r in report.readyz.reasons), report.readyz
    pwfile.write_text("new-pw\n")
    view = poller.poll_once()
    assert view.observation.started and view.report.readyz.ok, view.report.readyz


def test_an_unhealthy_probe_whose_reasons_change_kind_is_logged_again(
        fake: FakeConnect, auth_poller: Poller, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A restarting worker (503 starting), then the same worker refusing the sidecar's password: /readyz was already
    unhealthy, but the operator reading the log must learn the new reason once, not at every poll."""
    caplog.set_level("INFO", logger="connect_health.poller")
    fake.route("GET", "/health", Answer(503, STARTING))
    for _ in range(3):
        auth_poller.poll_once()
        clock.advance(5)
    _auth_route(fake, "new-pw")
    for _ in range(3):
        auth_poller.poll_once()
        clock.advance(5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("readyz:")]
    assert len(lines) == 1 and lines[0].startswith("readyz: still unhealthy, now: ") and "credentials" in lines[0], \
        lines


def test_a_non_latin1_password_is_sent_as_utf8(fake: FakeConnect) -> None:
    _auth_route(fake, "pässwörd-€")
    client = ConnectClient(ConnectSettings(url=fake.url, user="admin", password="pässwörd-€", request_timeout=2))
    try:
        view = Poller(client, health()).poll_once()
    finally:
        client.close()
    assert view.report.startupz.ok and view.report.readyz.ok, view.report.readyz


# --- 5. any unexpected error marks the view, never freezes it --------------------------------------------------

def test_bad_bytes_in_the_connectors_file_at_start_are_a_reported_error_not_a_frozen_start(
        fake: FakeConnect, make_poller: MakePoller, tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_bytes(b"sink:\n  config: {connector.class: X, file: caf\xe9}\n")  # Latin-1, not UTF-8
    fake.healthy(fixture(FAILED_HERE))
    view = make_poller(health(restart_attempts=0), connectors_file=str(path)).poll_once()
    assert view.report.startupz.ok
    assert not view.report.livez.ok  # the FAILED task is still judged
    assert any("UTF-8" in w for w in view.report.readyz.warnings), view.report.readyz


def test_a_connectors_file_going_bad_later_keeps_judging(fake: FakeConnect, make_poller: MakePoller,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text("jdbc-sink:\n  config: {connector.class: X}\n")
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(health(restart_attempts=0), connectors_file=str(path))
    poller.poll_once()
    time.sleep(0.01)
    path.write_bytes(b"jdbc-sink:\n  config: {connector.class: \xff}\n")
    fake.connectors(fixture(FAILED_HERE))
    view = poller.poll_once()
    assert not view.report.livez.ok


def test_an_unexpected_error_in_a_poll_is_published_not_swallowed(fake: FakeConnect, make_poller: MakePoller,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake.healthy(fixture("healthy.json"))
    poller = make_poller()
    assert poller.poll_once().report.readyz.ok
    import connect_health.model as model_mod

    def broken(*args: Any) -> Any:
        raise TypeError("a bug in the ladder")

    monkeypatch.setattr(model_mod, "failing_connectors", broken)
    view = poller.poll_once()
    assert view.polls == 2 and view.stale
    assert not view.report.readyz.ok and any("TypeError" in r for r in view.report.readyz.reasons)
    assert view.report.livez.ok  # a sidecar bug is not a reason to restart Connect


# --- 6. a deadline for the whole poll ---------------------------------------------------------------------------

def test_a_trickling_worker_fails_liveness_within_the_budget(fake: FakeConnect, make_sidecar: Any) -> None:
    sidecar = make_sidecar(health(unresponsive_after=1.0), timeout=0.5, clock_fn=time.monotonic)
    poller, app = sidecar.poller, sidecar.app
    fake.healthy(fixture("healthy.json"))
    poller.poll_once()
    fake.connectors(Answer(200, fixture("healthy.json"), trickle=0.2))  # each byte well within the read timeout
    poller.start(0.1)
    client = app.test_client()
    deadline = time.monotonic() + 8
    codes = []
    while time.monotonic() < deadline:
        resp = client.get("/livez")
        codes.append(resp.status_code)
        if resp.status_code == 503:
            break
        time.sleep(0.1)
    fake.release.set()
    poller.stop()
    assert codes[-1] == 503, "a trickling worker kept /livez 200"
    assert client.get("/readyz").status_code == 503


def test_a_trickling_body_ends_the_request_at_its_deadline(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(timeout=0.5)
    fake.connectors(Answer(200, fixture("healthy.json"), trickle=0.1))
    started = time.monotonic()
    view = poller.poll_once()
    fake.release.set()
    assert time.monotonic() - started < 3
    assert not view.observation.reachable and "0.5s" in (view.observation.error or "")


# --- 8. 409 during a rebalance -----------------------------------------------------------------------------------

REBALANCE = {"error_code": 409, "message": "Cannot complete request because of a conflicting operation "
                                           "(e.g. worker rebalance)"}


def test_409_on_the_connector_list_keeps_the_last_view_for_a_bounded_time(fake: FakeConnect, make_poller: MakePoller,
                                                                         clock: FakeClock) -> None:
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(health(unresponsive_after=30))
    poller.poll_once()
    fake.connectors(Answer(409, REBALANCE))
    clock.advance(5)
    view = poller.poll_once()
    assert view.report.readyz.ok, view.report.readyz.reasons
    assert any("rebalance" in w for w in view.report.readyz.warnings)
    assert len(view.report.rows) > 0
    clock.advance(30)
    view = poller.poll_once()
    assert not view.report.readyz.ok and not view.report.livez.ok  # a rebalance that never ends is a fault


def test_restarts_answered_409_count_toward_a_bound(fake: FakeConnect, make_poller: MakePoller,
                                                   clock: FakeClock) -> None:
    fake.healthy(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(409, REBALANCE))
    poller = make_poller(health(restart_attempts=2, restart_backoff=1))
    for _ in range(200):
        view = poller.poll_once()
        clock.advance(0.5)
        if not view.report.livez.ok:
            break
    assert not view.report.livez.ok, "restarts answered 409 forever never failed liveness"
    assert len(fake.requests("POST")) <= 8


# --- 10. readiness tells the truth before the first good poll ----------------------------------------------------

def test_readyz_before_the_first_poll_names_the_failing_call(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.connectors(Answer(500, {"error_code": 500, "message": "Request timed out"}))
    view = make_poller().poll_once()
    assert not view.report.readyz.ok and not view.report.startupz.ok
    text = " ".join(view.report.readyz.reasons + view.report.startupz.reasons)
    assert "startup complete" not in text and "GET /connectors answered 500" in text


# --- 9. flapping ---------------------------------------------------------------------------------------------------

def test_a_task_failed_75_percent_of_the_time_fails_liveness_for_the_kubelets_period(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock) -> None:
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller = make_poller(health(restart_attempts=1, restart_backoff=1))
    failing, running = fixture(FAILED_HERE), fixture("healthy.json")
    verdicts = []
    for i in range(60):  # a 1 s poll; the task is FAILED 3 s of every 4
        fake.connectors(failing if i % 4 else running)
        verdicts.append(poller.poll_once().report.livez.ok)
        clock.advance(1)
    tail = verdicts[10:]
    assert not any(tail), verdicts  # the kubelet (3 x 10 s) sees an unbroken failure: no 200 resets its count
    fake.connectors(running)
    for _ in range(60):
        clock.advance(1)
        view = poller.poll_once()
    assert view.report.livez.ok  # fixed for good: healthy again within the window


# --- 11. a poison connector ------------------------------------------------------------------------------------------

def test_a_pod_restart_that_did_not_fix_a_connector_is_not_repeated(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, stopped_fakes: list[FakeConnect]) -> None:
    poller = make_poller(health(restart_attempts=0))
    fake.healthy(fixture(FAILED_HERE))
    assert not poller.poll_once().report.livez.ok  # 1st incarnation: liveness fails, the kubelet restarts it
    new = restart_on_same_port(fake, poller)
    stopped_fakes.append(new)
    new.healthy(fixture(FAILED_HERE))  # the new worker fails the same way
    clock.advance(30)
    view = poller.poll_once()
    assert view.report.livez.ok, view.report.livez.reasons  # a second kill would not help
    assert "jdbc-sink" in view.report.failed_connectors
    assert any("jdbc-sink" in w and "pod restart" in w for w in view.report.readyz.warnings), view.report.readyz



# --- 4. a worker id that matches nothing is reported ----------------------------------------------------------------

@pytest.mark.parametrize(("reported", "mine"), [("localhost:8083", "127.0.0.1:8083"),
                                                ("fd00::1:8083", "[fd00::1]:8083"),
                                                ("[::ffff:10.0.0.7]:8083", "10.0.0.7:8083")])
def test_a_worker_id_written_another_way_is_reported(fake: FakeConnect, make_poller: MakePoller, reported: str,
                                                     mine: str) -> None:
    answer = fixture(FAILED_HERE)
    for entry in answer.values():
        entry["status"]["connector"]["worker_id"] = reported
        for task in entry["status"]["tasks"]:
            task["worker_id"] = reported
    fake.healthy(answer)
    view = make_poller(health(worker_id=mine)).poll_once()
    assert any(reported in w and mine in w for w in view.report.readyz.warnings), view.report.readyz


def test_no_alias_warning_when_the_worker_is_named_or_simply_idle(fake: FakeConnect, make_poller: MakePoller) -> None:
    fake.healthy(fixture(FAILED_HERE))
    assert not any("written" in w for w in make_poller().poll_once().report.readyz.warnings)
    view = make_poller(health(worker_id="10.0.0.9:8083")).poll_once()  # a third worker with nothing assigned
    assert not any("written" in w for w in view.report.readyz.warnings)


def test_metrics_show_a_blind_sidecar_and_a_spared_connector(make_app: Any, fake: FakeConnect, clock: FakeClock,
                                                             stopped_fakes: list[FakeConnect]) -> None:
    app, poller = make_app(health(restart_attempts=0))
    fake.healthy(fixture(FAILED_HERE))
    poller.poll_once()
    new = restart_on_same_port(fake, poller)
    stopped_fakes.append(new)
    new.healthy(fixture(FAILED_HERE))
    poller.poll_once()
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'connect_health_connector_pod_restart_spared{connector="jdbc-sink"} 1.0' in text
    assert "connect_health_sidecar_error 0.0" in text
    new.route("GET", "/connectors", Answer(401, {"error_code": 401, "message": "nope"}))
    poller.poll_once()
    assert "connect_health_sidecar_error 1.0" in app.test_client().get("/metrics").get_data(as_text=True)


def test_a_directory_of_shards_is_reloaded_when_the_kubelet_swaps_it(fake: FakeConnect, make_poller: MakePoller,
                                                                     tmp_path: Path) -> None:
    """The kubelet updates a mounted ConfigMap by writing a new timestamped directory and renaming `..data` onto it:
    the directory's mtime changes, the sidecar reads the shards again (issue 19)."""
    from .test_declared import kubelet_dir, shard

    root = kubelet_dir(tmp_path / "decl", {"connectors.json": shard("jdbc-sink")})
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(health(restart_attempts=0), connectors_file=str(root))
    poller.poll_once()
    assert set(poller._declared) == {"jdbc-sink"}
    time.sleep(0.01)
    kubelet_dir(root, {"connectors.json": shard("jdbc-sink"), "connectors-2.json": shard("other")},
                generation="..2026_01_01_00_00_01.000000002")
    poller.poll_once()
    assert set(poller._declared) == {"jdbc-sink", "other"}
