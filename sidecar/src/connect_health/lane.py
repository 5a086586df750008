"""The restart lane: the ladder's restart requests, sent outside the poll.

A restart answer can take seconds (a busy leader forwarding it; a rebalance), and 20 connectors failing at once
(a shared database outage) used to mean 20 of them one after another inside the poll, under the poll's deadline:
``/livez`` then said "Connect answers too slowly" while Connect answered its status calls in milliseconds. Here the
poll hands the restarts due to the lane and goes on; the poll's deadline measures only its status calls.

- ``threaded``: one thread sends them one at a time over its own connection (its own ConnectClient: a slow
  restart never holds the status calls' connection), and the poll reads their outcomes at its next run (``drain``).
  ``serve`` uses it.
- not threaded (``check``, tests driving ``poll_once``): sent in the caller's thread, after its status calls.

At most ``per_poll`` restarts are handed over per poll, and none while ``per_poll`` still wait: the rest stay due in
the ladder and go at later polls, oldest failure first (``ladder.plan`` orders them). So every failing connector gets
its restart within ``ceil(n / per_poll)`` polls plus the time the requests before it took, each bounded by
``--request-timeout``. An outcome is tagged with the incarnation it was sent to, so a new worker's ladder never
counts a restart sent to the previous one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from . import model
from .client import ConnectClient, ConnectError, Reply
from .config import HealthSettings
from .snapshot import ConnectorView

log = logging.getLogger("connect_health.lane")

PER_POLL = 10  # restarts handed over per poll (and waiting at most): 1,000 failing -> 100 polls, never 1,000 calls


@dataclass(frozen=True)
class Done:
    connector: str
    outcome: str  # requested | conflict | not-found | error
    at: float
    incarnation: int


class RestartLane:
    def __init__(self, client: ConnectClient, settings: HealthSettings, clock: Callable[[], float], *,
                 threaded: bool = False, per_poll: int = PER_POLL) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.per_poll = per_poll
        self.legacy = False  # the worker ignored KIP-745's parameters (Kafka < 3.0): per-task restarts
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._done: list[Done] = []
        self._queue: queue.Queue[tuple[ConnectorView, int, tuple[int, ...]] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._run, name="connect-health-restarts", daemon=True)
            self._thread.start()

    @property
    def pending(self) -> frozenset[str]:
        """Connectors whose restart was handed over and has no outcome drained yet."""
        with self._lock:
            return frozenset(self._pending)

    def submit(self, connectors: Iterable[ConnectorView], incarnation: int,
               stalled: Mapping[str, tuple[int, ...]] | None = None) -> list[str]:
        """Hand over restarts (in order) up to the lane's room; returns the names taken. ``stalled``: the RUNNING
        tasks without progress (progress.py) to restart one by one besides the failed units."""
        taken: list[str] = []
        with self._lock:
            room = max(0, self.per_poll - len(self._pending))
            todo = [c for c in connectors if c.name not in self._pending][:room]
            self._pending.update(c.name for c in todo)
        for conn in todo:
            taken.append(conn.name)
            tasks = (stalled or {}).get(conn.name, ())
            if self._queue is not None:
                self._queue.put((conn, incarnation, tasks))
            else:
                self._finish(conn.name, self.send(conn, tasks), incarnation)
        return taken

    def drain(self) -> list[Done]:
        with self._lock:
            done, self._done = self._done, []
            self._pending.difference_update(d.connector for d in done)
        return done

    def close(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=2 * self.client.settings.request_timeout)
            self.client.close()

    def _finish(self, name: str, outcome: str, incarnation: int) -> None:
        with self._lock:
            self._done.append(Done(name, outcome, self.clock(), incarnation))

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is None:
                return
            conn, incarnation, tasks = job
            self._finish(conn.name, self.send(conn, tasks), incarnation)

    def send(self, conn: ConnectorView, stalled: tuple[int, ...] = ()) -> str:
        """Send the restart of one connector's failed units on this worker, and of its ``stalled`` tasks (RUNNING,
        so onlyFailed would skip them: ``POST /connectors/{name}/tasks/{id}/restart`` each); returns its outcome."""
        name = conn.name
        try:
            for task_id in stalled:
                reply = self.client.restart_task(name, task_id)
                if not reply.ok:
                    return outcome_of(reply)
            units = [(conn.state, conn.worker_id), *((t.state, t.worker_id) for t in conn.tasks)]
            if stalled and not any(st == "FAILED" and model.is_local(wid, self.settings) for st, wid in units):
                return "requested"  # nothing FAILED here: no connector-level restart to send
            if not self.legacy:
                reply = self.client.restart_connector(name, include_tasks=True, only_failed=True)
                if reply.status == 202:
                    return "requested"
                if reply.status != 204:
                    return outcome_of(reply)
                # 204 to includeTasks=true: a worker older than Kafka 3.0 ignored KIP-745's parameters and
                # restarted only the connector object; restart its failed tasks one by one from now on.
                self.legacy = True
                log.info("worker does not support KIP-745 restarts; using per-task restarts")
            outcome = "requested"
            if conn.state == "FAILED":
                reply = self.client.restart_connector(name, include_tasks=False, only_failed=False)
                outcome = "requested" if reply.ok else outcome_of(reply)
            for task in conn.tasks:
                if task.state == "FAILED" and model.is_local(task.worker_id, self.settings):
                    reply = self.client.restart_task(name, task.id)
                    if not reply.ok:
                        outcome = outcome_of(reply)
            return outcome
        except ConnectError as exc:
            log.warning("restart of connector %s failed: %s", name, exc)
            return "error"


def outcome_of(reply: Reply) -> str:
    """A restart's answer: ``conflict`` (Connect said "not now": not an attempt, see ladder.record), ``not-found``
    (a 404 for a connector the last poll listed: it still counts, else a name Connect cannot route, such as ``..``,
    would be restarted every poll forever) or ``error``."""
    if reply.retry_later:
        return "conflict"
    if reply.status == 404:
        return "not-found"
    return "error"
