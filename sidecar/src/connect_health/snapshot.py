"""Parse Connect's answers into a typed snapshot. Total: any input gives a Snapshot or a ParseError.

The parser accepts the ``GET /connectors?expand=status&expand=info`` shape. Entries that are malformed are skipped
and counted in ``Snapshot.skipped`` rather than failing the whole answer; an answer that is not a JSON object at
all is a :class:`ParseError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATES = ("RUNNING", "PAUSED", "STOPPED", "FAILED", "UNASSIGNED", "RESTARTING")
MAX_TRACE_CHARS = 4096


class ParseError(Exception):
    pass


@dataclass(frozen=True)
class TaskView:
    id: int
    state: str
    worker_id: str
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorView:
    name: str
    state: str
    worker_id: str
    type: str = "unknown"
    trace: str | None = None
    tasks: tuple[TaskView, ...] = ()
    config: dict[str, str] | None = None


@dataclass(frozen=True)
class Snapshot:
    connectors: dict[str, ConnectorView] = field(default_factory=dict)
    skipped: int = 0


def _state(value: Any) -> str:
    if isinstance(value, str) and value.upper() in STATES:
        return value.upper()
    if isinstance(value, str) and value:
        return value.upper()[:40]  # an unknown future state: shown as-is, judged as not RUNNING
    raise ParseError("missing state")


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _trace(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value[:MAX_TRACE_CHARS]
    return None


def parse_task(raw: Any) -> TaskView:
    if not isinstance(raw, dict):
        raise ParseError("task is not an object")
    task_id = raw.get("id")
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise ParseError("task id is not an integer")
    return TaskView(id=task_id, state=_state(raw.get("state")), worker_id=_text(raw.get("worker_id")),
                    trace=_trace(raw.get("trace")))


def parse_status(name: str, raw: Any, info: Any = None) -> ConnectorView:
    """One connector's status object (``GET /connectors/{name}/status`` shape)."""
    if not isinstance(raw, dict):
        raise ParseError("status is not an object")
    conn = raw.get("connector")
    if not isinstance(conn, dict):
        raise ParseError("status has no connector object")
    tasks_raw = raw.get("tasks", [])
    if not isinstance(tasks_raw, list):
        raise ParseError("tasks is not a list")
    tasks = []
    for task in tasks_raw:
        try:
            tasks.append(parse_task(task))
        except ParseError:
            continue
    config = None
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        config = {str(k): v if isinstance(v, str) else str(v) for k, v in info["config"].items()}
    return ConnectorView(
        name=name,
        state=_state(conn.get("state")),
        worker_id=_text(conn.get("worker_id")),
        type=_text(raw.get("type"), "unknown") or "unknown",
        trace=_trace(conn.get("trace")),
        tasks=tuple(sorted(tasks, key=lambda t: t.id)),
        config=config,
    )


def parse_expanded(body: Any) -> Snapshot:
    """``GET /connectors?expand=status&expand=info`` -> Snapshot."""
    if isinstance(body, list) and not body:
        return Snapshot()
    if not isinstance(body, dict):
        raise ParseError(f"expected a JSON object of connectors, got {type(body).__name__}")
    connectors: dict[str, ConnectorView] = {}
    skipped = 0
    for name, entry in body.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            skipped += 1
            continue
        try:
            connectors[name] = parse_status(name, entry.get("status"), entry.get("info"))
        except ParseError:
            skipped += 1
    return Snapshot(connectors=connectors, skipped=skipped)
