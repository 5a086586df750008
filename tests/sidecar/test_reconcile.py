"""Drift correction's decisions (reconcile.py): which drifting connectors are corrected when, by table; the gate
(never while the worker starts, does not answer, rebalances, or another pod holds the lease); and the Reconciler over
real Poller polls of the fake Connect worker of these unit tests (fakeconnect.py), its writes counted there."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from connect_health import config, model
from connect_health.app import Sidecar
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings, HealthSettings
from connect_health.events import Emit
from connect_health.lease import Elector
from connect_health.poller import Poller, View
from connect_health.reconcile import NOT_LEADER, Reconciler, Rules, Track, gate, plan, record, wait_for

from .conftest import WORKER, MakePoller
from .fakeconnect import Answer, FakeClock, FakeConnect
from .standin_kube import stand_in_kube
from .test_cli import clean_env, free_port, run
from .test_cli_bad_input import one_line_exit_2

R = Rules(after=90.0)
CFG = ("x", "config", "connector x config differs from the declaration (keys: file)")


def seen(since: float, polls: int = 1, **kw: object) -> Track:
    return Track(since=since, polls=polls, details=(CFG[2],), **kw)  # type: ignore[arg-type]


# (case, tracks before, drift this poll, now, blocked, busy, due)
PLAN = [
    ("first sight: wait", {}, [CFG], 0.0, None, (), []),
    ("second poll, before --reconcile-after: wait", {"x": seen(0.0)}, [CFG], 50.0, None, (), []),
    ("seen twice and lasted --reconcile-after: due", {"x": seen(0.0)}, [CFG], 90.0, None, (), ["x"]),
    ("lasted long but seen by one poll only: wait", {}, [CFG], 500.0, None, (), []),
    ("gone again before it was due: nothing", {"x": seen(0.0)}, [], 95.0, None, (), []),
    ("another pod holds the lease: never due", {"x": seen(0.0)}, [CFG], 95.0, NOT_LEADER, (), []),
    ("being corrected already: not again", {"x": seen(0.0)}, [CFG], 95.0, None, ("x",), []),
    ("fought once: after + 60 s", {"x": seen(0.0, fights=1, corrected_at=-200.0)}, [CFG], 149.0, None, (), []),
    ("fought once, waited after + 60 s: due", {"x": seen(0.0, fights=1, corrected_at=-200.0)}, [CFG], 150.0, None,
     (), ["x"]),
    ("fought 3 times: after + 240 s", {"x": seen(0.0, fights=3, corrected_at=-900.0)}, [CFG], 329.0, None, (), []),
    ("tried moments ago (status lag): not again yet", {"x": seen(0.0, tried_at=85.0)}, [CFG], 95.0, None, (), []),
    ("tried a while ago: due", {"x": seen(0.0, tried_at=75.0)}, [CFG], 95.0, None, (), ["x"]),
]


@pytest.mark.parametrize(("case", "tracks", "drift", "now", "blocked", "busy", "due"), PLAN, ids=[p[0] for p in PLAN])
def test_plan(case: str, tracks: dict[str, Track], drift: list[tuple[str, str, str]], now: float,
              blocked: str | None, busy: tuple[str, ...], due: list[str]) -> None:
    _, got = plan(tracks, drift, now, R, blocked=blocked, busy=frozenset(busy))
    assert got == due, case


def test_with_no_wait_the_second_poll_corrects_never_the_first() -> None:
    rules = Rules(after=0.0)
    tracks, due = plan({}, [CFG], 0.0, rules, blocked=None)
    assert due == []
    assert plan(tracks, [CFG], 0.5, rules, blocked=None)[1] == ["x"]


def test_a_view_of_a_worker_not_answering_changes_no_track() -> None:
    """Its drift is empty because nothing was seen, not because the connector is back as declared."""
    tracks = {"x": seen(0.0, polls=3)}
    after, due = plan(tracks, [], 100.0, R, blocked="the worker does not answer")
    assert after == tracks and due == []


def test_another_pod_leading_still_tracks_so_a_new_leader_acts_at_once() -> None:
    after, due = plan({}, [CFG], 0.0, R, blocked=NOT_LEADER)
    after, due = plan(after, [CFG], 100.0, R, blocked=NOT_LEADER)
    assert due == [] and after["x"].polls == 2
    assert plan(after, [CFG], 101.0, R, blocked=None)[1] == ["x"]


def test_at_most_per_poll_corrections_longest_drifting_first() -> None:
    rules = Rules(after=0.0, per_poll=2)
    tracks = {n: Track(since=float(i), polls=5) for i, n in enumerate(["c", "a", "d", "b"])}
    drift = [(n, "missing", f"{n} missing") for n in tracks]
    assert plan(tracks, drift, 10.0, rules, blocked=None)[1] == ["c", "a"]
    assert plan(tracks, drift, 10.0, rules, blocked=None, busy=frozenset({"c"}))[1] == ["a"]  # room for one


# (case, track before, now, wrote, error, fights after, corrections after)
RECORD = [
    ("first correction", Track(since=0.0, polls=2), 100.0, True, None, 0, 1),
    ("again within the fight window: a fight", Track(since=0.0, polls=2, corrected_at=-100.0, corrections=1),
     100.0, True, None, 1, 2),
    ("again long after: no fight", Track(since=0.0, polls=2, corrected_at=-1000.0, corrections=1, fights=2),
     100.0, True, None, 0, 2),
    ("nothing to write (already as declared): no correction", Track(since=0.0, polls=2), 100.0, False, None, 0, 0),
    ("refused: backs off like a fight", Track(since=0.0, polls=2), 100.0, False, "400: invalid", 1, 0),
]


@pytest.mark.parametrize(("case", "track", "now", "wrote", "error", "fights", "corrections"), RECORD,
                         ids=[r[0] for r in RECORD])
def test_record(case: str, track: Track, now: float, wrote: bool, error: str | None, fights: int,
                corrections: int) -> None:
    after = record(track, now, R, wrote=wrote, error=error)
    assert (after.fights, after.corrections) == (fights, corrections), case
    assert after.polls <= 1  # the drift must be seen again from the start
    assert after.tried_at == now


def test_the_fight_backoff_doubles_up_to_an_hour() -> None:
    assert [wait_for(Track(fights=f), R) for f in (0, 1, 2, 3)] == [90.0, 150.0, 210.0, 330.0]
    assert wait_for(Track(fights=30), R) == 3600.0


def view(**obs: object) -> View:
    o = dataclasses.replace(model.Observation(now=0.0, started=True, reachable=True), **obs)  # type: ignore[arg-type]
    return View(report=model.evaluate(o, HealthSettings()), observation=o)


GATE = [
    ("worker answers, started, this pod leads", {}, False, True, None),
    ("worker not answering", {"reachable": False}, False, True, "the worker does not answer"),
    ("worker starting", {"started": False}, False, True, "the worker is starting"),
    ("the sidecar cannot judge", {"sidecar_error": "401"}, False, True, "the sidecar cannot judge the worker"),
    ("a rebalance: the View is from an older answer", {}, True, True, "the last answer is not fresh"),
    ("another pod leads", {}, False, False, NOT_LEADER),
]


@pytest.mark.parametrize(("case", "obs", "stale", "leads", "why"), GATE, ids=[g[0] for g in GATE])
def test_gate(case: str, obs: dict[str, object], stale: bool, leads: bool, why: str | None) -> None:
    v = dataclasses.replace(view(**obs), stale=stale)
    got = gate(v, leads)
    assert (got if got is None else got[:len(why or "")]) == why, case


# --- the Reconciler over real polls of the fake worker -------------------------------------------------------------

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
DECLARED = {"connector.class": SOURCE, "tasks.max": "1", "file": "/data/in.txt", "topic": "lines"}


def paused_source() -> dict[str, Any]:
    """The expanded list of a worker holding file-source PAUSED (declared running)."""
    return {"file-source": {
        "info": {"name": "file-source", "config": {**DECLARED, "name": "file-source"},
                 "tasks": [{"connector": "file-source", "task": 0}], "type": "source"},
        "status": {"name": "file-source", "connector": {"state": "PAUSED", "worker_id": WORKER},
                   "tasks": [{"id": 0, "state": "PAUSED", "worker_id": WORKER}], "type": "source"}}}


@pytest.fixture
def declared_file(tmp_path: Path) -> Path:
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps({"file-source": {"config": DECLARED}}))
    return path


Reconciling = Callable[..., tuple[Reconciler, Poller]]


@pytest.fixture
def reconciling(fake: FakeConnect, make_poller: MakePoller, clock: FakeClock,
                declared_file: Path) -> Iterator[Reconciling]:
    """make(emit=ignore, elector=None) -> an unthreaded Reconciler (--reconcile-after 0) observing a Poller of the
    fake worker holding file-source PAUSED (declared running), which answers a resume with 202."""
    fake.healthy(paused_source())
    fake.route("PUT", "/connectors/file-source/resume", Answer(202, None))
    clients: list[ConnectClient] = []

    def make(emit: Emit = lambda *e: None, elector: Elector | None = None) -> tuple[Reconciler, Poller]:
        client = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2.0))
        clients.append(client)
        rec = Reconciler(client, str(declared_file), emit, Rules(after=0.0), elector=elector, clock=clock)
        poller = make_poller(connectors_file=str(declared_file), observers=(rec,))
        rec.attach(poller)
        return rec, poller

    yield make
    for client in clients:
        client.close()


def test_a_connector_someone_keeps_pausing_is_resumed_ever_less_often_and_status_says_so(
        fake: FakeConnect, reconciling: Reconciling, clock: FakeClock) -> None:
    """Something pauses file-source again after each correction (the fake worker answers it PAUSED whatever is sent):
    the corrections back off (after + 60 s, 120 s, 240 s), each one an Event, and /status names the fight."""
    said: list[tuple[str, str, str]] = []
    _, poller = reconciling(lambda *e: said.append(e))
    for _ in range(20):  # 400 s, a poll every 20 s
        poller.poll_once()
        clock.advance(20)
    resumes = fake.requests("PUT", "/connectors/file-source/resume")
    # at 20 s, then 40 s later (no wait: the status lag of 15 s only), 80 s later (+60), 140 s later (+120)
    assert len(resumes) == 4, [round(r.at, 1) for r in resumes]
    assert [e[:2] for e in said] == [("Normal", "ConnectorReconciled")] * 4
    assert "connector file-source is PAUSED, declared running" in said[0][2] and "resumed file-source" in said[0][2]
    status = poller.poll_once().reconcile
    assert status is not None
    assert status["enabled"] and status["leader"] and status["lease"] is None and status["corrections"] == {
        "file-source": 4}
    (entry,) = status["connectors"]
    assert entry["fought"] and entry["fights"] == 3 and entry["correct_after_seconds"] == 240.0


def down(fake: FakeConnect) -> None:
    """The worker stops answering (its REST API answers 500 to everything the poller asks)."""
    fake.route("GET", "/health", Answer(500, {"status": "unhealthy", "message": "stuck"}))
    fake.route("GET", "/", Answer(500, {"error_code": 500, "message": "down"}))


def test_never_while_the_worker_does_not_answer(fake: FakeConnect, reconciling: Reconciling,
                                                clock: FakeClock) -> None:
    rec, poller = reconciling()
    poller.poll_once()  # drift seen once
    down(fake)
    for _ in range(3):
        clock.advance(20)
        poller.poll_once()
    assert rec.status()["waiting"] == "the worker does not answer"
    assert fake.requests("PUT") == []
    fake.healthy(paused_source())
    clock.advance(20)
    poller.poll_once()  # the second poll that sees it: corrected now
    assert len(fake.requests("PUT", "/connectors/file-source/resume")) == 1


def test_serve_wires_it_and_status_and_metrics_show_it(make_sidecar: Callable[..., Sidecar],
                                                       declared_file: Path) -> None:
    off = make_sidecar()
    assert off.reconciler is None
    off.poller.poll_once()
    client = off.app.test_client()
    assert client.get("/status?format=json").get_json()["reconcile"] == {"enabled": False}
    assert b"connect_health_reconcile_leader" not in client.get("/metrics").data

    on = make_sidecar(connectors_file=str(declared_file), reconcile=True)
    assert on.reconciler is not None and on.reconciler in on.poller.observers
    on.poller.poll_once()
    client = on.app.test_client()
    doc = client.get("/status?format=json").get_json()["reconcile"]
    assert doc["enabled"] is True and doc["leader"] is True and doc["after_seconds"] == 90.0
    assert b"connect_health_reconcile_leader 1.0" in client.get("/metrics").data
    assert b"Drift correction" in client.get("/status?format=html").data


# --- the flags ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "env", "names"), [
    (["--reconcile"], {}, "--reconcile: needs --connectors-file"),
    (["--reconcile-lease", "rc"], {}, "--reconcile-lease: only meaningful with --reconcile"),
    (["--reconcile", "--reconcile-lease", "rc"], {}, "--reconcile-lease needs KUBERNETES_SERVICE_HOST"),
    ([], {"CONNECT_HEALTH_RECONCILE": "1", "CONNECT_HEALTH_RECONCILE_LEASE": "rc"},
     "--reconcile-lease needs KUBERNETES_SERVICE_HOST"),
    (["--reconcile", "--reconcile-lease-duration", "1"], {}, "--reconcile-lease-duration: must be >= 3"),
], ids=["no file", "lease alone", "lease outside a pod", "the env twins", "too short a lease"])
def test_bad_reconcile_settings_are_one_line_and_exit_2(fake: FakeConnect, declared_file: Path, args: list[str],
                                                         env: dict[str, str], names: str) -> None:
    with_file = [] if args == ["--reconcile"] else ["--connectors-file", str(declared_file)]
    result = run("serve", "--host", "127.0.0.1", "--port", str(free_port()), "--connect-url", fake.url, *with_file,
                 *args, env=clean_env(**env))
    # the Lease's environment is checked when serve builds the sidecar, after its first log line (open files)
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    one_line_exit_2(subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(errors)),
                    names)
    assert fake.requests("PUT") == [] and fake.requests("POST") == []


def test_the_env_twins_set_it(declared_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"CONNECT_HEALTH_RECONCILE": "true", "CONNECT_HEALTH_RECONCILE_LEASE": "rel-reconcile",
                       "CONNECT_HEALTH_RECONCILE_LEASE_DURATION": "20", "CONNECT_HEALTH_RECONCILE_AFTER": "5",
                       "CONNECT_HEALTH_CONNECTORS_FILE": str(declared_file)}.items():
        monkeypatch.setenv(key, value)
    settings = config.parse(["serve"])
    assert isinstance(settings, config.ServeSettings)
    assert (settings.reconcile, settings.reconcile_lease, settings.reconcile_lease_duration,
            settings.reconcile_after) == (True, "rel-reconcile", 20.0, 5.0)


def test_a_drift_that_needs_no_write_is_tried_again_only_after_the_wait() -> None:
    """Nothing to write (a connector declared stopped stays paused on a worker without STOPPED): one attempt per
    --reconcile-after, not one every other poll."""
    track = record(seen(0.0, polls=2), 90.0, R, wrote=False, error=None)
    tracks = {"x": track}
    for now in (95.0, 120.0, 179.0):
        tracks, due = plan(tracks, [CFG], now, R, blocked=None)
        assert due == [], now
    assert plan(tracks, [CFG], 180.0, R, blocked=None)[1] == ["x"]


def test_a_pod_whose_worker_stops_answering_hands_the_lease_over(fake: FakeConnect, reconciling: Reconciling,
                                                               clock: FakeClock, tmp_path: Path) -> None:
    """One failed poll keeps the Lease (a blip); a worker not answering for a whole lease duration gives it back, so
    that a pod whose worker answers corrects instead; and a pod starting never takes it."""
    with stand_in_kube(tmp_path) as kube:
        elector = Elector(kube.lease_api("rc"), "pod-a", 15.0, clock=clock)
        _, poller = reconciling(elector=elector)
        elector.step()
        assert kube.leases == {}  # no poll yet: this pod knows nothing of its worker
        poller.poll_once()
        elector.step()
        assert elector.leads()
        down(fake)
        for seconds, leads in ((5, True), (14, True), (1, False)):  # a blip; then not answering for 15 s
            clock.advance(seconds)
            poller.poll_once()
            elector.step()
            assert elector.leads() is leads, seconds
        assert kube.leases["rc"]["spec"]["holderIdentity"] == ""


def test_never_from_a_file_that_no_longer_parses(fake: FakeConnect, reconciling: Reconciling, clock: FakeClock,
                                                 declared_file: Path) -> None:
    """A broken ConfigMap: the poller keeps judging by the last good declarations, the correction writes nothing
    and /status says why."""
    rec, poller = reconciling()
    poller.poll_once()
    declared_file.write_text('{"file-source": {"config": ')
    clock.advance(20)
    poller.poll_once()
    assert fake.requests("PUT") == []
    (entry,) = rec.status()["connectors"]
    assert "the connectors file cannot be read" in entry["error"] and "not valid JSON" in entry["error"]
