"""Parse Connect's answers into a typed snapshot. Total: any input gives a Snapshot or a ParseError.

The parser accepts the ``GET /connectors?expand=status[&expand=info]`` shape. Entries that are malformed are
skipped and counted in ``Snapshot.skipped`` rather than failing the whole answer; an answer that is not a JSON
object at all is a :class:`ParseError`.

Scale (issue 12): given ``worker_id`` (``--scope worker``), a snapshot keeps in full only the units the model
judges on this pod: the ones on this worker, and UNASSIGNED/RESTARTING/unknown-state units on any worker (model.py
judges those on every pod). A connector with such a unit is kept with its connector instance and those tasks
(``tasks_elsewhere`` counts the rest); connectors named in ``keep`` (the declared ones, for drift) are kept
likewise. Everything else is only counted by state (``cluster_connectors``/``cluster_tasks`` count the whole
answer), and the status part of the answer is kept as bytes (``listing``, decoded only when /status is asked for
the whole cluster). Raw answers are decoded by msgspec into typed structs (a few times faster than ``json`` and
without building the dicts of connectors that are only counted); an answer the typed decoder refuses goes
through ``json`` and the lenient per-entry parser, so both paths give the same Snapshot.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

STATES = ("RUNNING", "PAUSED", "STOPPED", "FAILED", "UNASSIGNED", "RESTARTING")
# What is kept of each trace: its first line is what /status, `check` and Events show (300 characters, redact.py);
# 2 KiB keeps that line whole with room to spare, and bounds a mass failure's traces (3,000 failed tasks: 6 MiB).
# The REST client cuts traces to this while it reads the answer (tracecut.py).
MAX_TRACE_CHARS = 2048


class ParseError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TaskView:
    id: int
    state: str
    worker_id: str
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorView:
    name: str
    state: str
    worker_id: str
    type: str = "unknown"
    trace: str | None = None
    tasks: tuple[TaskView, ...] = ()
    config: dict[str, str] | None = None
    tasks_elsewhere: int = 0  # tasks on other workers left out of ``tasks`` (scoped snapshots only)


@dataclass(frozen=True)
class Snapshot:
    connectors: dict[str, ConnectorView] = field(default_factory=dict)  # kept in full (all, when not scoped)
    skipped: int = 0
    summarised: int = 0  # connectors only counted: every unit RUNNING/PAUSED/STOPPED/FAILED on other workers
    cluster_connectors: dict[str, int] = field(default_factory=dict)  # connector instances by state, whole answer
    cluster_tasks: dict[str, int] = field(default_factory=dict)  # tasks by state, whole answer
    listing: bytes | None = None  # scoped snapshots: the whole cluster's statuses as JSON, for /status paging
    with_configs: bool = False  # the answer carried expand=info

    @property
    def total(self) -> int:
        """Connectors in Connect's answer (malformed entries excluded)."""
        return len(self.connectors) + self.summarised


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
    return ConnectorView(
        name=name,
        state=_state(conn.get("state")),
        worker_id=_text(conn.get("worker_id")),
        type=_text(raw.get("type"), "unknown") or "unknown",
        trace=_trace(conn.get("trace")),
        tasks=tuple(sorted(tasks, key=lambda t: t.id)),
        config=_config(info),
    )


def _config(info: Any) -> dict[str, str] | None:
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        return {str(k): v if isinstance(v, str) else str(v) for k, v in info["config"].items()}
    return None


def parse_expanded(body: Any, *, worker_id: str | None = None, keep: Collection[str] = ()) -> Snapshot:
    """``GET /connectors?expand=status[&expand=info]`` as parsed JSON -> Snapshot (scoped when ``worker_id``)."""
    if isinstance(body, list) and not body:
        return Snapshot()
    if not isinstance(body, dict):
        raise ParseError(f"expected a JSON object of connectors, got {type(body).__name__}")
    views: list[tuple[ConnectorView, Any]] = []
    skipped = 0
    for name, entry in body.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            skipped += 1
            continue
        try:
            views.append((parse_status(name, entry.get("status")), entry.get("info")))
        except ParseError:
            skipped += 1
    listing = None
    if worker_id is not None:
        listing = json.dumps({v.name: {"status": body[v.name].get("status")} for v, _ in views}).encode()
    has_info = any(isinstance(e, dict) and "info" in e for e in body.values())
    units = ((v.name, v, v.tasks, v.type, info) for v, info in views)
    return _scoped(units, skipped, worker_id, keep, listing, has_info)


# --- the typed fast path -------------------------------------------------------------------------------------
class _Unit(msgspec.Struct):
    state: str
    worker_id: str = ""
    trace: str | None = None


class _Task(msgspec.Struct):
    id: int
    state: str
    worker_id: str = ""
    trace: str | None = None


class _Status(msgspec.Struct, omit_defaults=True):
    connector: _Unit
    tasks: list[_Task] = []
    type: str = "unknown"


class _Entry(msgspec.Struct, omit_defaults=True):
    status: _Status
    info: msgspec.Raw = msgspec.Raw()  # left undecoded (empty: no expand=info); decoded only for kept connectors


# The answer is split into one raw slice per connector first, then each entry is decoded on its own as the scoping
# loop reaches it: only one connector's structs exist at a time, so a poll's transient memory stays small.
_ENTRIES = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENTRY = msgspec.json.Decoder(_Entry)


class _Odd(Exception):
    """Something the typed path does not normalise (an empty state, say): take the lenient path."""


def _unit_state(value: str) -> str:
    if not value:
        raise _Odd
    return value if value in STATES else _state(value)


def parse_answer(raw: bytes, *, worker_id: str | None = None, keep: Collection[str] = ()) -> Snapshot:
    """Connect's raw answer -> Snapshot, as :func:`parse_expanded` of the decoded JSON would give."""
    try:
        entries = _ENTRIES.decode(raw)
        found_info: list[bool] = []

        def units() -> Iterator[tuple[str, _Unit, list[_Task], str, msgspec.Raw | None]]:
            for name, slice_ in entries.items():
                e = _ENTRY.decode(slice_)
                if e.info:
                    found_info.append(True)
                yield name, e.status.connector, e.status.tasks, e.status.type or "unknown", e.info or None

        snapshot = _scoped(units(), 0, worker_id, keep, raw if worker_id is not None else None, False)
        if not found_info:
            return snapshot
        listing = None  # an answer with configs: the listing keeps only the statuses (a fifth of the size)
        if worker_id is not None:
            listing = msgspec.json.encode({n: {"status": _ENTRY.decode(r).status} for n, r in entries.items()})
        return dataclasses.replace(snapshot, listing=listing, with_configs=True)
    except (msgspec.DecodeError, _Odd):  # ValidationError is a DecodeError
        pass
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ParseError("answer is not JSON") from None
    return parse_expanded(body, worker_id=worker_id, keep=keep)


class AnswerParser:
    """:func:`parse_answer` remembering the last answer (issue 22: decoding it was a third of a poll's CPU at 3,000
    connectors, though between two polls few connectors change).

    - An answer byte for byte the last one (a cluster where nothing changed) is the same Snapshot, returned as it is.
      Only a Snapshot whose ``listing`` is the answer itself is remembered so: it holds those bytes anyway.
    - Otherwise a scoped status-only answer (every poll's, ``--scope worker``) is decoded entry by entry against the
      last one: a connector whose entry is byte for byte the same keeps what it gave (its states, its kept view, the
      same object) and only the others are decoded. The result is what :func:`parse_answer` gives (a property test
      pins it). Answers with configs, unscoped ones and what the typed decoder refuses go to :func:`parse_answer`.
    """

    def __init__(self) -> None:
        self._last: tuple[str | None, frozenset[str], Snapshot] | None = None
        # the last answer's entries: name -> (its bytes, connector state, task states, kept view or None)
        self._entries: dict[str, Entry] = {}
        self._entries_for: tuple[str | None, frozenset[str]] | None = None
        self._last_by_entry: Snapshot | None = None  # the Snapshot those entries made

    def parse(self, raw: bytes, *, worker_id: str | None = None, keep: Collection[str] = ()) -> Snapshot:
        kept = frozenset(keep)
        last = self._last
        if last is not None and last[0] == worker_id and last[1] == kept and last[2].listing == raw:
            return last[2]
        snapshot = self._by_entry(raw, worker_id, kept) if worker_id is not None else None
        if snapshot is None:
            self._entries, self._entries_for = {}, None
            snapshot = parse_answer(raw, worker_id=worker_id, keep=kept)
        self._last = (worker_id, kept, snapshot) if snapshot.listing is raw else None
        return snapshot

    def _by_entry(self, raw: bytes, worker_id: str, kept: frozenset[str]) -> Snapshot | None:
        seen = self._entries if self._entries_for == (worker_id, kept) else {}
        entries: dict[str, Entry] = {}
        conn_counts: dict[str, int] = {}
        task_counts: dict[str, int] = {}
        connectors: dict[str, ConnectorView] = {}
        summarised = 0
        try:
            decoded = _ENTRIES.decode(raw)
            last = self._last_by_entry
            if seen and last is not None and list(decoded) == list(seen):
                changed = _changed_only(raw, decoded, seen, last, worker_id, kept)
                if changed is not None:
                    self._entries, self._last_by_entry = changed[0], changed[1]
                    return changed[1]
            for name, slice_ in decoded.items():
                data = bytes(slice_)
                hit = seen.get(name)
                if hit is None or hit[0] != data:
                    hit = _entry(name, slice_, data, worker_id, kept)
                    if hit is None:
                        return None  # an answer with configs: parse_answer keeps a listing of its statuses only
                entries[name] = hit
                conn_counts[hit[1]] = conn_counts.get(hit[1], 0) + 1
                for state in hit[2]:
                    task_counts[state] = task_counts.get(state, 0) + 1
                if hit[3] is None:
                    summarised += 1
                else:
                    connectors[name] = hit[3]
        except (msgspec.DecodeError, _Odd):
            return None
        self._entries, self._entries_for = entries, (worker_id, kept)
        self._last_by_entry = Snapshot(connectors=connectors, skipped=0, summarised=summarised,
                                       cluster_connectors=conn_counts, cluster_tasks=task_counts, listing=raw,
                                       with_configs=False)
        return self._last_by_entry


Entry = tuple[bytes, str, tuple[str, ...], "ConnectorView | None"]  # an entry's bytes, states and kept view


def _entry(name: str, slice_: msgspec.Raw, data: bytes, worker_id: str, kept: frozenset[str]) -> Entry | None:
    """One connector's entry decoded; None for an entry with configs (AnswerParser leaves those to parse_answer)."""
    e = _ENTRY.decode(slice_)
    if e.info:
        return None
    one = _scoped(iter([(name, e.status.connector, e.status.tasks, e.status.type or "unknown", None)]), 0,
                  worker_id, kept, None, False)
    return (data, _unit_state(e.status.connector.state), tuple(_unit_state(t.state) for t in e.status.tasks),
            one.connectors.get(name))


def _changed_only(raw: bytes, decoded: dict[str, msgspec.Raw], seen: dict[str, Entry], last: Snapshot,
                  worker_id: str, kept: frozenset[str]) -> tuple[dict[str, Entry], Snapshot] | None:
    """The answer's Snapshot from the last one, when the answer names the same connectors in the same order: only
    the entries whose bytes changed are decoded, and the counts moved by what they changed (a poll at 3,000
    connectors with one task changed: 1 ms here against 5 ms counting every entry again). None when an entry turns
    kept or summarised (its place among the kept connectors is the answer's order: the whole loop keeps it)."""
    entries: dict[str, Entry] | None = None
    conn_counts, task_counts = dict(last.cluster_connectors), dict(last.cluster_tasks)
    connectors = last.connectors
    for name, slice_ in decoded.items():
        data = bytes(slice_)
        old = seen[name]
        if old[0] == data:
            continue
        new = _entry(name, slice_, data, worker_id, kept)
        if new is None or (new[3] is None) != (old[3] is None):
            return None
        if entries is None:
            entries, connectors = dict(seen), dict(connectors)
        entries[name] = new
        if new[3] is not None:
            connectors[name] = new[3]
        for counts, before, after in ((conn_counts, (old[1],), (new[1],)), (task_counts, old[2], new[2])):
            for state in before:
                counts[state] -= 1
            for state in after:
                counts[state] = counts.get(state, 0) + 1
    if entries is None:
        return seen, dataclasses.replace(last, listing=raw)
    return entries, Snapshot(connectors=connectors, skipped=0, summarised=last.summarised,
                             cluster_connectors={k: n for k, n in conn_counts.items() if n},
                             cluster_tasks={k: n for k, n in task_counts.items() if n}, listing=raw,
                             with_configs=False)


# --- scoping -------------------------------------------------------------------------------------------------
_SETTLED = frozenset(("RUNNING", "FAILED", "PAUSED", "STOPPED"))  # judged only on the worker that reports them


def shown_here(state: str, unit_worker: str, worker_id: str | None) -> bool:
    """Whether the model judges this unit on this pod (see model.py): on this worker, or not settled."""
    return worker_id is None or unit_worker == worker_id or state not in _SETTLED


def _scoped(units: Iterable[tuple[str, Any, Iterable[Any], str, Any]], skipped: int, worker_id: str | None,
            keep: Collection[str], listing: bytes | None, with_configs: bool) -> Snapshot:
    """One loop for both paths: count every unit by state, keep in full the connectors shown on this pod.

    ``units`` yields (name, connector unit, tasks, type, info); units have ``state``, ``worker_id``, ``trace``
    (and tasks ``id``), as TaskView/ConnectorView or the decoder's structs; ``info`` is Connect's info object
    (parsed, or raw bytes), read only for kept connectors.
    """
    conn_counts: dict[str, int] = {}
    task_counts: dict[str, int] = {}
    kept: dict[str, ConnectorView] = {}
    summarised = 0
    for name, conn, tasks_in, type_, info in units:
        state = _unit_state(conn.state)
        conn_counts[state] = conn_counts.get(state, 0) + 1
        tasks: list[TaskView] = []
        total_tasks = 0
        for t in tasks_in:
            total_tasks += 1
            tstate = _unit_state(t.state)
            task_counts[tstate] = task_counts.get(tstate, 0) + 1
            if worker_id is None or t.worker_id == worker_id or tstate not in _SETTLED:
                tasks.append(t if isinstance(t, TaskView) else TaskView(t.id, tstate, t.worker_id, _trace(t.trace)))
        here = worker_id is None or conn.worker_id == worker_id or state not in _SETTLED
        if not (here or tasks or name in keep):
            summarised += 1
            continue
        config = None
        if info is not None and (worker_id is None or name in keep):
            config = _config(msgspec.json.decode(info) if isinstance(info, msgspec.Raw) else info)
        tasks.sort(key=lambda t: t.id)
        kept[name] = ConnectorView(name=name, state=state, worker_id=conn.worker_id, type=type_,
                                   trace=_trace(conn.trace) if here else None, tasks=tuple(tasks), config=config,
                                   tasks_elsewhere=total_tasks - len(tasks))
    return Snapshot(connectors=kept, skipped=skipped, summarised=summarised, cluster_connectors=conn_counts,
                    cluster_tasks=task_counts, listing=listing, with_configs=with_configs)
