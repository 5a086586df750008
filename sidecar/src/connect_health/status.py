"""What ``/status`` and ``check`` show of a View: the status document (JSON) and the text table.

No Flask here: ``check --output json`` builds the same document as the ``/status`` endpoint without importing the
web stack.
"""

from __future__ import annotations

import time
from typing import Any

from . import __version__
from .config import HealthSettings
from .poller import View
from .redact import redact, trace_line


def status_document(view: View, settings: HealthSettings) -> dict[str, Any]:
    """The /status JSON: every connector and task with its verdict. Traces are first lines, redacted."""
    obs, report = view.observation, view.report
    connectors: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        entry = connectors.setdefault(row.connector, {
            "name": row.connector, "policy": row.policy, "restart_attempts": row.attempts,
            "restart_limit": obs.restart_limits.get(row.connector, settings.restart_attempts),
            "failed_past_ladder": row.connector in report.failed_connectors, "tasks": [],
        })
        if obs.snapshot is not None and row.connector in obs.snapshot.connectors:
            entry["type"] = obs.snapshot.connectors[row.connector].type
        item = {
            "state": row.state, "worker_id": row.worker_id, "on_this_worker": row.local,
            "verdict": row.verdict, "reason": redact(row.reason), "trace": trace_line(row.trace, settings.traces),
        }
        if row.task is None:
            entry["connector"] = item
        else:
            entry["tasks"].append({"id": row.task, **item})
    age = max(0.0, time.time() - view.wall_time) if view.polls else None
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
        "connectors": list(connectors.values()),
        "drift": [{"connector": n, "kind": k, "detail": d} for n, k, d in view.drift],
        "settings": {
            "grace": settings.grace, "restart_attempts": settings.restart_attempts,
            "restart_backoff": settings.restart_backoff, "unresponsive_after": settings.unresponsive_after,
            "failure_threshold": settings.failure_threshold,
            "best_effort": settings.best_effort.pattern if settings.best_effort else None,
        },
    }


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
    if len(rows) == 1:
        return "no connectors"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    return "\n".join(lines)
