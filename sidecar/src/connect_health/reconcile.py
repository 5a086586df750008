"""Drift correction (``serve --reconcile``): re-apply a declared connector the worker no longer holds as declared.

The poller computes the drift of every poll against the mounted declarations (``declared.drift``, in ``View.drift``:
a connector missing, its config different, or its state not the declared one). The ``Reconciler`` observes each View:

- ``plan`` (pure) keeps one ``Track`` per drifting connector and says which are due: a drift is corrected once two
  polls at least have seen it AND it has lasted ``after`` seconds (``--reconcile-after``, 90 s by default: longer
  than the kubelet takes to update a mounted ConfigMap, so an apply Job writing a new revision is never reverted by a
  pod still holding the old file; a human's change mid-way, config then resume, is never raced either). At most
  ``per_poll`` connectors per poll, the longest drifting first.
- nothing is planned while the worker is starting, not answering, rebalancing (a View judged from an older answer),
  or the sidecar cannot judge it; nor by a pod that does not hold the Lease (lease.py): one writer at a time.
- a connector corrected again within ``FIGHT_WINDOW`` of its last correction (someone or something fighting it)
  waits longer each time: ``after`` + 60 s, 120 s, ... up to an hour, and /status says so. A refused correction (an
  invalid declaration, Connect answering 409 past the deadline) backs off the same way.
- the corrections run on the Reconciler's own thread over its own ConnectClient (like the restart lane, lane.py): a
  slow write never delays a poll or a probe. Each one is ``apply.apply`` for that one connector from the file as it
  is then (re-read: never from a file that no longer parses), with a retry deadline of 3 request timeouts.
- every correction that wrote something is one log line, one ``ConnectorReconciled`` Event naming the connector
  and what was restored, and one count in ``connect_health_reconcile_corrections_total``; the poller then fetches
  the configs again at its next poll (``Poller.refresh_configs``) so the correction is judged on fresh configs.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import apply as apply_mod
from . import declared as declared_mod
from . import kubeapi
from .client import ConnectClient, ConnectError
from .config import ServeSettings, UsageError
from .events import Emit
from .lease import Elector, LeaseApi
from .poller import Poller, View
from .redact import redact

log = logging.getLogger("connect_health.reconcile")

PER_POLL = 5  # corrections handed over per poll (and waiting at most)
FIGHT_WINDOW = 600.0  # a drift coming back within this many seconds of its correction is someone fighting it
FIGHT_BACKOFF = 60.0  # the extra wait after the first fight, doubling with each further one
FIGHT_MAX = 3600.0
RECHECK = 15.0  # seconds after a correction before the same connector is corrected again (status lag)
DONE = re.compile(r"^(created|updated|paused|resumed|stopped) ")


@dataclass(frozen=True)
class Rules:
    after: float = 90.0
    per_poll: int = PER_POLL
    fight_window: float = FIGHT_WINDOW
    fight_backoff: float = FIGHT_BACKOFF
    fight_max: float = FIGHT_MAX
    recheck: float = RECHECK


@dataclass(frozen=True)
class Track:
    """One declared connector's drift and corrections."""

    since: float | None = None  # when the current drift was first seen (None: as declared at the last poll)
    polls: int = 0  # polls in a row that saw it
    details: tuple[str, ...] = ()  # what differs (declared.drift's details), as last seen
    corrected_at: float | None = None
    tried_at: float | None = None  # the last correction attempted, whatever came of it
    corrections: int = 0  # corrections that wrote something, in all
    fights: int = 0  # corrections (or refusals) in a row, each within fight_window of the one before
    error: str | None = None  # why the last correction was refused


def wait_for(track: Track, rules: Rules) -> float:
    """Seconds a drift must last before it is corrected: ``after``, longer for a connector someone fights."""
    if track.fights == 0:
        return rules.after
    return min(rules.after + rules.fight_backoff * 2.0 ** (track.fights - 1), max(rules.fight_max, rules.after))


NOT_LEADER = "another pod holds the lease"


def gate(view: View, leads: bool) -> str | None:
    """Why no correction may start now, or None."""
    obs = view.observation
    if not obs.reachable:
        return "the worker does not answer"
    if not obs.started:
        return "the worker is starting"
    if obs.sidecar_error:
        return "the sidecar cannot judge the worker"
    if view.stale:
        return "the last answer is not fresh (a rebalance in progress?)"
    if not leads:
        return NOT_LEADER
    return None


def plan(tracks: Mapping[str, Track], drift: Iterable[tuple[str, str, str]], now: float, rules: Rules, *,
         blocked: str | None, busy: frozenset[str] = frozenset()) -> tuple[dict[str, Track], list[str]]:
    """The tracks after a poll that saw ``drift``, and the connectors due for a correction (none when ``blocked``
    names why; a View of a worker not answering says nothing about drift, so it leaves the tracks as they were)."""
    if blocked is not None and blocked != NOT_LEADER:
        return dict(tracks), []
    seen: dict[str, list[str]] = {}
    for name, _kind, detail in drift:
        seen.setdefault(name, []).append(detail)
    out: dict[str, Track] = {}
    for name in sorted(set(tracks) | set(seen)):
        track = tracks.get(name, Track())
        if name in seen:
            track = replace(track, since=now if track.since is None else track.since, polls=track.polls + 1,
                            details=tuple(seen[name]))
        else:
            track = replace(track, since=None, polls=0, details=())
            quiet = track.corrected_at is None or now - track.corrected_at > rules.fight_window
            if quiet and track.error is None:
                continue  # as declared, and no fight to remember
        out[name] = track
    if blocked is not None:
        return out, []
    due = [n for n, t in out.items() if t.since is not None and t.polls >= 2 and n not in busy
           and now - t.since >= wait_for(t, rules)
           and (t.tried_at is None or now - t.tried_at >= rules.recheck)]
    due.sort(key=lambda n: (out[n].since or 0.0, n))
    room = max(0, rules.per_poll - len(busy))
    return out, due[:room]


def record(track: Track, now: float, rules: Rules, *, wrote: bool, error: str | None) -> Track:
    """A correction's outcome: ``wrote`` (it restored something), nothing to write, or ``error`` (refused). A drift
    still there must then be seen again from the start: a refusal backs off like a fight; nothing to write (the drift
    was seen on configs older than the worker's, or cannot be corrected: a connector declared stopped on a worker
    without STOPPED stays paused) waits ``after`` again, so an uncorrectable drift costs one attempt per ``after``."""
    fought = track.corrected_at is not None and now - track.corrected_at <= rules.fight_window
    tried = replace(track, tried_at=now)
    if error is not None:
        return replace(tried, since=now, polls=1, fights=track.fights + 1, error=error)
    if not wrote:
        return replace(tried, since=now, polls=1, error=None)
    return replace(tried, since=None, polls=0, details=(), corrected_at=now, corrections=track.corrections + 1,
                   fights=track.fights + 1 if fought else 0, error=None)


@dataclass(frozen=True)
class Outcome:
    connector: str
    wrote: bool
    done: tuple[str, ...]  # apply's lines saying what it wrote ("updated x", "resumed x")
    error: str | None = None


def correct(client: ConnectClient, name: str, declared: Mapping[str, declared_mod.Declared], budget: float,
            clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Apply one declared connector (``apply.apply``: write its config if it differs, set its declared state),
    retrying "not now" answers for ``budget`` seconds. Never raises. Its offsets action, a one-shot request, is the
    apply Job's: drift correction restores configs and states only."""
    if name not in declared:
        return Outcome(name, False, ())
    lines: list[str] = []
    try:
        result = apply_mod.apply(client, {name: replace(declared[name], offsets=None)}, out=lines.append,
                                 retrier=apply_mod.Retrier(clock() + budget, lines.append, clock=clock))
    except ConnectError as exc:
        return Outcome(name, False, (), redact(str(exc))[:300])
    done = tuple(line for line in lines if DONE.match(line))
    if result.refused:
        return Outcome(name, bool(done), done, redact("; ".join(result.refused))[:300])
    return Outcome(name, result.writes > 0, done)


class Reconciler:
    """A poller observer: plans at each View, corrects on its own thread (``threaded``; else in the caller's)."""

    def __init__(self, client: ConnectClient, connectors_file: str, emit: Emit, rules: Rules, *,
                 elector: Elector | None = None, clock: Callable[[], float] = time.monotonic,
                 threaded: bool = False) -> None:
        self.client = client
        self.connectors_file = connectors_file
        self.emit = emit
        self.rules = rules
        self.elector = elector
        self.clock = clock
        self.budget = 3 * client.settings.request_timeout
        self.poller: Poller | None = None
        self.blocked: str | None = "no poll yet"
        # Whether this pod may hold the Lease: its worker answers and has started (one bad poll, a rebalance, is no
        # reason to hand the Lease over: only a worker unable for a whole lease duration is).
        self.able = False
        self._unable_since: float | None = None
        if elector is not None:
            elector.eligible = lambda: self.able
        self._tracks: dict[str, Track] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] | None = queue.Queue() if threaded else None
        self._thread: threading.Thread | None = None

    def attach(self, poller: Poller) -> None:
        """Observe ``poller`` and show in its Views (/status, /metrics)."""
        self.poller = poller
        poller.reconcile_status = self.status

    def leads(self) -> bool:
        return self.elector is None or self.elector.leads()

    def __call__(self, view: View) -> None:
        """Plan at a new View (in the polling thread: quick, and never raising into the poll)."""
        try:
            now = self.clock()
            blocked = gate(view, self.leads())
            self._note_able(view, now)
            with self._lock:
                self.blocked = blocked
                self._tracks, todo = plan(self._tracks, view.drift, now, self.rules, blocked=blocked,
                                          busy=frozenset(self._busy))
                self._busy.update(todo)
        except Exception:  # a bug: logged; the poll and its View are not the reconciler's to spoil
            log.exception("drift correction's plan failed")
            return
        for name in todo:
            if self._queue is not None:
                self._queue.put(name)
            else:
                self._run_one(name)

    def _note_able(self, view: View, now: float) -> None:
        obs = view.observation
        was = self.able
        if obs.reachable and obs.started and not obs.sidecar_error:
            self.able, self._unable_since = True, None
        else:
            if self._unable_since is None:
                self._unable_since = now
            patience = self.elector.duration if self.elector is not None else 0.0
            self.able = self.able and now - self._unable_since < patience
        if self.able != was and self.elector is not None:
            self.elector.nudge()  # take the Lease (or hand it back) now, not at the next round

    def _run_one(self, name: str) -> None:
        try:
            if not self.leads():  # the lease lapsed since the poll that planned it
                outcome = Outcome(name, False, ())
            else:
                try:
                    declared = declared_mod.load(self.connectors_file)
                except declared_mod.DeclarationError as exc:  # never correct from a file that does not parse
                    outcome = Outcome(name, False, (), f"the connectors file cannot be read: {exc}"[:300])
                else:
                    outcome = correct(self.client, name, declared, self.budget, self.clock)
            self._finish(outcome)
        except Exception:  # a bug: logged, never the end of the thread
            log.exception("correction of connector %s failed unexpectedly", name)
        finally:
            with self._lock:
                self._busy.discard(name)

    def _finish(self, outcome: Outcome) -> None:
        name = outcome.connector
        with self._lock:
            track = self._tracks.get(name, Track())
            restored = "; ".join(track.details) or "drift"
            new = self._tracks[name] = record(track, self.clock(), self.rules, wrote=outcome.wrote,
                                              error=outcome.error)
        if outcome.wrote:
            what = ", ".join(outcome.done) or "re-applied"
            log.warning("reconciled connector %s from its declaration (%s): %s", name, restored, what)
            self.emit("Normal", "ConnectorReconciled",
                      f"connect-health restored connector {name} to its declaration ({restored}): {what}")
            if self.poller is not None:
                self.poller.refresh_configs()
        if outcome.error is not None:
            log.warning("correction of connector %s refused: %s (next try after %.0fs of drift)", name,
                        outcome.error, wait_for(new, self.rules))
        elif outcome.wrote and new.fights:
            log.warning("connector %s drifted again %d time(s) in a row within %.0fs of its correction: something "
                        "fights the declaration; next correction after %.0fs of drift", name, new.fights,
                        self.rules.fight_window, wait_for(new, self.rules))

    def status(self) -> dict[str, Any]:
        """For /status and /metrics: on, leader or not, why not now, and each tracked connector."""
        with self._lock:
            tracks = dict(self._tracks)
            blocked = self.blocked
        elector = self.elector
        return {
            "enabled": True,
            "lease": elector.api.name if elector is not None else None,
            "leader": self.leads(),
            "lease_error": elector.error if elector is not None else None,
            "waiting": blocked,
            "after_seconds": self.rules.after,
            "corrections": {n: t.corrections for n, t in tracks.items() if t.corrections},
            "connectors": [{"connector": n, "drifting_for_seconds": None if t.since is None
                            else round(self.clock() - t.since, 1),
                            "corrections": t.corrections, "fights": t.fights,
                            "correct_after_seconds": wait_for(t, self.rules), "error": t.error,
                            "fought": t.fights > 0}
                           for n, t in sorted(tracks.items())],
        }

    def start(self) -> None:
        if self.elector is not None:
            self.elector.start()
        if self._queue is not None:
            self._thread = threading.Thread(target=self._loop, name="connect-health-reconcile", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        assert self._queue is not None
        while (name := self._queue.get()) is not None:
            self._run_one(name)

    def stop(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.budget + 2 * self.client.settings.request_timeout)
        if self.elector is not None:
            self.elector.stop()
        self.client.close()


def from_settings(settings: ServeSettings, emit: Emit, env: Mapping[str, str] = os.environ,
                  account_dir: str = kubeapi.SERVICE_ACCOUNT) -> Reconciler:
    """The Reconciler of ``serve --reconcile`` (threaded, its own ConnectClient); with ``--reconcile-lease`` it
    writes only while this pod holds that Lease. UsageError names what a pod lacks for the Lease."""
    assert settings.connectors_file is not None  # config.serve_settings refuses --reconcile without it
    elector = None
    if settings.reconcile_lease:
        flag = "--reconcile-lease"
        try:
            api = kubeapi.ApiServer.from_environment(env, account_dir, flag)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        namespace = kubeapi.namespace(env, account_dir, "CONNECT_HEALTH_NAMESPACE", "POD_NAMESPACE")
        if not namespace:
            raise UsageError(f"{flag} needs CONNECT_HEALTH_NAMESPACE, POD_NAMESPACE or the service account's "
                             "namespace file")
        me = env.get("POD_NAME") or socket.gethostname()  # the pod's name (the hostname of a pod is its name)
        elector = Elector(LeaseApi(api, namespace, settings.reconcile_lease), me, settings.reconcile_lease_duration)
    else:
        log.warning("--reconcile without --reconcile-lease: this sidecar corrects drift alone (right for one "
                    "worker; with several, give them a Lease so that one writes at a time)")
    return Reconciler(ConnectClient(settings.connect), settings.connectors_file, emit,
                      Rules(after=settings.reconcile_after), elector=elector, threaded=True)
