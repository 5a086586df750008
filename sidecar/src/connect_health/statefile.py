"""What the sidecar remembers across its own restarts (``--state-file``), as pure conversions plus one atomic write.

With ``sharedFate`` the kubelet restarts the sidecar together with Connect, so memory held in the process (the pod
restarts a poison connector already cost) was lost at every kill and a connector failing for good crash-looped the
pod. The chart mounts an ``emptyDir`` (it outlives both containers' restarts, not the pod) and passes a file there.

Kept: the pod restarts per connector and which of them were fixed by one; the connectors liveness was failing for
when the file was written (``blamed``: if the sidecar is killed then, that kill is a pod restart spent on them); each
connector's ladder attempts; its last restarts (time, kind, what) for ``/status``. Times are written as wall-clock
seconds (the monotonic clock starts again with each process) and read back onto the new process's monotonic clock.
A file that cannot be read, does not parse, or is another sidecar's (``kind``, ``version``, or another worker id:
another pod's) is ignored with one warning: the sidecar starts with no memory, never with a wrong one.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .ladder import Rung
from .lifecycle import Lifecycle

log = logging.getLogger("connect_health.statefile")

KIND = "connect-health-state"
VERSION = 1
MAX_BYTES = 4 * 1024 * 1024  # bounded by the live connectors; a bigger file is not ours

LastRestarts = Mapping[str, tuple[tuple[float, str, str, str], ...]]  # connector -> ((wall, kind, what, class), ...)
Counts = Mapping[tuple[str, str, str, str, str], int]  # (connector, task, kind, class, outcome) -> restarts


@dataclass(frozen=True)
class Memory:
    """What a state file gives back, on the reading process's monotonic clock."""

    pod_restarts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    restart_fixed: frozenset[str] = frozenset()
    rungs: Mapping[str, Rung] = field(default_factory=dict)
    last_restarts: LastRestarts = field(default_factory=dict)
    killed_for: tuple[str, ...] = ()  # blamed when the previous process ended: a pod restart spent on each
    restart_counts: Counts = field(default_factory=dict)  # connect_health_restarts_total, across restarts
    classes: Mapping[str, str] = field(default_factory=dict)  # failure class of the blamed connectors


def document(worker: str | None, life: Lifecycle, rungs: Mapping[str, Rung], last: LastRestarts, *,
             mono: float, wall: float, counts: Counts | None = None,
             classes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The file's content for the current state (``mono``/``wall``: the same instant on both clocks)."""
    def w(t: float) -> float:
        return round(wall - (mono - t), 3)

    return {
        "kind": KIND, "version": VERSION, "worker": worker,
        "pod_restarts": {n: [w(t) for t in ts] for n, ts in sorted(life.pod_restarts.items())},
        "restart_fixed": sorted(life.restart_fixed),
        "blamed": list(life.blamed),
        "ladder": {n: {"attempts": r.attempts, "next_at": w(r.next_at)} for n, r in sorted(rungs.items())
                   if r.attempts},
        "last_restarts": {n: [[round(e[0], 3), *e[1:]] for e in entries] for n, entries in sorted(last.items())},
        "restart_counts": [[*key, n] for key, n in sorted((counts or {}).items())],
        "classes": {n: c for n, c in sorted((classes or {}).items()) if n in life.blamed},
    }


def memory(doc: Any, worker: str | None, *, mono: float, wall: float) -> Memory:
    """A parsed file back into memory; ValueError (one line) when it is not a state file of this worker."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ValueError("not a connect-health state file")
    if doc.get("version") != VERSION:
        raise ValueError(f"state file version {doc.get('version')!r}, this sidecar reads {VERSION}")
    if doc.get("worker") != worker:
        raise ValueError(f"state file of worker {doc.get('worker')!r}, this is {worker!r}")

    def m(t: Any) -> float:
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            raise ValueError(f"not a time: {t!r}")
        return mono - (wall - float(t))

    def names(value: Any, what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise ValueError(f"{what}: not a list of connector names")
        return value

    def table(value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"{what}: not a map")
        return value

    pods = {str(n): tuple(m(t) for t in ts) for n, ts in table(doc.get("pod_restarts"), "pod_restarts").items()
            if isinstance(ts, list)}
    rungs = {}
    for name, entry in table(doc.get("ladder"), "ladder").items():
        if isinstance(entry, dict) and isinstance(entry.get("attempts"), int) and entry["attempts"] > 0:
            rungs[str(name)] = Rung(attempts=entry["attempts"], next_at=m(entry.get("next_at", wall)))
    last: dict[str, tuple[tuple[float, str, str, str], ...]] = {}
    for name, entries in table(doc.get("last_restarts"), "last_restarts").items():
        if isinstance(entries, list):  # entries of 3 items: written before the failure classes (no class: unknown)
            last[str(name)] = tuple((float(e[0]), str(e[1]), str(e[2]), str(e[3]) if len(e) == 4 else "unknown")
                                    for e in entries if isinstance(e, list) and len(e) in (3, 4)
                                    and isinstance(e[0], (int, float)))
    counts: dict[tuple[str, str, str, str, str], int] = {}
    raw_counts = doc.get("restart_counts", [])
    for item in raw_counts if isinstance(raw_counts, list) else ():
        if (isinstance(item, list) and len(item) == 6 and all(isinstance(x, str) for x in item[:5])
                and isinstance(item[5], int) and not isinstance(item[5], bool) and item[5] > 0):
            counts[(item[0], item[1], item[2], item[3], item[4])] = item[5]
    raw_classes = doc.get("classes", {})
    classes = {str(n): c for n, c in raw_classes.items() if isinstance(c, str)} if isinstance(raw_classes, dict) else {}
    return Memory(pod_restarts=pods, restart_fixed=frozenset(names(doc.get("restart_fixed", []), "restart_fixed")),
                  rungs=rungs, last_restarts=last, killed_for=tuple(names(doc.get("blamed", []), "blamed")),
                  restart_counts=counts, classes=classes)


def read(path: str, worker: str | None, *, mono: float, wall: float) -> Memory:
    """The memory in ``path``; an empty Memory (and one warning) when there is none to trust."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return Memory()
    except OSError as exc:
        log.warning("state file %s ignored: cannot read it (%s): starting with no memory", path, exc.strerror or exc)
        return Memory()
    try:
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        return memory(json.loads(data), worker, mono=mono, wall=wall)
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError, IndexError) as exc:
        log.warning("state file %s ignored: %s: starting with no memory", path, str(exc)[:200])
        return Memory()


_COUNT = itertools.count()


def write(path: str, doc: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically (a temporary file in its folder, fsync, rename): a reader, or the next process
    after a kill mid-write, sees the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    # A name of our own rather than tempfile.mkstemp: tempfile brings shutil, bz2 and lzma (0.7 MB of RSS, issue 22).
    # O_EXCL: a leftover of an earlier process with the same pid and count is removed and the write tried again.
    tmp = os.path.join(folder, f".state-{os.getpid()}-{next(_COUNT)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
