"""The one background poller: asks Connect, runs the restart ladder, publishes an immutable View.

Per poll it makes a constant number of REST calls whatever the number of connectors:
``GET /health`` (or ``GET /`` on workers without it; and ``GET /`` after a ``/health`` that failed or answered
404, to tell a stuck herder from a dead worker and a starting worker from an old one) and
``GET /connectors?expand=status``, with ``&expand=info``
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
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import declared as declared_mod
from . import ladder, lifecycle, model, progress, statefile
from .aliases import AliasCheck
from .client import AnswerTooLarge, ConnectClient, ConnectError, Reply, SidecarError, Unreachable
from .config import HealthSettings
from .history import RestartHistory
from .lane import RestartLane
from .redact import redact
from .snapshot import AnswerParser, ParseError, Snapshot, parse_expanded

log = logging.getLogger("connect_health.poller")

CONFIG_REFRESH = 30.0  # seconds between fetches of connector configs (expand=info), when connectors are declared
# Kafka < 3.9's stand-in for GET /health: DistributedHerder.connectorInfo answers it on the herder's own thread (a 404
# for a name that is no connector; the connector's info if one has it), GET / and GET /connectors never go there.
HERDER_PROBE = "/connectors/connect-health-herder-probe"


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
    last_restarts: dict[str, tuple[tuple[float, str, str, str], ...]] = field(default_factory=dict)  # (wall, kind,
    # what, class)
    restart_units: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)  # history.UnitKey -> n
    incarnation: int = 0  # new Connect incarnations seen since the sidecar started (lifecycle.py)
    incarnation_reason: str | None = None
    reconcile: Mapping[str, Any] | None = None  # drift correction's state (reconcile.py); None: off


class _Failure(Exception):
    pass


class _HerderStuck(Exception):
    """GET /health failed (timeout, 500) but GET / answered: the worker's process is alive, its herder is busy or
    stuck (a broker outage): a readiness failure on its own, much longer liveness budget (--herder-stuck-after)."""


class _AuthFailure(Exception):
    """Connect refused the sidecar's credentials (401/403): the sidecar's problem, never Connect's liveness."""


class _Rebalancing(Exception):
    """GET /connectors answered 409: a rebalance is under way, the last answer still stands for a while."""


Observer = Callable[[View], None]


class Poller:
    """Polls Connect (``poll_once``, or ``start`` a thread doing it every interval) and publishes ``view``.

    ``observers`` are called with each new View, in the polling thread, after it is published (the metrics' poll
    duration histogram is one). ``restart=False`` never sends a restart from a poll (``check``); ``restart_failing``
    sends one rung on demand.
    """

    def __init__(self, client: ConnectClient, settings: HealthSettings, *, connectors_file: str | None = None,
                 restart: bool = True, clock: Callable[[], float] = time.monotonic,
                 observers: Iterable[Observer] = (), state_file: str | None = None) -> None:
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
        self.life = lifecycle.Lifecycle()  # incarnation, startup window, timers, pod-restart memory (lifecycle.py)
        self._snapshot: Snapshot | None = None
        self._limits: tuple[Snapshot | None, object, dict[str, int]] | None = None  # _restart_limits' last
        self._parser = AnswerParser()  # the last answer's Snapshot, for an answer that did not change
        self._configs: dict[str, dict[str, str]] = {}  # the declared connectors' configs, as last fetched
        self._configs_at: float | None = None
        self._configs_for: object = None  # the declarations they were fetched for
        self._transient: dict[model.Key, float] = {}
        self._rungs: dict[str, ladder.Rung] = {}
        self.history = RestartHistory()  # restarts sent and seen, per connector (history.py)
        self._sent_units: dict[str, list[tuple[str, str]]] = {}  # (task, class) of what each pending restart restarts
        self.lane = RestartLane(client, settings, clock)  # unthreaded until start()
        self.progress = progress.Watch(settings.worker_metrics_url, settings.stall_after,
                                       client.settings.request_timeout)  # stalled tasks (progress.py)
        self.reconcile_status: Callable[[], Mapping[str, Any]] | None = None  # set by reconcile.Reconciler.attach
        self._polls = 0
        self._poll_started: float | None = None
        self.state_file = state_file
        self._saved: object = None  # what the state file holds, to write it only when that changes
        if state_file:
            self._remember(statefile.read(state_file, settings.worker_id, mono=clock(), wall=time.time()))
        self.aliases = AliasCheck(settings)  # --worker-id written another way than Connect's (aliases.py)
        self._overdue: tuple[View, float, View] | None = None
        self.poll_budget = 3 * client.settings.request_timeout  # a poll running longer is a worker not answering
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = clock()
        first = model.Observation(now=now)
        self._view = View(report=model.evaluate(first, settings), observation=first, wall_time=time.time())

    @property
    def view(self) -> View:
        """The latest View; while a poll runs past ``poll_budget`` (a worker trickling its answer, a hung call)
        a View judging Connect as not answering since that poll began, so no verdict outlives its poll's deadline."""
        view, started = self._view, self._poll_started
        if started is None:
            return view
        now = self.clock()
        if now - started <= self.poll_budget:
            return view
        cached = self._overdue
        if cached is not None and cached[0] is view and now - cached[1] < 0.5:
            return cached[2]
        since = view.observation.unreachable_since
        obs = dataclasses.replace(
            view.observation, now=now, reachable=False,
            unreachable_since=started if since is None else min(since, started), herder_stuck=False,
            error=f"poll not finished after {now - started:.0f}s (deadline {self.poll_budget:g}s): "
                  "Connect answers too slowly")
        overdue = dataclasses.replace(view, report=model.evaluate(obs, self.settings), observation=obs, stale=True)
        self._overdue = (view, now, overdue)
        return overdue

    @view.setter
    def view(self, value: View) -> None:
        self._view = value

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
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the poll goes on judging
            self._declared_error = f"connectors file {self.connectors_file}: {type(exc).__name__}: {exc}"[:300]
            log.warning("%s", self._declared_error)

    # --- one poll ----------------------------------------------------------------------------------------
    def _startup_state(self) -> bool:
        """Ask /health (or, on Kafka < 3.9, / then HERDER_PROBE). True when the worker says it finished startup
        (or cannot say); _HerderStuck when the herder does not answer while GET / does."""
        if self.health_endpoint != "/":
            try:
                reply = self.client.health()
            except Unreachable:
                raise
            except ConnectError as exc:
                self._herder_check(str(exc))
                raise
            self._answered()
            if reply.status in (401, 403):
                raise _AuthFailure(f"GET /health answered {reply.status}: {reply.error_message()}")
            if reply.status == 404:
                # A worker of Kafka >= 3.9 answers 404 while its REST resources are being registered: "no
                # /health" is decided from the version GET / reports, never from one 404.
                root = self.client.root()
                if root.status in (401, 403):
                    raise _AuthFailure(f"GET / answered {root.status}: {root.error_message()}")
                if not root.ok:
                    raise _Failure(f"GET /health answered 404 and GET / answered {root.status}")
                version = root.body.get("version") if isinstance(root.body, dict) else None
                kafka = kafka_version(version) if isinstance(version, str) else None
                if kafka is not None and kafka >= (3, 9):
                    self.health_endpoint = "/health"
                    detail = f"GET /health answered 404 on Kafka {version}: its REST resources are not registered yet"
                    self._live(lifecycle.starting_again(self.life, self.clock(), detail))
                    return False
                self.health_endpoint = "/"
                log.info("worker has no GET /health (Kafka %s < 3.9): using GET / and GET %s",
                         version or "of unknown version", HERDER_PROBE)
                reply = root
            else:
                self.health_endpoint = "/health"
                if reply.status == 200:
                    return True
                detail = _health_detail(reply)
                if reply.status == 503:
                    self._live(lifecycle.starting_again(self.life, self.clock(), detail))
                    return False
                self._herder_check(f"GET /health answered {reply.status}: {detail}")
                raise _Failure(f"GET /health answered {reply.status}: {detail}")
        else:
            reply = self.client.root()
            self._answered()
        self._judge_root(reply)
        # No GET /health (Kafka < 3.9), and GET /connectors?expand=status reads the backing stores, never the herder:
        # HERDER_PROBE is the one call per poll that waits for the herder's thread. Any answer from it (404, 200,
        # 409 for a rebalance) is the herder answering; a timeout or 5xx while GET / answered is the herder stuck.
        try:
            probe = self.client.request("GET", HERDER_PROBE, raw=True)
        except (Unreachable, SidecarError):  # not the herder's: the caller judges them
            raise
        except ConnectError as exc:
            raise _HerderStuck(f"{exc}; GET / answers: the worker is alive, its herder busy or stuck") from None
        if probe.status in (401, 403):
            raise _AuthFailure(f"GET {HERDER_PROBE} answered {probe.status}: {probe.error_message()}")
        if probe.status >= 500:
            raise _HerderStuck(f"GET {HERDER_PROBE} answered {probe.status}: {probe.error_message()}; GET / "
                               "answers: the worker is alive, its herder busy or stuck")
        return True

    def _herder_check(self, why: str) -> None:
        """After GET /health failed: raise _HerderStuck when GET / (not behind the herder) answers; return when
        it does not either (the caller raises the original failure: nothing answers)."""
        try:
            root = self.client.root()
        except ConnectError:
            return
        self._answered()
        if root.ok:
            raise _HerderStuck(f"{why}; GET / answers: the worker is alive, its herder busy or stuck")

    def _judge_root(self, reply: Reply) -> bool:
        if reply.status in (401, 403):
            raise _AuthFailure(f"GET / answered {reply.status}: {reply.error_message()}")
        if not reply.ok:
            raise _Failure(f"GET / answered {reply.status}")
        if isinstance(reply.body, dict):
            self._live(lifecycle.root_seen(self.life, (reply.body.get("version"), reply.body.get("commit")),
                                           self.clock()))
        return True

    def _answered(self) -> None:
        self._live(lifecycle.answered(self.life, self.clock()))

    def _live(self, life: lifecycle.Lifecycle) -> None:
        """Take the lifecycle's next state; a new incarnation forgets everything judged of the previous worker."""
        if life.incarnation != self.life.incarnation:
            log.warning("new Connect worker incarnation (%s): new startup window, restart ladder and timers",
                        life.incarnation_reason)
            for name in self.life.blamed:
                self.history.note(name, time.time(), "pod", "Connect restarted while liveness failed for it",
                                  self._view.report.classes.get(name, "unknown"))
            self._snapshot = None
            self._transient = {}
            self._rungs = {}
            self.progress.reset()
        self.life = life

    def _fetch(self) -> Snapshot | None:
        if not self._startup_state():
            return None
        now = self.clock()
        info = bool(self._declared) and (self._configs_for is not self._declared or self._configs_at is None
                                         or now - self._configs_at >= CONFIG_REFRESH)
        info = info or self.progress.wants_configs(now, CONFIG_REFRESH)  # Debezium sources' topic.prefix
        # GET /connectors?expand=status never goes through the herder (3.x and 4.x read the backing stores): its
        # failures are the REST API's, the herder is judged by GET /health or HERDER_PROBE just before.
        reply = self.client.connectors_expanded(info=info, raw=True)
        if reply.status in (401, 403):
            raise _AuthFailure(f"GET /connectors answered {reply.status}: {reply.error_message()}")
        if reply.status == 409:
            raise _Rebalancing(f"GET /connectors answered 409: {reply.error_message()}")
        if reply.status != 200:
            raise _Failure(f"GET /connectors answered {reply.status}: {reply.error_message()}")
        worker_id = self.settings.worker_id if self.settings.scope == "worker" else None
        keep = self._declared.keys() | self.progress.configs_of if info else self._declared.keys()
        if isinstance(reply.body, bytes):
            snapshot = self._parser.parse(reply.body, worker_id=worker_id, keep=keep)
        else:
            snapshot = parse_expanded(reply.body, worker_id=worker_id, keep=keep)
        return self._with_configs(snapshot, now)

    def refresh_configs(self) -> None:
        """Fetch the configs at the next poll (after a correction wrote one: reconcile.py)."""
        self._configs_at = None

    def _with_configs(self, snapshot: Snapshot, now: float) -> Snapshot:
        """Remember the declared connectors' configs from an answer with them; lend them to answers without."""
        if snapshot.with_configs:
            self.progress.learn({n: c.config for n, c in snapshot.connectors.items()}, now)
            self._configs = {n: c.config for n in self._declared
                             if (c := snapshot.connectors.get(n)) is not None and c.config is not None}
            self._configs_at, self._configs_for = now, self._declared
            return snapshot
        lent = {n: c if c.config is not None or n not in self._configs
                else dataclasses.replace(c, config=self._configs[n]) for n, c in snapshot.connectors.items()}
        return dataclasses.replace(snapshot, connectors=lent)

    def poll_once(self) -> View:
        """One poll, always ending in a published View: an unexpected error is judged, never swallowed."""
        start = self.clock()
        self._poll_started = start
        try:
            return self._poll(start)
        except Exception as exc:  # a bug in the sidecar: the View says so; the poller goes on
            log.exception("poll failed unexpectedly")
            return self._publish_error(start, f"unexpected error in a poll: {type(exc).__name__}: {exc}")
        finally:
            self._poll_started = None

    def _publish_error(self, start: float, error: str) -> View:
        old = self._view
        obs = dataclasses.replace(old.observation, now=self.clock(), sidecar_error=redact(error)[:300])
        self._polls += 1
        view = dataclasses.replace(old, report=model.evaluate(obs, self.settings), observation=obs,
                                   wall_time=time.time(), polls=self._polls, poll_seconds=self.clock() - start,
                                   stale=True)
        self.view = view
        for observe in self.observers:
            try:
                observe(view)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the poller
                log.exception("poll observer failed")
        return view

    def _poll(self, start: float) -> View:
        calls_before = self.client.calls
        self._load_declared()
        error: str | None = None
        sidecar_error: str | None = None
        notes: tuple[str, ...] = ()
        snapshot: Snapshot | None = None
        herder_stuck = False
        try:
            snapshot = self._fetch()
            self.life = lifecycle.not_rebalancing(self.life)
        except _AuthFailure as exc:
            detail = f"; and {self.client.credentials_error}" if self.client.credentials_error else ""
            sidecar_error = f"Connect refused the sidecar's credentials ({exc}){detail}"
            if not self.life.started:
                self.life = dataclasses.replace(
                    self.life, startup_detail="not known: Connect refused the sidecar's credentials")
        except _Rebalancing as exc:
            self.life, since = lifecycle.rebalancing(self.life, start)
            if start - since < self.settings.unresponsive_after:
                notes = (f"rebalance in progress for {start - since:.0f}s ({exc}): verdicts from the last answer",)
            else:
                error = f"{exc}, for {start - since:.0f}s"
                was = self.life.unreachable_since
                self.life = dataclasses.replace(self.life, unreachable_since=since if was is None else min(was, since))
        except _HerderStuck as exc:
            error = str(exc)
            herder_stuck = True
        except Unreachable as exc:
            error = str(exc)
            self.life = lifecycle.refused(self.life)
        except (SidecarError, AnswerTooLarge) as exc:
            # The call could not be made (DNS, file descriptors) or Connect answered more than the sidecar keeps:
            # the sidecar's problem. Readiness names it; liveness, the ladder and the restart memory are untouched.
            sidecar_error = str(exc)
        except (ConnectError, _Failure) as exc:
            error = str(exc)
        except ParseError as exc:
            error = f"unexpected answer from GET /connectors: {exc}"
        except Exception as exc:  # a bug while reading the answer: the sidecar's problem, judged as such
            log.exception("poll failed unexpectedly")
            sidecar_error = f"unexpected error in a poll: {type(exc).__name__}: {exc}"
        now = self.clock()
        reachable = error is None
        if snapshot is not None and not self.life.started:
            log.info("worker startup complete")
        self.life = lifecycle.polled(self.life, start, reachable=reachable, herder_stuck=herder_stuck,
                                     started=snapshot is not None, error=error)
        life = self.life
        if snapshot is not None:
            notes += self.aliases.notes(snapshot, start)
            self._snapshot = snapshot
            self._transient = model.track_transient(self._transient, snapshot, now)
            self._poll_started = None  # the status calls are done: a slow metrics scrape is not Connect's REST
            self.progress.observe(progress.running_here(snapshot, self.settings), now)
            self._run_ladder(snapshot, now)
            self.history.forget_gone(snapshot.connectors.keys(), now)
        drift = tuple(declared_mod.drift(self._declared, self._snapshot)) if reachable else ()
        drift_reasons = tuple(d[2] for d in drift)
        if self._declared_error:
            drift_reasons += (self._declared_error,)
        life = self.life = lifecycle.note_fixed(self.life, now, self._rungs, self.settings.pod_restart_window,
                                                self.settings.restart_reset)
        obs = model.Observation(
            now=now, started=life.started, startup_detail=life.startup_detail,
            reachable=reachable,
            unreachable_since=life.unreachable_since, error=error, snapshot=self._snapshot,
            herder_stuck=herder_stuck, herder_stuck_since=life.stuck_since,
            transient_since=dict(self._transient), rungs=dict(self._rungs),
            declared_policies={n: d.policy for n, d in self._declared.items()}, drift=drift_reasons,
            restart_limits=self._restart_limits(), down=life.down,
            sidecar_error=redact(sidecar_error)[:300] if sidecar_error else None, notes=notes,
            pod_restarts=dict(life.pod_restarts), restart_fixed=life.restart_fixed,
            stalled=dict(self.progress.stalled), stall_note=self.progress.note, stall_detection=self.progress.working,
        )
        report = model.evaluate(obs, self.settings)
        if not life.down and sidecar_error is None:
            self.life = lifecycle.blame(life, report.live_failed)
        self._save(report.classes)
        self._log_transitions(self.view.report, report)
        self._polls += 1
        view = View(report=report, observation=obs, wall_time=time.time(), polls=self._polls,
                    poll_seconds=self.clock() - start, rest_calls_last_poll=self.client.calls - calls_before,
                    health_endpoint=self.health_endpoint, drift=drift, restarts=dict(self.history.counts),
                    stale=(not reachable or sidecar_error is not None or bool(notes)) and self._snapshot is not None,
                    configs_age=None if self._configs_at is None else max(0.0, now - self._configs_at),
                    last_restarts=dict(self.history.last), incarnation=self.life.incarnation,
                    restart_units=dict(self.history.units),
                    incarnation_reason=self.life.incarnation_reason,
                    reconcile=self.reconcile_status() if self.reconcile_status else None)
        self.view = view
        for observe in self.observers:
            observe(view)
        return view

    # --- the restart ladder ------------------------------------------------------------------------------
    def _run_ladder(self, snapshot: Snapshot, now: float) -> None:
        """Advance the ladder and hand the restarts due to the lane (lane.py): outside the poll's deadline."""
        self._take_outcomes()
        failing = [*model.failing_connectors(snapshot, self.settings), *self.progress.tasks()]
        before = self._rungs
        self._rungs, todo = ladder.plan(before, failing, snapshot.connectors, now, self.settings,
                                        self._restart_limits(), pending=self.lane.pending)
        if self.restart_enabled and todo:
            self._poll_started = None  # the status calls are done: restarts never count as Connect answering slowly
            stalled = self.progress.tasks()
            for name in self.lane.submit([snapshot.connectors[n] for n in todo], self.life.incarnation, stalled):
                self._sent_units[name] = (model.failed_units(snapshot, name, self.settings)  # as FAILED when sent
                                          + [(str(t), "stalled") for t in stalled.get(name, ())])
            self._take_outcomes()  # an unthreaded lane has answered already
        for name, rung in self._rungs.items():
            if rung.exhausted and not before.get(name, ladder.Rung()).exhausted:
                log.error("connector %s still FAILED after the restart ladder (%d attempts)", name, rung.attempts)

    def _take_outcomes(self) -> None:
        """Count the lane's answers; each is an attempt on the ladder of the worker it was sent to, if it still is."""
        limits = self._restart_limits()
        for done in self.lane.drain():
            self.history.sent(done.connector, done.outcome, time.time() - (self.clock() - done.at),
                              self._sent_units.pop(done.connector, []))
            rung = self._rungs.get(done.connector)
            if done.incarnation != self.life.incarnation or rung is None:
                continue
            rung = self._rungs[done.connector] = ladder.record(rung, done.outcome, done.at, self.settings)
            log.warning("restart of connector %s: %s (attempt %d/%d)", done.connector, done.outcome, rung.attempts,
                        limits.get(done.connector, self.settings.restart_attempts))

    # --- memory across the sidecar's restarts (statefile.py) ---------------------------------------------
    def _remember(self, memory: statefile.Memory) -> None:
        """Start from a state file's memory. Connectors blamed when the previous process ended cost a pod restart
        each (with sharedFate the kubelet restarted this sidecar with Connect); then the ladder starts over, as for
        any new worker, else the attempts carry on."""
        now = self.clock()
        pods = dict(memory.pod_restarts)
        fixed = set(memory.restart_fixed)
        self.history = RestartHistory(memory.last_restarts, memory.restart_counts)
        for name in memory.killed_for:
            pods[name] = (*pods.get(name, ()), now)
            fixed.discard(name)
            self.history.note(name, time.time(), "pod", "the pod's containers restarted while liveness failed for it",
                              memory.classes.get(name, "unknown"))
        self.life = dataclasses.replace(self.life, pod_restarts=pods, restart_fixed=frozenset(fixed))
        self._rungs = {} if memory.killed_for else dict(memory.rungs)
        if pods or self._rungs or self.history.last:
            log.info("state file %s: %d pod restarts, %d ladders and the last restarts of %d connectors remembered",
                     self.state_file, sum(len(t) for t in pods.values()), len(self._rungs), len(self.history.last))

    def _save(self, classes: Mapping[str, str] | None = None) -> None:
        if not self.state_file:
            return
        life = self.life
        key = (life.pod_restarts, life.restart_fixed, life.blamed, dict(self.history.last), dict(self.history.units),
               {n: (r.attempts, r.next_at) for n, r in self._rungs.items() if r.attempts})
        if key == self._saved:
            return
        try:
            statefile.write(self.state_file, statefile.document(
                self.settings.worker_id, life, self._rungs, self.history.last, mono=self.clock(), wall=time.time(),
                counts=self.history.units, classes=classes))
        except OSError as exc:
            if self._saved != "failed":
                log.warning("state file %s not written (%s): the memory of restarts will not outlive this process",
                            self.state_file, exc.strerror or exc)
            self._saved = "failed"
            return
        self._saved = key

    def _restart_limits(self) -> dict[str, int]:
        """Declared restartAttempts, capped at one for failures a retry cannot fix (model.class_limits); worked out
        once per snapshot and declarations (a poll asks three times)."""
        key = (self._snapshot, self._declared)
        if self._limits is not None and self._limits[0] is key[0] and self._limits[1] is key[1]:
            return self._limits[2]
        declared = {n: d.restart_attempts for n, d in self._declared.items() if d.restart_attempts is not None}
        snapshot = self._snapshot
        limits = declared if snapshot is None else model.class_limits(
            declared, model.connector_classes(snapshot, self.settings), self.settings)
        self._limits = (snapshot, self._declared, limits)
        return limits

    def restart_failing(self) -> list[tuple[str, str]]:
        """One rung of restarts now: every connector failing on this worker in the last snapshot gets one restart
        request, whatever its ladder says. Returns (connector, outcome) pairs; ``check --restart`` uses it."""
        snapshot = self._snapshot
        if snapshot is None:
            return []
        out = []
        for name in model.failing_connectors(snapshot, self.settings):
            outcome = self.lane.send(snapshot.connectors[name])
            self.history.sent(name, outcome, time.time(), model.failed_units(snapshot, name, self.settings))
            out.append((name, outcome))
        return out

    # --- logging -----------------------------------------------------------------------------------------
    def _log_transitions(self, old: model.Report, new: model.Report) -> None:
        """A line when a probe turns unhealthy or healthy again, and when an unhealthy probe's reasons change kind
        (e.g. a restarting worker that now refuses the sidecar's password): counters and durations in a reason
        change every poll, so reasons are compared with their numbers blanked."""
        for probe in ("livez", "readyz", "startupz"):
            was, now = getattr(old, probe), getattr(new, probe)
            if self._polls == 0:
                continue
            if was.ok != now.ok:
                if now.ok:
                    log.info("%s: healthy again", probe)
                else:
                    log.warning("%s: unhealthy: %s", probe, "; ".join(now.reasons))
            elif not now.ok and _reason_kinds(was.reasons) != _reason_kinds(now.reasons):
                log.warning("%s: still unhealthy, now: %s", probe, "; ".join(now.reasons))

    # --- the thread --------------------------------------------------------------------------------------
    def run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.poll_once()  # never raises: an error is published in the View
            self._stop.wait(interval)

    def start(self, interval: float) -> None:
        self.lane = RestartLane(ConnectClient(self.client.settings), self.settings, self.clock, threaded=True)
        self._thread = threading.Thread(target=self.run, args=(interval,), name="connect-health-poller",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.lane.close()


def kafka_version(version: str) -> tuple[int, int] | None:
    """(major, minor) of the Kafka release a worker's ``GET /`` version names; None when it names none.
    Confluent Platform's (``7.9.0-ccs``, ``8.0.0-ce``) are mapped to the Kafka they ship (versions.py)."""
    from .versions import kafka_version as read

    return read(version)


def _health_detail(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("status", "message") if isinstance(body.get(k), str)]
        if parts:
            return redact(": ".join(parts))[:300]
    return f"HTTP {reply.status}"


def _reason_kinds(reasons: tuple[str, ...]) -> set[str]:
    return {re.sub(r"\d+(\.\d+)?", "#", r) for r in reasons}
