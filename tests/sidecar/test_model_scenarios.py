"""The health model, table-driven: fixture (a real-shaped Connect answer) + settings + ladder rungs + times -> verdicts.

The model is pure, so no HTTP is involved: each row builds an Observation the way the poller would and checks the
three probe verdicts, the reasons and warnings they carry, and the verdict of chosen rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from connect_health import ladder, model
from connect_health.ladder import Rung
from connect_health.snapshot import parse_expanded

from .conftest import OTHER, WORKER, health
from .fakeconnect import fixture

NOW = 10_000.0
EXHAUSTED = Rung(attempts=3, next_at=NOW - 1, exhausted=True)
CLIMBING = Rung(attempts=1, next_at=NOW + 30)


@dataclass(frozen=True)
class Case:
    id: str
    fixture: str = "healthy.json"
    settings: dict[str, Any] = field(default_factory=dict)
    rungs: dict[str, Rung] = field(default_factory=dict)
    transient_age: float = 0.0  # seconds since UNASSIGNED/RESTARTING units were first seen
    declared: dict[str, str] = field(default_factory=dict)
    started: bool = True
    reachable: bool = True
    unreachable_for: float | None = None
    derive_rungs: bool = False  # run ladder.plan over the snapshot instead of using ``rungs``
    livez: bool = True
    readyz: bool = True
    startupz: bool = True
    live_reason: str | None = None  # a regex one livez reason must match
    ready_reason: str | None = None
    warning: str | None = None  # a regex one readyz warning must match
    no_warnings: bool = False
    verdicts: dict[tuple[str, int | None], str] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    stalled: dict[tuple[str, int], tuple[float, str]] = field(default_factory=dict)  # progress.py's verdict


STALL = {("jdbc-sink", 0): (400.0, "lag 1200")}  # jdbc-sink task 0 is RUNNING on this worker in healthy.json

CASES = [
    # issue 21: a RUNNING task without progress (progress.py) is handled like a FAILED one.
    Case("stalled-within-ladder", rungs={"jdbc-sink": CLIMBING}, stalled=STALL, livez=True, readyz=True,
         warning=r"^jdbc-sink task 0 stalled: RUNNING, lag 1200, no progress for 400s \(--stall-after 300s\); "
                 r"restart ladder attempt 1/3$",
         verdicts={("jdbc-sink", 0): "stalled", ("file-source", 0): "ok"}),
    Case("stalled-past-ladder-critical", rungs={"jdbc-sink": EXHAUSTED}, stalled=STALL, livez=False, readyz=False,
         live_reason=r"^jdbc-sink task 0 stalled: RUNNING, lag 1200, no progress for 400s .*still after 3 restart",
         verdicts={("jdbc-sink", 0): "failed"}, failed=("jdbc-sink",)),
    Case("stalled-past-ladder-best-effort", rungs={"jdbc-sink": EXHAUSTED}, stalled=STALL,
         declared={"jdbc-sink": "best-effort"}, livez=True, readyz=True, warning=r"stalled.*\[best-effort\]$",
         verdicts={("jdbc-sink", 0): "failed"}, failed=("jdbc-sink",)),
    # a stall named for a task on another worker, or not RUNNING, is never this pod's verdict
    Case("stalled-remote-task-is-not-judged-here", stalled={("jdbc-sink", 1): (400.0, "lag 5")}, no_warnings=True,
         verdicts={("jdbc-sink", 1): "remote"}),
    Case("healthy", livez=True, no_warnings=True,
         verdicts={("file-source", None): "ok", ("file-source", 0): "ok", ("jdbc-sink", 0): "ok",
                   ("jdbc-sink", None): "remote", ("jdbc-sink", 1): "remote", ("file-sink", 0): "remote"}),
    Case("no-connectors", fixture="empty.json", no_warnings=True),
    # FAILED task on this worker, the ladder still climbing: liveness holds, readiness carries a warning.
    Case("failed-local-within-ladder", fixture="failed_task_local.json", rungs={"jdbc-sink": CLIMBING},
         livez=True, readyz=True, warning=r"jdbc-sink task 0 FAILED; restart ladder attempt 1/3",
         verdicts={("jdbc-sink", 0): "restarting", ("file-source", 0): "ok"}),
    # ... and past the ladder: liveness fails naming the connector.
    Case("failed-local-past-ladder", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
         livez=False, readyz=False, live_reason=r"^jdbc-sink task 0 FAILED \(still FAILED after 3 restart attempts\)",
         ready_reason=r"jdbc-sink task 0", verdicts={("jdbc-sink", 0): "failed"}, failed=("jdbc-sink",)),
    Case("failed-connector-instance-past-ladder", fixture="failed_connector_local.json",
         rungs={"mysql-source": EXHAUSTED}, livez=False, readyz=False, live_reason=r"^mysql-source connector FAILED",
         verdicts={("mysql-source", None): "failed"}, failed=("mysql-source",)),
    # FAILED on another worker: not this pod's business in worker scope, even with a spent ladder entry...
    Case("failed-remote-worker-scope", fixture="failed_task_remote.json", rungs={"file-sink": EXHAUSTED},
         livez=True, readyz=True, no_warnings=True, verdicts={("file-sink", 0): "remote"}),
    # ... but it counts with --scope cluster.
    Case("failed-remote-cluster-scope", fixture="failed_task_remote.json", rungs={"file-sink": EXHAUSTED},
         settings={"scope": "cluster", "worker_id": None}, livez=False, readyz=False,
         live_reason=r"^file-sink task 0 FAILED", verdicts={("file-sink", 0): "failed", ("jdbc-sink", 1): "ok"},
         failed=("file-sink",)),
    Case("paused-and-stopped-are-intended", fixture="paused_stopped.json", no_warnings=True,
         verdicts={("file-source", None): "intended", ("file-source", 0): "intended",
                   ("jdbc-sink", None): "intended"}),
    Case("paused-and-stopped-cluster-scope", fixture="paused_stopped.json", settings={"scope": "cluster"},
         no_warnings=True, verdicts={("jdbc-sink", None): "intended"}),
    Case("unassigned-restarting-within-grace", fixture="transient.json", transient_age=299, no_warnings=True,
         verdicts={("jdbc-sink", 0): "transient", ("file-source", 0): "transient"}),
    # Past --grace: reported, but never a liveness failure (restarting the pod does not assign a task).
    Case("unassigned-restarting-past-grace", fixture="transient.json", transient_age=300, livez=True, readyz=True,
         warning=r"jdbc-sink task 0 UNASSIGNED for 300s \(grace 300s\)",
         verdicts={("jdbc-sink", 0): "stuck", ("file-source", 0): "stuck"}),
    # UNASSIGNED belongs to no worker (its worker_id names the one that last ran it) and RESTARTING is in passage:
    # judged on every pod, so a unit stuck for good is seen even when the worker it names left the group. Seen
    # from a third worker, RUNNING units are remote, the stuck ones stay stuck: a warning, never a failure.
    Case("stuck-units-named-after-other-workers-are-warnings-here-too", fixture="transient.json",
         settings={"worker_id": "10.0.0.9:8083"}, transient_age=300, livez=True, readyz=True,
         warning=r"jdbc-sink task 0 UNASSIGNED for 300s",
         verdicts={("jdbc-sink", 0): "stuck", ("file-source", 0): "stuck", ("jdbc-sink", 1): "remote",
                   ("file-source", None): "remote"}),
    Case("transient-units-named-after-other-workers-within-grace", fixture="transient.json",
         settings={"worker_id": "10.0.0.9:8083"}, transient_age=10, no_warnings=True,
         verdicts={("jdbc-sink", 0): "transient", ("file-source", 0): "transient"}),
    Case("paused-and-stopped-on-other-workers-are-intended", fixture="paused_stopped.json",
         settings={"worker_id": "10.0.0.9:8083"}, no_warnings=True,
         verdicts={("file-source", None): "intended", ("jdbc-sink", None): "intended"}),
    Case("unassigned-long-past-grace-short-grace", fixture="transient.json", settings={"grace": 5},
         transient_age=86_400, livez=True, readyz=True, warning=r"file-source task 0 RESTARTING",
         verdicts={("jdbc-sink", 0): "stuck"}),
    Case("best-effort-by-regex", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
         settings={"best_effort": re.compile(r"^jdbc-")}, livez=True, readyz=True,
         warning=r"jdbc-sink task 0 FAILED .*\[best-effort\]", verdicts={("jdbc-sink", 0): "failed"},
         failed=("jdbc-sink",)),
    Case("best-effort-regex-not-matching", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
         settings={"best_effort": re.compile(r"^file-")}, livez=False, readyz=False, live_reason=r"^jdbc-sink",
         failed=("jdbc-sink",)),
    Case("best-effort-by-declared-policy", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
         declared={"jdbc-sink": "best-effort"}, livez=True, readyz=True, warning=r"\[best-effort\]",
         failed=("jdbc-sink",)),
    Case("declared-critical-still-fails", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
         declared={"jdbc-sink": "critical"}, livez=False, readyz=False, live_reason=r"^jdbc-sink",
         failed=("jdbc-sink",)),
    # --failure-threshold: 1 failed of this worker's 4 tasks = 25 %. Of the cluster's 45 units it would be ~2 %,
    # so a threshold of 20 fails liveness only if the denominator is this worker's units.
    Case("threshold-reached-worker-denominator", fixture="threshold.json", rungs={"wide-sink": EXHAUSTED},
         settings={"failure_threshold": 20.0}, livez=False, readyz=False, live_reason=r"^wide-sink task 2 FAILED",
         failed=("wide-sink",)),
    Case("threshold-exactly-reached", fixture="threshold.json", rungs={"wide-sink": EXHAUSTED},
         settings={"failure_threshold": 25.0}, livez=False, readyz=False, failed=("wide-sink",)),
    Case("threshold-not-reached", fixture="threshold.json", rungs={"wide-sink": EXHAUSTED},
         settings={"failure_threshold": 30.0}, livez=True, readyz=True,
         warning=r"^1 of 4 tasks on this worker failed \(25%, threshold 30%\)",
         verdicts={("wide-sink", 2): "failed", ("wide-sink", 4): "remote"}, failed=("wide-sink",)),
    Case("no-threshold-any-failure", fixture="threshold.json", rungs={"wide-sink": EXHAUSTED},
         livez=False, readyz=False, failed=("wide-sink",)),
    # The REST API stopped answering after startup: readiness at once, liveness only after --unresponsive-after.
    Case("unresponsive-within-budget", reachable=False, unreachable_for=59, livez=True, readyz=False,
         ready_reason=r"^Connect REST API not answering for 59s: GET /connectors: timed out"),
    Case("unresponsive-past-budget", reachable=False, unreachable_for=60, livez=False, readyz=False,
         live_reason=r"^Connect REST API unresponsive for 60s \(limit 60s\): GET /connectors: timed out"),
    Case("unresponsive-custom-budget", reachable=False, unreachable_for=11, settings={"unresponsive_after": 10},
         livez=False, readyz=False),
    # Before startup the window belongs to the startup probe: livez holds, startupz and readyz fail.
    Case("before-startup-unreachable", started=False, reachable=False, unreachable_for=3600, livez=True,
         readyz=False, startupz=False, ready_reason=r"^worker starting"),
    Case("before-startup-starting", started=False, reachable=True, livez=True, readyz=False, startupz=False),
    # --restart-attempts 0: the ladder is off and a failure counts at once.
    Case("ladder-disabled", fixture="failed_task_local.json", settings={"restart_attempts": 0}, derive_rungs=True,
         livez=False, readyz=False, live_reason=r"^jdbc-sink task 0 FAILED \(restart ladder disabled\)",
         failed=("jdbc-sink",)),
    Case("ladder-enabled-first-sighting", fixture="failed_task_local.json", derive_rungs=True, livez=True,
         readyz=True, verdicts={("jdbc-sink", 0): "restarting"}),
]


def observe(case: Case) -> tuple[model.Report, model.Observation]:
    settings = health(**case.settings)
    snapshot = parse_expanded(fixture(case.fixture))
    first_seen = NOW - case.transient_age
    transient = model.track_transient({}, snapshot, first_seen)
    transient = model.track_transient(transient, snapshot, NOW)  # still in the same state at NOW
    rungs = dict(case.rungs)
    if case.derive_rungs:
        failing = model.failing_connectors(snapshot, settings)
        rungs, _ = ladder.plan({}, failing, snapshot.connectors, NOW, settings)
    obs = model.Observation(
        now=NOW, started=case.started, reachable=case.reachable,
        unreachable_since=None if case.unreachable_for is None else NOW - case.unreachable_for,
        error=None if case.reachable else "GET /connectors: timed out after 5s",
        snapshot=snapshot, transient_since=transient, rungs=rungs, declared_policies=case.declared,
        stalled=case.stalled,
    )
    return model.evaluate(obs, settings), obs


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario(case: Case) -> None:
    report, _ = observe(case)
    assert (report.livez.ok, report.readyz.ok, report.startupz.ok) == (case.livez, case.readyz, case.startupz), (
        report.livez, report.readyz, report.startupz)
    for verdict in (report.livez, report.readyz, report.startupz):
        assert isinstance(verdict.ok, bool)
        assert verdict.ok == (not verdict.reasons)
        assert verdict.body()["status"] == ("ok" if verdict.ok else "unhealthy")
    if case.live_reason:
        assert any(re.search(case.live_reason, r) for r in report.livez.reasons), report.livez.reasons
    if case.ready_reason:
        assert any(re.search(case.ready_reason, r) for r in report.readyz.reasons), report.readyz.reasons
    if not case.livez:
        # every liveness reason is also a readiness reason: a dead worker is never ready
        assert set(report.livez.reasons) <= set(report.readyz.reasons)
    if case.warning:
        assert any(re.search(case.warning, w) for w in report.readyz.warnings), report.readyz.warnings
    if case.no_warnings:
        assert report.readyz.warnings == () and report.livez.warnings == ()
    rows = {(r.connector, r.task): r for r in report.rows}
    for key, expected in case.verdicts.items():
        assert rows[key].verdict == expected, rows[key]
    assert report.failed_connectors == case.failed


def test_rows_cover_every_connector_and_task_with_locality() -> None:
    report, _ = observe(Case("x", fixture="healthy.json"))
    keys = [(r.connector, r.task) for r in report.rows]
    assert keys == [("file-sink", None), ("file-sink", 0), ("file-source", None), ("file-source", 0),
                    ("jdbc-sink", None), ("jdbc-sink", 0), ("jdbc-sink", 1)]
    local = {(r.connector, r.task) for r in report.rows if r.local}
    assert local == {("file-source", None), ("file-source", 0), ("jdbc-sink", 0)}
    assert {r.worker_id for r in report.rows} == {WORKER, OTHER}


def test_failed_rows_keep_the_trace_and_attempts() -> None:
    report, _ = observe(Case("x", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED}))
    row = next(r for r in report.rows if (r.connector, r.task) == ("jdbc-sink", 0))
    assert row.trace is not None and row.trace.startswith("org.apache.kafka.connect.errors.ConnectException")
    assert row.attempts == 3
    assert row.policy == "critical"


def test_best_effort_failure_is_still_visible_in_rows_and_failed_list() -> None:
    report, _ = observe(Case("x", fixture="failed_task_local.json", rungs={"jdbc-sink": EXHAUSTED},
                             declared={"jdbc-sink": "best-effort"}))
    row = next(r for r in report.rows if (r.connector, r.task) == ("jdbc-sink", 0))
    assert (row.policy, row.verdict) == ("best-effort", "failed")
    assert report.failed_connectors == ("jdbc-sink",)


def test_transient_first_seen_is_kept_across_polls_and_reset_on_change() -> None:
    snap = parse_expanded(fixture("transient.json"))
    healthy = parse_expanded(fixture("healthy.json"))
    first = model.track_transient({}, snap, 100.0)
    assert first == {("jdbc-sink", 0): 100.0, ("file-source", 0): 100.0}
    later = model.track_transient(first, snap, 500.0)
    assert later == first  # still the time it was first seen, so the age keeps growing
    assert model.track_transient(later, healthy, 600.0) == {}
    again = model.track_transient({}, snap, 700.0)
    assert again[("jdbc-sink", 0)] == 700.0  # a new episode starts a new grace period


def test_unknown_future_state_is_treated_as_transient_not_failed() -> None:
    data = fixture("healthy.json")
    data["file-source"]["status"]["tasks"][0]["state"] = "DEGRADED"  # a state a future Kafka might add
    snapshot = parse_expanded(data)
    settings = health()
    since = model.track_transient({}, snapshot, NOW - 1000)
    report = model.evaluate(model.Observation(now=NOW, started=True, reachable=True, snapshot=snapshot,
                                              transient_since=since), settings)
    row = next(r for r in report.rows if (r.connector, r.task) == ("file-source", 0))
    assert (row.state, row.verdict) == ("DEGRADED", "stuck")
    assert report.livez.ok


def test_failing_connectors_is_scoped_to_this_worker() -> None:
    remote = parse_expanded(fixture("failed_task_remote.json"))
    local = parse_expanded(fixture("failed_task_local.json"))
    assert model.failing_connectors(remote, health()) == []
    assert model.failing_connectors(remote, health(scope="cluster")) == ["file-sink"]
    assert model.failing_connectors(local, health()) == ["jdbc-sink"]
    assert model.failing_connectors(local, health(worker_id=OTHER)) == []
    assert model.failing_connectors(local, health(worker_id=None)) == []


def test_skipped_entries_and_drift_become_readiness_warnings() -> None:
    data = fixture("healthy.json")
    data["broken"] = {"status": {"connector": "not an object"}}
    snapshot = parse_expanded(data)
    assert snapshot.skipped == 1
    report = model.evaluate(model.Observation(now=NOW, started=True, reachable=True, snapshot=snapshot,
                                              drift=("declared connector x is missing from the worker",)), health())
    assert report.livez.ok and report.readyz.ok
    assert "1 malformed connector entries in Connect's answer were skipped" in report.readyz.warnings
    assert "declared connector x is missing from the worker" in report.readyz.warnings
