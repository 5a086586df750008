"""What restarts the sidecar sent or saw, per connector: counts by outcome, counts per unit by kind and failure class
(``connect_health_restarts_total{connector, task, kind, class, outcome}``, kept in the state file), and the last few
restarts with their time and class (``/status``, the state file). The ladder's attempts reset once a connector runs
cleanly; this history does not, so an operator sees how often a connector was restarted, and for what.

It is bounded by the live connectors: a connector deleted for ``GONE_GRACE`` seconds is forgotten (2,000 deleted
connectors used to keep their counters for good).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from . import failures

GONE_GRACE = 600.0  # seconds a deleted connector's counters and history are kept
LAST = 5  # restarts remembered per connector

Entry = tuple[float, str, str, str]  # (wall-clock time, kind: rest | pod, what, failure class)
UnitKey = tuple[str, str, str, str, str]  # (connector, task: "" for the connector itself, kind, class, outcome)


class RestartHistory:
    def __init__(self, last: Mapping[str, tuple[Entry, ...]] | None = None,
                 units: Mapping[UnitKey, int] | None = None) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()  # (connector, outcome) -> restart requests
        self.units: Counter[UnitKey] = Counter(units or {})  # per restarted unit, kind and class
        self.last: dict[str, tuple[Entry, ...]] = dict(last or {})
        self._gone_since: dict[str, float] = {}

    def sent(self, name: str, outcome: str, wall: float, units: Sequence[tuple[str, str]] = ()) -> None:
        """A restart request and its outcome (requested, conflict, not-found, error); ``units``: the (task, class)
        of each FAILED unit it restarts ("" for the connector instance)."""
        self.counts[(name, outcome)] += 1
        for task, cls in units or (("", "unknown"),):
            self.units[(name, task, "rest", cls, outcome)] += 1
        if outcome == "requested":
            cls = failures.connector_class([c for _, c in units]) or "unknown"
            self.note(name, wall, "rest", "its failed units restarted over REST", cls)

    def note(self, name: str, wall: float, kind: str, what: str, cls: str = "unknown") -> None:
        if kind == "pod":
            self.units[(name, "", "pod", cls, "restarted")] += 1
        self.last[name] = (*self.last.get(name, ())[-(LAST - 1):], (wall, kind, what, cls))

    def forget_gone(self, present: Collection[str], now: float) -> None:
        """Drop what is kept of connectors absent from ``present`` for GONE_GRACE (``now``: monotonic seconds)."""
        known = {name for name, _ in self.counts} | set(self.last) | {k[0] for k in self.units}
        for name in known - set(present):
            since = self._gone_since.setdefault(name, now)
            if now - since >= GONE_GRACE:
                for key in [k for k in self.counts if k[0] == name]:
                    del self.counts[key]
                for unit in [k for k in self.units if k[0] == name]:
                    del self.units[unit]
                self.last.pop(name, None)
                del self._gone_since[name]
        for name in [n for n in self._gone_since if n in present]:
            del self._gone_since[name]
