"""The restart ladder, as pure functions over immutable per-connector state.

A connector with a FAILED instance or task on this worker is restarted over REST, at most ``restart_attempts``
times, waiting ``restart_backoff * 2**(n-1)`` seconds after attempt n. When the last wait ends and the failure is
still there, the connector is *exhausted*: its failure has survived the ladder. A 409 (rebalance) is not counted.
Once the connector has run cleanly for ``restart_reset`` seconds its attempts start again from zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def plan(rungs: Mapping[str, Rung], failing: Iterable[str], present: Iterable[str], now: float,
         settings: HealthSettings, limits: Mapping[str, int] | None = None) -> tuple[dict[str, Rung], list[str]]:
    """Advance every connector's rung; return the new rungs and the connectors to restart now.

    ``limits`` overrides ``restart_attempts`` per connector (declared ``restartAttempts``).
    """
    failing_set = set(failing)
    present_set = set(present) | failing_set
    out: dict[str, Rung] = {}
    restart: list[str] = []
    for name in sorted(present_set):
        rung = rungs.get(name, Rung())
        limit = (limits or {}).get(name, settings.restart_attempts)
        if name in failing_set:
            rung = replace(rung, healthy_since=None)
            if not rung.exhausted:
                if limit == 0:
                    rung = replace(rung, exhausted=True)
                elif rung.attempts >= limit:
                    if now >= rung.next_at:
                        rung = replace(rung, exhausted=True)
                elif now >= rung.next_at:
                    restart.append(name)
        else:
            since = rung.healthy_since if rung.healthy_since is not None else now
            rung = replace(rung, exhausted=False, healthy_since=since)
            if rung.attempts and now - since >= settings.restart_reset:
                rung = Rung(healthy_since=since)
        out[name] = rung
    return out, restart


def record(rung: Rung, outcome: str, now: float, settings: HealthSettings) -> Rung:
    """Account for the answer to a restart request."""
    if outcome == "conflict":  # rebalance in progress: retry at the next poll, not an attempt
        return replace(rung, last_outcome=outcome, last_at=now)
    if outcome == "gone":  # the connector was deleted meanwhile
        return replace(rung, last_outcome=outcome, last_at=now)
    attempts = rung.attempts + 1
    wait = settings.restart_backoff * (2 ** (attempts - 1))
    return replace(rung, attempts=attempts, next_at=now + wait, last_outcome=outcome, last_at=now)
