"""The one background poller: asks Connect, runs the restart ladder, publishes an immutable View.

Per poll it makes a constant number of REST calls whatever the number of connectors:
``GET /health`` (or ``GET /`` on workers without it) and ``GET /connectors?expand=status``, with ``&expand=info``
(connector configs, by far the bulk of the answer) only when there are declared connectors to check for drift:
at the first poll after the connectors file is (re)loaded, then once every ``CONFIG_REFRESH`` seconds, so config
drift shows within ``CONFIG_REFRESH`` + one poll interval (state drift: every poll). With ``--scope worker`` the
snapshot keeps in full only what this pod judges (see snapshot.py). Restart requests are the only extra calls,
and only for connectors that have failed on this worker.
Probe handlers read ``Poller.view`` and never call Connect.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import declared as declared_mod
from . import ladder, model
from .client import ConnectClient, ConnectError, Reply
from .config import HealthSettings
from .snapshot import ParseError, Snapshot, parse_answer, parse_expanded

log = logging.getLogger("connect_health.poller")

CONFIG_REFRESH = 30.0  # seconds between fetches of connector configs (expand=info), when connectors are declared


@dataclass(frozen=True)
class View:
    """Everything the HTTP handlers, metrics and the status page show; replaced whole after each poll."""

    report: model.Report
    observation: model.Observation
    wall_time: float = 0.0
    polls: int = 0
    poll_seconds: float = 0.0
    rest_calls_last_poll: int = 0
    health_endpoint: str = "unknown"  # /health, or / on workers older than Kafka 3.9
    drift: tuple[tuple[str, str, str], ...] = ()
    restarts: dict[tuple[str, str], int] = field(default_factory=dict)
    stale: bool = False
    configs_age: float | None = None  # seconds since the declared connectors' configs were fetched (None: never)


class _Failure(Exception):
    pass


Observer = Callable[[View], None]


class Poller:
    """Polls Connect (``poll_once``, or ``start`` a thread doing it every interval) and publishes ``view``.

    ``observers`` are called with each new View, in the polling thread, after it is published (the metrics' poll
    duration histogram is one). ``restart=False`` never sends a restart from a poll (``check``); ``restart_failing``
    sends one rung on demand.
    """

    def __init__(self, client: ConnectClient, settings: HealthSettings, *, connectors_file: str | None = None,
                 restart: bool = True, clock: Callable[[], float] = time.monotonic,
                 observers: Iterable[Observer] = ()) -> None:
        self.client = client
        self.settings = settings
        self.restart_enabled = restart
        self.clock = clock
        self.observers = tuple(observers)
        self.connectors_file = connectors_file
        self._declared: dict[str, declared_mod.Declared] = {}
        self._declared_mtime: float | None = None
        self._declared_error: str | None = None
        self.health_endpoint = "unknown"
        self.legacy_restart = False
        self._started = False
        self._startup_detail = "no answer from the worker yet"
        self._unreachable_since: float | None = None
        self._snapshot: Snapshot | None = None
        self._configs: dict[str, dict[str, str]] = {}  # the declared connectors' configs, as last fetched
        self._configs_at: float | None = None
        self._configs_for: object = None  # the declarations they were fetched for
        self._transient: dict[model.Key, float] = {}
        self._rungs: dict[str, ladder.Rung] = {}
        self._restarts: Counter[tuple[str, str]] = Counter()
        self._polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = clock()
        first = model.Observation(now=now)
        self.view = View(report=model.evaluate(first, settings), observation=first, wall_time=time.time())

    # --- declarations ------------------------------------------------------------------------------------
    def _load_declared(self) -> None:
        if not self.connectors_file:
            return
        try:
            mtime = os.stat(self.connectors_file).st_mtime
        except OSError as exc:
            self._declared_error = f"connectors file {self.connectors_file}: {exc.strerror or exc}"
            return
        if mtime == self._declared_mtime:
            return
        try:
            self._declared = declared_mod.load(self.connectors_file)
            self._declared_error = None
            self._declared_mtime = mtime
            log.info("loaded %d declared connectors from %s", len(self._declared), self.connectors_file)
        except declared_mod.DeclarationError as exc:
            self._declared_error = str(exc)
            log.warning("%s", exc)

    # --- one poll ----------------------------------------------------------------------------------------
    def _startup_state(self) -> bool:
        """Ask /health (or /). True when the worker says it finished startup (or cannot say)."""
        if self.health_endpoint != "/":
            reply = self.client.health()
            if reply.status == 404:
                self.health_endpoint = "/"
                log.info("worker has no GET /health (Kafka < 3.9): falling back to GET /")
            else:
                self.health_endpoint = "/health"
                if reply.status == 200:
                    self._startup_detail = "startup complete"
                    return True
                detail = _health_detail(reply)
                if reply.status == 503:
                    self._startup_detail = detail
                    if self._started:
                        # The Connect container restarted under us (the kubelet re-runs the startup probe):
                        # its startup window belongs to /startupz again, not to the unresponsive budget.
                        log.warning("worker is starting again: %s", detail)
                        self._started = False
                    return False
                raise _Failure(f"GET /health answered {reply.status}: {detail}")
        reply = self.client.root()
        if not reply.ok:
            raise _Failure(f"GET / answered {reply.status}")
        return True

    def _fetch(self) -> Snapshot | None:
        if not self._startup_state():
            return None
        now = self.clock()
        info = bool(self._declared) and (self._configs_for is not self._declared or self._configs_at is None
                                         or now - self._configs_at >= CONFIG_REFRESH)
        reply = self.client.connectors_expanded(info=info, raw=True)
        if reply.status != 200:
            raise _Failure(f"GET /connectors answered {reply.status}: {reply.error_message()}")
        worker_id = self.settings.worker_id if self.settings.scope == "worker" else None
        keep = self._declared.keys()
        if isinstance(reply.body, bytes):
            snapshot = parse_answer(reply.body, worker_id=worker_id, keep=keep)
        else:
            snapshot = parse_expanded(reply.body, worker_id=worker_id, keep=keep)
        return self._with_configs(snapshot, now)

    def _with_configs(self, snapshot: Snapshot, now: float) -> Snapshot:
        """Remember the declared connectors' configs from an answer with them; lend them to answers without."""
        if snapshot.with_configs:
            self._configs = {n: c.config for n in self._declared
                             if (c := snapshot.connectors.get(n)) is not None and c.config is not None}
            self._configs_at, self._configs_for = now, self._declared
            return snapshot
        lent = {n: c if c.config is not None or n not in self._configs
                else dataclasses.replace(c, config=self._configs[n]) for n, c in snapshot.connectors.items()}
        return dataclasses.replace(snapshot, connectors=lent)

    def poll_once(self) -> View:
        start = self.clock()
        calls_before = self.client.calls
        self._load_declared()
        error: str | None = None
        snapshot: Snapshot | None = None
        try:
            snapshot = self._fetch()
        except (ConnectError, _Failure) as exc:
            error = str(exc)
        except ParseError as exc:
            error = f"unexpected answer from GET /connectors: {exc}"
        now = self.clock()
        reachable = error is None
        if reachable:
            self._unreachable_since = None
        elif self._unreachable_since is None:
            self._unreachable_since = now
        if snapshot is not None:
            if not self._started:
                log.info("worker startup complete")
            self._started = True
            self._snapshot = snapshot
            self._transient = model.track_transient(self._transient, snapshot, now)
            self._run_ladder(snapshot, now)
        drift = tuple(declared_mod.drift(self._declared, self._snapshot)) if reachable else ()
        drift_reasons = tuple(d[2] for d in drift)
        if self._declared_error:
            drift_reasons += (self._declared_error,)
        obs = model.Observation(
            now=now, started=self._started, startup_detail=self._startup_detail,
            reachable=reachable,
            unreachable_since=self._unreachable_since, error=error, snapshot=self._snapshot,
            transient_since=dict(self._transient), rungs=dict(self._rungs),
            declared_policies={n: d.policy for n, d in self._declared.items()}, drift=drift_reasons,
            restart_limits=self._restart_limits(),
        )
        report = model.evaluate(obs, self.settings)
        self._log_transitions(self.view.report, report)
        self._polls += 1
        view = View(report=report, observation=obs, wall_time=time.time(), polls=self._polls,
                    poll_seconds=self.clock() - start, rest_calls_last_poll=self.client.calls - calls_before,
                    health_endpoint=self.health_endpoint, drift=drift, restarts=dict(self._restarts),
                    stale=not reachable and self._snapshot is not None,
                    configs_age=None if self._configs_at is None else max(0.0, now - self._configs_at))
        self.view = view
        for observe in self.observers:
            observe(view)
        return view

    # --- the restart ladder ------------------------------------------------------------------------------
    def _run_ladder(self, snapshot: Snapshot, now: float) -> None:
        failing = model.failing_connectors(snapshot, self.settings)
        limits = self._restart_limits()
        rungs, todo = ladder.plan(self._rungs, failing, snapshot.connectors, now, self.settings, limits)
        for name in todo if self.restart_enabled else ():
            outcome = self._restart(snapshot, name)
            rungs[name] = ladder.record(rungs[name], outcome, self.clock(), self.settings)
            attempt = rungs[name].attempts
            log.warning("restart of connector %s: %s (attempt %d/%d)", name, outcome, attempt,
                        limits.get(name, self.settings.restart_attempts))
        for name, rung in rungs.items():
            if rung.exhausted and not self._rungs.get(name, ladder.Rung()).exhausted:
                log.error("connector %s still FAILED after the restart ladder (%d attempts)", name, rung.attempts)
        self._rungs = rungs

    def _restart_limits(self) -> dict[str, int]:
        return {n: d.restart_attempts for n, d in self._declared.items() if d.restart_attempts is not None}

    def restart_failing(self) -> list[tuple[str, str]]:
        """One rung of restarts now: every connector failing on this worker in the last snapshot gets one restart
        request, whatever its ladder says. Returns (connector, outcome) pairs; ``check --restart`` uses it."""
        snapshot = self._snapshot
        if snapshot is None:
            return []
        return [(name, self._restart(snapshot, name)) for name in model.failing_connectors(snapshot, self.settings)]

    def _restart(self, snapshot: Snapshot, name: str) -> str:
        """Send the restart of one connector; returns and counts its outcome (requested, conflict, error, gone)."""
        outcome = self._send_restart(snapshot, name)
        self._restarts[(name, outcome)] += 1
        return outcome

    def _send_restart(self, snapshot: Snapshot, name: str) -> str:
        try:
            if not self.legacy_restart:
                reply = self.client.restart_connector(name, include_tasks=True, only_failed=True)
                if reply.status == 202:
                    return "requested"
                if reply.status != 204:
                    return _restart_outcome(reply)
                # 204 to includeTasks=true: a worker older than Kafka 3.0 ignored KIP-745's parameters and
                # restarted only the connector object; restart its failed tasks one by one from now on.
                self.legacy_restart = True
                log.info("worker does not support KIP-745 restarts; using per-task restarts")
            conn = snapshot.connectors[name]
            outcome = "requested"
            if conn.state == "FAILED":
                reply = self.client.restart_connector(name, include_tasks=False, only_failed=False)
                outcome = "requested" if reply.ok else _restart_outcome(reply)
            for task in conn.tasks:
                if task.state == "FAILED" and model.is_local(task.worker_id, self.settings):
                    reply = self.client.restart_task(name, task.id)
                    if not reply.ok:
                        outcome = _restart_outcome(reply)
            return outcome
        except ConnectError as exc:
            log.warning("restart of connector %s failed: %s", name, exc)
            return "error"

    # --- logging -----------------------------------------------------------------------------------------
    def _log_transitions(self, old: model.Report, new: model.Report) -> None:
        for probe in ("livez", "readyz", "startupz"):
            was, now = getattr(old, probe), getattr(new, probe)
            if was.ok != now.ok and self._polls > 0:
                if now.ok:
                    log.info("%s: healthy again", probe)
                else:
                    log.warning("%s: unhealthy: %s", probe, "; ".join(now.reasons))

    # --- the thread --------------------------------------------------------------------------------------
    def run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the poller must outlive any bug in one poll
                log.exception("poll failed unexpectedly")
            self._stop.wait(interval)

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(target=self.run, args=(interval,), name="connect-health-poller",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _health_detail(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("status", "message") if isinstance(body.get(k), str)]
        if parts:
            return ": ".join(parts)[:300]
    return f"HTTP {reply.status}"


def _restart_outcome(reply: Reply) -> str:
    if reply.status == 409:
        return "conflict"
    if reply.status == 404:
        return "gone"
    return "error"
