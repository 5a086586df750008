"""The health model: pure functions from what was observed to the three probe verdicts.

Nothing here does I/O or reads the clock; the poller passes ``now`` in. See the README's health model table.

| observed | row verdict | liveness | readiness |
|---|---|---|---|
| RUNNING on this worker | ok | - | - |
| RUNNING here, lag > 0, no progress for --stall-after (progress.py), ladder not yet exhausted | stalled | - | warning |
| the same, still stalled past the ladder | failed | as FAILED past the ladder | as FAILED past the ladder |
| PAUSED, STOPPED, on any worker | intended | - | - |
| UNASSIGNED, RESTARTING, unknown state, on any worker, within --grace | transient | - | - |
| the same, past --grace | stuck | - | warning |
| FAILED on this worker, restart ladder not yet exhausted | restarting | - | warning |
| FAILED on this worker past the ladder, critical | failed | fails (subject to --failure-threshold) | fails |
| FAILED on this worker past the ladder, best-effort | failed | - | warning |
| FAILED past its one restart, class credentials, configuration, data (failures.py) | failed | - | needs-action |
| RUNNING or FAILED on another worker (worker scope) | remote | - | - |
| REST calls failing for --unresponsive-after, after startup | - | fails | fails |
| GET /health failing while GET / answers (herder busy or stuck), for --herder-stuck-after | - | fails | fails |
| before startup completed | - | ok (the startup probe's window) | fails |
| credentials refused (401/403) before startup completed | - | ok (startupz ok too: not Connect's fault) | fails |

"This worker" is every worker with ``--scope cluster``. Only RUNNING and FAILED units belong to the worker that
reports them: a FAILED unit elsewhere is that pod's to restart and judge. UNASSIGNED belongs to no worker (during a
rebalance, or when a worker left the group, its ``worker_id`` only names the worker that last ran it, possibly a
dead one), and RESTARTING is a unit in passage; judging them only on the pod they name would hide a unit stuck for
good from every pod. So they are judged on every pod, and since a stuck unit is never a liveness or readiness
failure (restarting a pod does not assign a task), it is a readiness warning on each pod that sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from . import failures
from .config import HealthSettings
from .ladder import Rung
from .redact import redact
from .snapshot import ConnectorView, Snapshot

TRANSIENT = ("UNASSIGNED", "RESTARTING")
INTENDED = ("PAUSED", "STOPPED")

Key = tuple[str, int]  # (connector, task id); -1 is the connector instance itself
CONNECTOR = -1


@dataclass(frozen=True)
class Observation:
    """What the poller knows at ``now``."""

    now: float
    started: bool = False
    startup_detail: str = "no answer from the worker yet"
    reachable: bool = False
    unreachable_since: float | None = None
    error: str | None = None
    snapshot: Snapshot | None = None
    transient_since: Mapping[Key, float] = field(default_factory=dict)
    rungs: Mapping[str, Rung] = field(default_factory=dict)
    declared_policies: Mapping[str, str] = field(default_factory=dict)
    restart_limits: Mapping[str, int] = field(default_factory=dict)  # declared per-connector restartAttempts
    drift: tuple[str, ...] = ()
    down: bool = False  # nothing accepts connections on Connect's port: the process is gone (or restarting)
    # GET /health failed but GET / (not behind the herder) answered: the process is alive, its herder busy or stuck
    # (a broker outage); judged on --herder-stuck-after from herder_stuck_since, not on --unresponsive-after.
    herder_stuck: bool = False
    herder_stuck_since: float | None = None
    sidecar_error: str | None = None  # the sidecar cannot see (401/403, a bug in a poll): its problem, not Connect's
    notes: tuple[str, ...] = ()  # readiness warnings of the poll itself (a rebalance answered 409, ...)
    pod_restarts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # liveness failures per connector
    restart_fixed: frozenset[str] = frozenset()  # connectors that ran cleanly after their last pod restart
    # RUNNING tasks without progress (progress.py): (seconds, detail)
    stalled: Mapping[Key, tuple[float, str]] = field(default_factory=dict)
    stall_note: str | None = None  # why stall detection is blind (the worker's metrics not read)
    stall_detection: bool = False  # on, and the worker's metrics read at the last scrape


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def body(self) -> dict[str, object]:
        # Reasons quote Connect's own messages: redacted here, where every probe answer and page gets them.
        out: dict[str, object] = {"status": "ok" if self.ok else "unhealthy",
                                  "reasons": [redact(r) for r in self.reasons]}
        if self.warnings:
            out["warnings"] = [redact(w) for w in self.warnings]
        return out


@dataclass(frozen=True)
class Row:
    connector: str
    task: int | None  # None: the connector instance
    state: str
    worker_id: str
    local: bool
    policy: str
    verdict: str  # ok | intended | transient | stuck | restarting | stalled | failed | remote
    reason: str
    trace: str | None = None
    attempts: int = 0
    cls: str | None = None  # a FAILED unit's failure class (failures.py); None for any other state
    hint: str | None = None  # what to do about it


@dataclass(frozen=True)
class Report:
    livez: Verdict
    readyz: Verdict
    startupz: Verdict
    rows: tuple[Row, ...] = ()
    failed_connectors: tuple[str, ...] = ()  # connectors with a failure on this worker past the ladder
    live_failed: tuple[str, ...] = ()  # the connectors liveness fails for (a pod restart is asked for them)
    spared: tuple[str, ...] = ()  # failed past the ladder, but a pod restart would not help: not failing liveness
    classes: Mapping[str, str] = field(default_factory=dict)  # connector -> class of its FAILED units on this worker
    needs_action: tuple[str, ...] = ()  # failed past the ladder with a class only a person fixes (never liveness)


def policy_of(name: str, settings: HealthSettings, declared: Mapping[str, str]) -> str:
    if declared.get(name) == "best-effort":
        return "best-effort"
    if settings.best_effort is not None and settings.best_effort.search(name):
        return "best-effort"
    return "critical"


def is_local(worker_id: str, settings: HealthSettings) -> bool:
    return settings.scope == "cluster" or (settings.worker_id is not None and worker_id == settings.worker_id)


def failing_connectors(snapshot: Snapshot, settings: HealthSettings) -> list[str]:
    """Connectors with a FAILED instance or task on this worker: the ladder's work list."""
    out = []
    for conn in snapshot.connectors.values():
        units = [(conn.state, conn.worker_id)] + [(t.state, t.worker_id) for t in conn.tasks]
        if any(state == "FAILED" and is_local(wid, settings) for state, wid in units):
            out.append(conn.name)
    return out


def track_transient(previous: Mapping[Key, float], snapshot: Snapshot, now: float) -> dict[Key, float]:
    """When each UNASSIGNED/RESTARTING (or unknown-state) unit was first seen in its current state."""
    out: dict[Key, float] = {}
    for conn in snapshot.connectors.values():
        units = [(CONNECTOR, conn.state)] + [(t.id, t.state) for t in conn.tasks]
        for unit, state in units:
            if _is_transient(state):
                key = (conn.name, unit)
                out[key] = previous.get(key, now)
    return out


def _is_transient(state: str) -> bool:
    return state in TRANSIENT or state not in ("RUNNING", "FAILED") + INTENDED


def _row(conn: ConnectorView, task: int | None, state: str, worker_id: str, trace: str | None,
         obs: Observation, settings: HealthSettings) -> Row:
    policy = policy_of(conn.name, settings, obs.declared_policies)
    local = is_local(worker_id, settings)
    rung = obs.rungs.get(conn.name, Rung())
    limit = obs.restart_limits.get(conn.name, settings.restart_attempts)
    where = "connector" if task is None else f"task {task}"
    label = f"{conn.name} {where}"
    stall = obs.stalled.get((conn.name, task)) if task is not None and local and state == "RUNNING" else None
    if stall is not None:
        what = f"{label} stalled: RUNNING, {stall[1]}, no progress for {stall[0]:.0f}s (--stall-after " \
               f"{settings.stall_after:g}s)"
        verdict, reason = ("failed", f"{what}, still after {rung.attempts} restart attempts") if rung.exhausted \
            else ("stalled", f"{what}; restart ladder attempt {rung.attempts}/{limit}")
    elif state == "RUNNING":
        verdict, reason = "ok", "running"
    elif state in INTENDED:
        verdict, reason = "intended", f"{state.lower()} on purpose"
    elif _is_transient(state):
        since = obs.transient_since.get((conn.name, CONNECTOR if task is None else task), obs.now)
        age = obs.now - since
        if age >= settings.grace:
            verdict, reason = "stuck", f"{label} {state} for {age:.0f}s (grace {settings.grace:g}s)"
        else:
            verdict, reason = "transient", f"{state} for {age:.0f}s, tolerated for {settings.grace:g}s"
    elif not local:
        verdict, reason = "remote", f"FAILED on worker {worker_id or 'unknown'}, not this one"
    elif rung.exhausted:
        if limit == 0:
            why = "restart ladder disabled"
        else:
            why = f"still FAILED after {rung.attempts} restart attempt{'s' if rung.attempts != 1 else ''}"
        verdict, reason = "failed", f"{label} FAILED ({why})"
    else:
        verdict = "restarting"
        reason = f"{label} FAILED; restart ladder attempt {rung.attempts}/{limit}"
    if verdict == "ok" and not local:
        verdict, reason = "remote", f"running on worker {worker_id or 'unknown'}"
    found = failures.classify(trace) if state == "FAILED" else None
    return Row(connector=conn.name, task=task, state=state, worker_id=worker_id, local=local, policy=policy,
               verdict=verdict, reason=reason, trace=trace, attempts=rung.attempts,
               cls=found.cls if found else None, hint=found.hint if found else None)


# The last rows_of's rows per connector, with what they were made from (issue 22: building 2,400 rows was half of a
# poll's CPU at 3,000 connectors, though few change between polls). A connector's rows are made (``_row``) from
# - its ConnectorView: states, workers, traces (so the failure classes, failures.classify of a trace), tasks;
# - its rung, its restart limit, its declared policy, and the settings;
# - its stalled tasks (obs.stalled, progress.py: a stalled task is RUNNING in an answer that may not change at all,
#   and the reason says for how many seconds);
# - for a unit in a transient state, the clock and obs.transient_since: such connectors are never reused.
# Everything else ``_row`` reads of ``obs`` is one of these. Views, rungs and settings are compared by identity (the
# parser and the ladder hand back the same objects when nothing changed; held here, their ids cannot be reused);
# limits, policies and stalls by value. A new input of ``_row`` belongs in this key (tests/sidecar/test_cost.py).
_Made = tuple[ConnectorView, Rung | None, int | None, str | None, HealthSettings,
              tuple[tuple[int, tuple[float, str]], ...], list[Row]]
_ROWS: list[dict[str, _Made]] = [{}]


def rows_of(snapshot: Snapshot, obs: Observation, settings: HealthSettings) -> list[Row]:
    rows: list[Row] = []
    last, kept = _ROWS[0], {}
    stalls: dict[str, list[tuple[int, tuple[float, str]]]] = {}
    for (name, unit), stall in obs.stalled.items():
        stalls.setdefault(name, []).append((unit, stall))
    for name in sorted(snapshot.connectors):
        conn = snapshot.connectors[name]
        rung, limit, policy = obs.rungs.get(name), obs.restart_limits.get(name), obs.declared_policies.get(name)
        stalled = tuple(sorted(stalls[name])) if name in stalls else ()
        hit = last.get(name)
        if (hit is not None and hit[0] is conn and hit[1] is rung and hit[2] == limit and hit[3] == policy
                and hit[4] is settings and hit[5] == stalled):
            rows += hit[6]
            kept[name] = hit
            continue
        mine = [_row(conn, None, conn.state, conn.worker_id, conn.trace, obs, settings)]
        for task in conn.tasks:
            mine.append(_row(conn, task.id, task.state, task.worker_id, task.trace, obs, settings))
        rows += mine
        if not any(_is_transient(r.state) for r in mine):
            kept[name] = (conn, rung, limit, policy, settings, stalled, mine)
    _ROWS[0] = kept
    return rows


def connector_classes(snapshot: Snapshot, settings: HealthSettings) -> dict[str, str]:
    """The failure class of each connector with FAILED units on this worker (failures.connector_class)."""
    out: dict[str, str] = {}
    for conn in snapshot.connectors.values():
        if conn.state != "FAILED" and all(t.state != "FAILED" for t in conn.tasks):
            continue  # most connectors: nothing to classify
        units = [(conn.state, conn.worker_id, conn.trace)] + [(t.state, t.worker_id, t.trace) for t in conn.tasks]
        cls = failures.connector_class([failures.classify(trace).cls for state, wid, trace in units
                                        if state == "FAILED" and is_local(wid, settings)])
        if cls is not None:
            out[conn.name] = cls
    return out


def failed_units(snapshot: Snapshot | None, name: str, settings: HealthSettings) -> list[tuple[str, str]]:
    """(task, class) of connector ``name``'s FAILED units on this worker: what a restart of it restarts
    (task "" is the connector instance)."""
    conn = snapshot.connectors.get(name) if snapshot is not None else None
    if conn is None:
        return []
    units = [("", conn.state, conn.worker_id, conn.trace)] + [(str(t.id), t.state, t.worker_id, t.trace)
                                                              for t in conn.tasks]
    return [(task, failures.classify(trace).cls) for task, state, wid, trace in units
            if state == "FAILED" and is_local(wid, settings)]


def class_limits(limits: Mapping[str, int], classes: Mapping[str, str], settings: HealthSettings) -> dict[str, int]:
    """Restart attempts per connector: the declared ones, capped at one for the classes a retry cannot fix (and
    for resource: one task restart, then a fresh JVM)."""
    out = dict(limits)
    for name, cls in classes.items():
        if cls in failures.ONE_REST_RESTART:
            out[name] = min(1, out.get(name, settings.restart_attempts))
    return out


def pod_restart_helps(name: str, obs: Observation, settings: HealthSettings, cls: str | None = None) -> str | None:
    """None when failing liveness for connector ``name`` may still help; else why a pod restart would not."""
    if cls in failures.NEEDS_ACTION:
        return f"needs-action: a {cls} failure, which no restart fixes"
    if settings.pod_restarts == 0:
        return "pod restarts for connector failures are off (--pod-restarts 0)"
    recent = [t for t in obs.pod_restarts.get(name, ()) if obs.now - t < settings.pod_restart_window]
    if len(recent) >= settings.pod_restarts:
        return (f"{len(recent)} pod restart{'s' if len(recent) != 1 else ''} for it in the last "
                f"{settings.pod_restart_window:g}s (--pod-restarts {settings.pod_restarts})")
    if recent and name not in obs.restart_fixed:
        return "the last pod restart did not fix it"
    return None


def evaluate(obs: Observation, settings: HealthSettings) -> Report:
    if obs.down:
        startupz = Verdict(False, (f"Connect REST API not reachable: {obs.error or 'no answer'}",))
    elif obs.started:
        startupz = Verdict(True)
    elif obs.sidecar_error:
        # The sidecar cannot see whether the worker finished starting (Connect refused its credentials: a rotated
        # Secret that reached Connect first): failing the startup probe would have the kubelet kill Connect for the
        # sidecar's problem. Readiness keeps the pod out of the Service meanwhile; liveness holds until the sidecar
        # sees the worker started.
        startupz = Verdict(True, (), (f"startup not known: {obs.sidecar_error}",))
    else:
        startupz = Verdict(False, (f"worker starting: {obs.startup_detail}",))
    rows = rows_of(obs.snapshot, obs, settings) if obs.snapshot is not None else []

    live_reasons: list[str] = []
    ready_reasons: list[str] = []
    warnings: list[str] = []
    live_failed: list[str] = []
    spared: list[str] = []

    if obs.sidecar_error:
        ready_reasons.append(f"the sidecar cannot judge Connect: {obs.sidecar_error}")
    if obs.started and not obs.reachable and obs.herder_stuck:
        since = obs.herder_stuck_since if obs.herder_stuck_since is not None else obs.now
        stuck_for = obs.now - since
        detail = obs.error or "no answer"
        ready_reasons.append(f"Connect worker's herder not answering for {stuck_for:.0f}s (GET / answers: the "
                             f"process is alive; a broker outage?): {detail}")
        if stuck_for >= settings.herder_stuck_after:
            live_reasons.append(f"Connect worker's herder stuck for {stuck_for:.0f}s "
                                f"(limit {settings.herder_stuck_after:g}s): {detail}")
    elif obs.started and not obs.reachable:
        since = obs.unreachable_since if obs.unreachable_since is not None else obs.now
        down_for = obs.now - since
        detail = obs.error or "no answer"
        ready_reasons.append(f"Connect REST API not answering for {down_for:.0f}s: {detail}")
        if down_for >= settings.unresponsive_after:
            live_reasons.append(
                f"Connect REST API unresponsive for {down_for:.0f}s "
                f"(limit {settings.unresponsive_after:g}s): {detail}")
    if not startupz.ok and startupz.reasons[0] not in ready_reasons:
        ready_reasons.append(startupz.reasons[0])

    # (connector, reason, policy) of each failure past the ladder: FAILED rows, and connectors that are RUNNING at
    # this poll but were FAILED in most of the flap window's polls.
    failed: list[tuple[str, str, str]] = [(r.connector, r.reason, r.policy) for r in rows if r.verdict == "failed"]
    failed_names = {name for name, _, _ in failed}
    present = obs.snapshot.connectors if obs.snapshot is not None else {}
    for name, rung in sorted(obs.rungs.items()):
        if rung.exhausted and rung.failed_share >= 0.5 and name not in failed_names and name in present:
            failed.append((name, f"{name} flapping: FAILED in {100 * rung.failed_share:.0f}% of the polls of the "
                                 f"last {settings.flap_window:g}s", policy_of(name, settings, obs.declared_policies)))
    if obs.down or obs.sidecar_error:
        # The answer is from before Connect went away (or from before the sidecar went blind): not a verdict on
        # the worker that is there now.
        warnings += [f"{reason} (last known, not judged now)" for _, reason, _ in failed]
        failed = []
    critical_failed = []
    unit_classes: dict[str, list[str]] = {}
    hints: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.local and r.state == "FAILED" and r.cls:
            unit_classes.setdefault(r.connector, []).append(r.cls)
            hints.setdefault((r.connector, r.cls), r.hint or "")
    classes = {n: c for n, cs in unit_classes.items() if (c := failures.connector_class(cs))}
    needs_action: list[str] = []
    for name, reason, policy in failed:
        cls = classes.get(name)
        if cls in failures.NEEDS_ACTION:
            hint = hints.get((name, cls), "")
            needs_action.append(name)
            warnings.append(f"needs-action: {reason}: a {cls} failure, no restart fixes it [{policy}]: {hint}")
            continue
        why_not = pod_restart_helps(name, obs, settings, cls) if policy == "critical" else None
        if why_not:
            spared.append(name)
            warnings.append(f"{reason}; not failing liveness: {why_not}")
        elif policy == "critical":
            critical_failed.append((name, reason))
        else:
            warnings.append(f"{reason} [{policy}]")
    fail_live = bool(critical_failed)
    if critical_failed and settings.failure_threshold is not None:
        local_units = [r for r in rows if r.local]
        share = 100.0 * len(critical_failed) / max(1, len(local_units))
        fail_live = share >= settings.failure_threshold
        if not fail_live:
            warnings.append(f"{len(critical_failed)} of {len(local_units)} tasks on this worker failed "
                            f"({share:.0f}%, threshold {settings.failure_threshold:g}%)")
    for name, reason in critical_failed:
        if fail_live:
            live_reasons.append(reason)
            live_failed.append(name)
        else:
            warnings.append(f"{reason} [critical]")
    warnings += [r.reason for r in rows if r.verdict in ("stuck", "restarting", "stalled")]
    if obs.stall_note:
        warnings.append(obs.stall_note)
    warnings += list(obs.notes)
    if obs.snapshot is not None and obs.snapshot.skipped:
        warnings.append(f"{obs.snapshot.skipped} malformed connector entries in Connect's answer were skipped")
    warnings += list(obs.drift)

    # Liveness holds during startup: that window belongs to the startup probe.
    livez = Verdict(not live_reasons, tuple(live_reasons), tuple(warnings) if not live_reasons else ())
    ready_reasons += live_reasons
    readyz = Verdict(not ready_reasons, tuple(dict.fromkeys(ready_reasons)), tuple(warnings))
    failed_connectors = tuple(sorted({name for name, _, _ in failed} | failed_names | set(spared)))
    return Report(livez=livez, readyz=readyz, startupz=startupz, rows=tuple(rows),
                  failed_connectors=failed_connectors, live_failed=tuple(dict.fromkeys(live_failed)),
                  spared=tuple(sorted(set(spared))), classes=classes, needs_action=tuple(sorted(set(needs_action))))
