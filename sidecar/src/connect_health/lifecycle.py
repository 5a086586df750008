"""The worker's lifecycle as the sidecar sees it: a pure state machine over one immutable :class:`Lifecycle`.

Nothing here does I/O or reads a clock: the poller passes ``now`` (monotonic seconds) and what its calls found.

- **Incarnation**: which Connect process the verdicts are about. A new one begins when the worker's own address
  refused the TCP connection after it had answered and now answers again, when ``GET /health`` says 503 (starting)
  after startup completed, when ``GET /`` reports another version/commit, or on Kafka >= 3.9 when ``/health``
  answers 404 (REST resources not registered yet) after startup. Nothing else is a restart: a DNS failure, the
  sidecar out of file descriptors, a reset or a timeout is the sidecar's or the network's problem and leaves the
  ladder and the pod-restart memory alone.
- **Startup window**: until the worker says it finished starting, liveness belongs to the startup probe.
- **Timers**: since when nothing answers (``--unresponsive-after``), since when ``/health`` fails while ``/``
  answers (``--herder-stuck-after``), since when ``GET /connectors`` answers 409 (a rebalance).
- **Pod-restart memory**: the connectors liveness failed for when a worker went away are the pod restarts spent on
  them (``--pod-restarts`` per ``--pod-restart-window``); a connector that ran cleanly for ``--restart-reset``
  afterwards was fixed by it. This memory outlives the incarnation, and (through :mod:`statefile`) the sidecar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .ladder import Rung


@dataclass(frozen=True)
class Lifecycle:
    incarnation: int = 0  # how many new incarnations were seen since the sidecar started
    incarnation_reason: str | None = None  # why the latest began
    started: bool = False
    startup_detail: str = "no answer from the worker yet"
    answered: bool = False  # the current incarnation answered on Connect's port at least once
    down: bool = False  # the worker's address refuses the connection: nothing listens on Connect's port
    root_ident: tuple[object, object] | None = None  # (version, commit) of GET /
    unreachable_since: float | None = None
    stuck_since: float | None = None
    rebalancing_since: float | None = None
    blamed: tuple[str, ...] = ()  # the connectors liveness failed for at the last judged poll
    pod_restarts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    restart_fixed: frozenset[str] = frozenset()


def new_incarnation(lc: Lifecycle, now: float, why: str) -> Lifecycle:
    """Forget everything judged of the previous worker; the connectors liveness failed for were a pod restart."""
    pods = dict(lc.pod_restarts)
    fixed = set(lc.restart_fixed)
    for name in lc.blamed:
        pods[name] = (*pods.get(name, ()), now)
        fixed.discard(name)
    return Lifecycle(incarnation=lc.incarnation + 1, incarnation_reason=why,
                     startup_detail=f"new worker incarnation ({why})", answered=True, root_ident=lc.root_ident,
                     pod_restarts=pods, restart_fixed=frozenset(fixed))


def answered(lc: Lifecycle, now: float) -> Lifecycle:
    """An answer came on Connect's port: after it refused connections (having answered before), a new worker."""
    if lc.down and lc.answered:
        return new_incarnation(lc, now, "Connect's REST port refused connections and answers again")
    return lc if lc.answered and not lc.down else replace(lc, answered=True, down=False)


def refused(lc: Lifecycle) -> Lifecycle:
    """The worker's own address refused the TCP connection: nothing listens there. Only when it had answered
    before is the next answer a new worker (before one, the worker had not opened its port yet)."""
    return lc if lc.down else replace(lc, down=True)


def starting_again(lc: Lifecycle, now: float, detail: str) -> Lifecycle:
    """The worker says it is starting (``/health`` 503, or 404 on Kafka >= 3.9). After startup had completed that
    is the Connect container restarted under the sidecar: its startup window belongs to ``/startupz`` again."""
    if lc.started:
        lc = new_incarnation(lc, now, f"worker is starting again: {detail}")
    return replace(lc, startup_detail=detail)


def root_seen(lc: Lifecycle, ident: tuple[object, object], now: float) -> Lifecycle:
    """``GET /`` answered with (version, commit): another pair than before is another worker."""
    if lc.root_ident is not None and ident != lc.root_ident:
        lc = new_incarnation(lc, now, f"GET / reports another worker ({ident[0]}, commit {ident[1]})")
    return replace(lc, root_ident=ident)


def rebalancing(lc: Lifecycle, start: float) -> tuple[Lifecycle, float]:
    """``GET /connectors`` answered 409 at the poll that began at ``start``; returns since when it does so."""
    since = lc.rebalancing_since if lc.rebalancing_since is not None else start
    return replace(lc, rebalancing_since=since), since


def polled(lc: Lifecycle, start: float, *, reachable: bool, herder_stuck: bool, started: bool | None = None,
           error: str | None = None) -> Lifecycle:
    """The timers after a poll that began at ``start``: ``reachable`` (the status calls answered), or
    ``herder_stuck`` (the process answers, its herder does not), or neither (nothing answered in time)."""
    unreachable, stuck = lc.unreachable_since, lc.stuck_since
    if reachable:
        unreachable = stuck = None
    elif herder_stuck:
        # The process answers: "nothing answers" starts over; the herder's own budget runs from its first failure,
        # across polls where nothing answered at all.
        unreachable = None
        stuck = start if stuck is None else stuck
    elif unreachable is None:
        unreachable = start
    out = replace(lc, unreachable_since=unreachable, stuck_since=stuck)
    if started:
        out = replace(out, started=True, startup_detail="startup complete")
    if error is not None and not out.started:
        out = replace(out, startup_detail=error)  # never "startup complete" when the next call failed
    return out


def not_rebalancing(lc: Lifecycle) -> Lifecycle:
    return lc if lc.rebalancing_since is None else replace(lc, rebalancing_since=None)


def blame(lc: Lifecycle, live_failed: Iterable[str]) -> Lifecycle:
    """The connectors liveness fails for now: should the worker go away next, a pod restart was spent on them."""
    names = tuple(live_failed)
    return lc if names == lc.blamed else replace(lc, blamed=names)


def note_fixed(lc: Lifecycle, now: float, rungs: Mapping[str, Rung], window: float, reset: float) -> Lifecycle:
    """Pod restarts older than ``window`` are forgotten; a connector that ran cleanly for ``reset`` seconds after
    its pod restart was fixed by it."""
    pods: dict[str, tuple[float, ...]] = {}
    fixed = set(lc.restart_fixed)
    for name, times in lc.pod_restarts.items():
        kept = tuple(t for t in times if now - t < window)
        if not kept:
            fixed.discard(name)
            continue
        pods[name] = kept
        rung = rungs.get(name)
        if rung is not None and rung.healthy_since is not None and not rung.exhausted \
                and now - rung.healthy_since >= reset:
            fixed.add(name)
    if pods == lc.pod_restarts and fixed == lc.restart_fixed:
        return lc
    return replace(lc, pod_restarts=pods, restart_fixed=frozenset(fixed))
