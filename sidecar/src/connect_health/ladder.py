"""The restart ladder, as pure functions over immutable per-connector state.

A connector with a FAILED instance or task on this worker is restarted over REST, at most ``restart_attempts``
times, waiting ``restart_backoff * 2**(n-1)`` seconds after attempt n. When the last wait ends and the failure is
still there, the connector is *exhausted*: its failure has survived the ladder. A 409 (rebalance) is not counted.
Once the connector has run cleanly for ``restart_reset`` seconds its attempts start again from zero.

Exhaustion is judged over ``flap_window`` seconds, not one poll: an exhausted connector stays exhausted while it
was FAILED in at least half of the window's polls, so a task FAILED 75% of the time fails liveness without a
break (one healthy poll would reset the kubelet's failure count), and one fixed for good clears within half the
window. A 409 to a restart (a rebalance) is retried after ``restart_backoff`` without counting, ``FREE_CONFLICTS``
times in a row; after that each 409 counts as an attempt, so a worker that answers 409 forever still exhausts the
ladder with a bounded number of requests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from .config import HealthSettings


@dataclass(frozen=True)
class Rung:
    attempts: int = 0
    next_at: float = 0.0  # earliest time of the next attempt, or of the exhaustion verdict after the last one
    exhausted: bool = False
    healthy_since: float | None = None
    last_outcome: str | None = None
    last_at: float | None = None
    conflicts: int = 0  # 409s in a row
    history: tuple[tuple[float, bool], ...] = ()  # (poll time, FAILED) within the flap window, while it matters
    failing_since: float | None = None  # first poll of the current failure: restarts go oldest failure first

    @property
    def failed_share(self) -> float:
        return sum(1 for _, failed in self.history if failed) / len(self.history) if self.history else 0.0


FREE_CONFLICTS = 3


def plan(rungs: Mapping[str, Rung], failing: Iterable[str], present: Iterable[str], now: float,
         settings: HealthSettings, limits: Mapping[str, int] | None = None,
         pending: Collection[str] = ()) -> tuple[dict[str, Rung], list[str]]:
    """Advance every connector's rung; return the new rungs and the connectors due a restart now, oldest failure
    first (the restart lane takes a few per poll; the others stay due).

    ``limits`` overrides ``restart_attempts`` per connector (declared ``restartAttempts``). ``pending``: connectors
    whose restart was sent and has no answer yet: neither due again nor exhausted meanwhile.
    """
    failing_set = set(failing)
    present_set = set(present) | failing_set
    out: dict[str, Rung] = {}
    restart: list[str] = []
    for name in sorted(present_set):
        rung = rungs.get(name, Rung())
        if (not rung.attempts and not rung.history and not rung.exhausted and rung.healthy_since is not None
                and rung.failing_since is None and name not in failing_set):
            out[name] = rung  # healthy and settled: the branch below would copy it unchanged (most connectors)
            continue
        limit = (limits or {}).get(name, settings.restart_attempts)
        if name in failing_set or rung.attempts or rung.exhausted or rung.history:
            window = tuple(s for s in rung.history if now - s[0] < settings.flap_window)
            rung = replace(rung, history=window + ((now, name in failing_set),))
        if name in failing_set:
            rung = replace(rung, healthy_since=None, failing_since=now if rung.failing_since is None
                           else rung.failing_since)
            if not rung.exhausted and name not in pending:
                if limit == 0:
                    rung = replace(rung, exhausted=True)
                elif rung.attempts >= limit:
                    if now >= rung.next_at:
                        rung = replace(rung, exhausted=True)
                elif now >= rung.next_at:
                    restart.append(name)
        else:
            since = rung.healthy_since if rung.healthy_since is not None else now
            flapping = rung.exhausted and rung.failed_share >= 0.5
            rung = replace(rung, exhausted=flapping, healthy_since=since, failing_since=None)
            if not flapping and not any(failed for _, failed in rung.history):
                rung = replace(rung, history=())
            if rung.attempts and not flapping and now - since >= settings.restart_reset:
                rung = Rung(healthy_since=since)
        out[name] = rung
    restart.sort(key=lambda n: (out[n].failing_since or now, n))
    return out, restart


def record(rung: Rung, outcome: str, now: float, settings: HealthSettings) -> Rung:
    """Account for the answer to a restart request."""
    if outcome == "conflict":
        conflicts = rung.conflicts + 1
        if conflicts <= FREE_CONFLICTS:  # a rebalance in progress: retry after the backoff, not an attempt
            return replace(rung, conflicts=conflicts, next_at=now + settings.restart_backoff, last_outcome=outcome,
                           last_at=now)
        rung = replace(rung, conflicts=conflicts)  # a rebalance that does not end: it counts from now on
    else:
        rung = replace(rung, conflicts=0)
    attempts = rung.attempts + 1
    wait = settings.restart_backoff * (2 ** (attempts - 1))
    return replace(rung, attempts=attempts, next_at=now + wait, last_outcome=outcome, last_at=now)
