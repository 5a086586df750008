"""What ``/status`` and ``check`` show of a View: the status document (JSON) and the text table.

No Flask here: ``check --output json`` builds the same document as the ``/status`` endpoint without importing the
web stack.

The document lists one page of connectors (:class:`Query`: ``view``, filters, ``offset``/``limit``). The default
``view=worker`` lists what this pod judges, connectors with units on this worker first, problems first within
each group; the rest of the cluster is summarised as counts by state (``cluster``). ``view=cluster`` pages through
every connector of the cluster, decoded from the snapshot's ``listing`` only when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import __version__, model
from .config import HealthSettings
from .poller import View
from .redact import redact, trace_line
from .snapshot import Snapshot, parse_answer

PAGE_LIMIT = 200  # connectors per page by default
MAX_LIMIT = 5000
VIEWS = ("worker", "cluster")
RANK = {"failed": 0, "stuck": 1, "restarting": 2, "transient": 3}  # problems first; everything else after


class QueryError(ValueError):
    """A /status query parameter is invalid; the message names it."""


@dataclass(frozen=True)
class Query:
    view: str = "worker"  # worker: what this pod judges; cluster: every connector
    name: str = ""  # connectors whose name contains this
    state: str = ""  # connectors with a unit (instance or task) in this state
    verdict: str = ""  # connectors with a unit of this verdict
    worker: str = ""  # connectors with a unit on this worker id
    offset: int = 0
    limit: int = PAGE_LIMIT

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Query:
        """From query parameters; unknown ones are ignored (``format`` is the app's)."""
        view = args.get("view", "worker")
        if view not in VIEWS:
            raise QueryError(f"view must be one of {', '.join(VIEWS)}, got {view[:40]!r}")
        return cls(view=view, name=args.get("name", "")[:200], state=args.get("state", "").upper()[:40],
                   verdict=args.get("verdict", "").lower()[:40], worker=args.get("worker", "")[:200],
                   offset=_int(args, "offset", 0, 0, 10**9), limit=_int(args, "limit", PAGE_LIMIT, 1, MAX_LIMIT))

    def filters(self) -> dict[str, str]:
        return {k: v for k, v in (("name", self.name), ("state", self.state), ("verdict", self.verdict),
                                  ("worker", self.worker)) if v}


def _int(args: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = args.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise QueryError(f"{key} must be an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def _groups(rows: tuple[model.Row, ...] | list[model.Row]) -> dict[str, list[model.Row]]:
    out: dict[str, list[model.Row]] = {}
    for row in rows:
        out.setdefault(row.connector, []).append(row)
    return out


_ORDERED: tuple[View, list[list[model.Row]]] | None = None  # the last View's connectors in page order


def _ordered(view: View) -> list[list[model.Row]]:
    """The View's connectors (their rows): with units on this worker first, problems first, then by name. Sorted
    once per View (a poll), not per request."""
    global _ORDERED
    cached = _ORDERED
    if cached is not None and cached[0] is view:
        return cached[1]
    groups = list(_groups(view.report.rows).values())
    groups.sort(key=lambda g: (not any(r.local for r in g), min(RANK.get(r.verdict, 9) for r in g), g[0].connector))
    _ORDERED = (view, groups)
    return groups


def _matches(rows: list[model.Row], q: Query) -> bool:
    return ((not q.name or q.name in rows[0].connector)
            and (not q.state or any(r.state == q.state for r in rows))
            and (not q.verdict or any(r.verdict == q.verdict for r in rows))
            and (not q.worker or any(r.worker_id == q.worker for r in rows)))


def _page(view: View, settings: HealthSettings, q: Query) -> tuple[list[list[model.Row]], int, Snapshot | None]:
    """The page's connectors (their rows), how many matched, and the snapshot their ``type`` comes from."""
    obs = view.observation
    snapshot = obs.snapshot
    if q.view == "worker" or snapshot is None:
        groups = [g for g in _ordered(view) if _matches(g, q)]
        return groups[q.offset:q.offset + q.limit], len(groups), snapshot
    full = parse_answer(snapshot.listing) if snapshot.listing is not None else snapshot
    conns = sorted(full.connectors)
    if q.name:
        conns = [n for n in conns if q.name in n]
    if q.state or q.worker:
        def unit_match(n: str) -> bool:
            c = full.connectors[n]
            units = [(c.state, c.worker_id)] + [(t.state, t.worker_id) for t in c.tasks]
            return (not q.state or any(s == q.state for s, _ in units)) and \
                (not q.worker or any(w == q.worker for _, w in units))
        conns = [n for n in conns if unit_match(n)]
    if q.verdict:  # needs every candidate's rows
        groups = [g for g in _rows_of(full, conns, obs, settings) if _matches(g, q)]
        return groups[q.offset:q.offset + q.limit], len(groups), full
    return _rows_of(full, conns[q.offset:q.offset + q.limit], obs, settings), len(conns), full


def _rows_of(full: Snapshot, names: list[str], obs: model.Observation,
             settings: HealthSettings) -> list[list[model.Row]]:
    subset = Snapshot(connectors={n: full.connectors[n] for n in names})
    return list(_groups(model.rows_of(subset, obs, settings)).values())


def status_document(view: View, settings: HealthSettings, query: Query | None = None) -> dict[str, Any]:
    """The /status JSON: one page of connectors with every unit's verdict, the cluster as counts by state.
    Traces are first lines, redacted."""
    q = query or Query()
    obs, report = view.observation, view.report
    page, matched, source = _page(view, settings, q)
    connectors: list[dict[str, Any]] = []
    for group in page:
        first = group[0]
        name = first.connector
        conn_view = source.connectors.get(name) if source is not None else None
        entry: dict[str, Any] = {
            "name": name, "policy": first.policy, "restart_attempts": first.attempts,
            "restart_limit": obs.restart_limits.get(name, settings.restart_attempts),
            "failed_past_ladder": name in report.failed_connectors, "tasks": [],
        }
        if conn_view is not None:
            entry["type"] = conn_view.type
            if conn_view.tasks_elsewhere:
                entry["tasks_elsewhere"] = conn_view.tasks_elsewhere
        for row in group:
            item = {
                "state": row.state, "worker_id": row.worker_id, "on_this_worker": row.local,
                "verdict": row.verdict, "reason": redact(row.reason), "trace": trace_line(row.trace, settings.traces),
            }
            if row.task is None:
                entry["connector"] = item
            else:
                entry["tasks"].append({"id": row.task, **item})
        connectors.append(entry)
    age = max(0.0, time.time() - view.wall_time) if view.polls else None
    snap = obs.snapshot
    return {
        "version": __version__,
        "worker_id": settings.worker_id,
        "scope": settings.scope,
        "worker": {
            "started": obs.started, "reachable": obs.reachable, "error": redact(obs.error) if obs.error else None,
            "health_endpoint": view.health_endpoint, "stale": view.stale,
        },
        "probes": {p: getattr(report, p).body() for p in ("livez", "readyz", "startupz")},
        "polls": view.polls,
        "last_poll_age_seconds": round(age, 3) if age is not None else None,
        "poll_seconds": round(view.poll_seconds, 4),
        "cluster": {
            "connectors": snap.total if snap else 0,
            "tasks": sum(snap.cluster_tasks.values()) if snap else 0,
            "connectors_by_state": dict(sorted(snap.cluster_connectors.items())) if snap else {},
            "tasks_by_state": dict(sorted(snap.cluster_tasks.items())) if snap else {},
            "shown_here": len(snap.connectors) if snap else 0,  # connectors this pod judges a unit of
            "summarised": snap.summarised if snap else 0,  # only counted: every unit settled on other workers
        },
        "page": {"view": q.view, "filters": q.filters(), "offset": q.offset, "limit": q.limit, "matched": matched,
                 "returned": len(connectors)},
        "connectors": connectors,
        "drift": [{"connector": n, "kind": k, "detail": d} for n, k, d in view.drift],
        "last_restarts": last_restarts(view),
        "configs_age_seconds": round(view.configs_age, 1) if view.configs_age is not None else None,
        "reconcile": dict(view.reconcile) if view.reconcile is not None else {"enabled": False},
        "settings": {
            "grace": settings.grace, "restart_attempts": settings.restart_attempts,
            "restart_backoff": settings.restart_backoff, "unresponsive_after": settings.unresponsive_after,
            "herder_stuck_after": settings.herder_stuck_after,
            "failure_threshold": settings.failure_threshold,
            "best_effort": settings.best_effort.pattern if settings.best_effort else None,
        },
    }


LAST_SHOWN = 50


def last_restarts(view: View) -> list[dict[str, Any]]:
    """The newest restarts (over REST, or of the pod) of every connector, newest first; they outlive the ladder's
    reset and, with --state-file, the sidecar's own restarts."""
    entries = [(at, name, kind, what) for name, items in view.last_restarts.items() for at, kind, what in items]
    entries.sort(key=lambda e: (-e[0], e[1]))
    return [{"connector": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)), "kind": kind,
             "what": what} for at, name, kind, what in entries[:LAST_SHOWN]]


def table(view: View, settings: HealthSettings) -> str:
    """``check``'s table: one row per connector instance and task; ``*`` marks this worker."""
    header = ("CONNECTOR", "TASK", "STATE", "WORKER", "POLICY", "VERDICT", "REASON")
    rows = [header]
    for r in view.report.rows:
        reason = redact(r.reason)
        trace = trace_line(r.trace, settings.traces)
        if trace and r.verdict in ("failed", "restarting"):
            reason += f" | {trace}"
        rows.append((r.connector, "-" if r.task is None else str(r.task), r.state,
                     r.worker_id + (" *" if r.local else ""), r.policy, r.verdict, reason))
    snap = view.observation.snapshot
    elsewhere = ""
    if snap is not None and snap.summarised:
        elsewhere = (f"\n{snap.summarised} more connector{'s' if snap.summarised != 1 else ''} only on other "
                     "workers, not shown")
    if len(rows) == 1:
        return "no connectors" + elsewhere
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    return "\n".join(lines) + elsewhere
