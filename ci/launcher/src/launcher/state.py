"""State files: what an `up` process (``launcher up``, the demo) runs, so that another terminal can find and stop it.

<workdir>/state.json holds the `up` process's pid and command line, "ready", the stack's state (broker, workers and
the services added to it: PostgreSQL, sidecars, ...) and whatever the caller adds (the demo's URLs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .errors import StackError
from .net import is_listening, wait_until
from .pins import DEFAULT_WORKDIR
from .postgres import TEMP_PREFIX
from .process import cmdline, pid_matches
from .stack import Stack


def _quiet(msg: str) -> None:
    pass


def state_file(workdir: str | os.PathLike[str]) -> Path:
    return Path(workdir).resolve() / "state.json"


def load_state(workdir: str | os.PathLike[str] = DEFAULT_WORKDIR) -> dict[str, Any] | None:
    """The state written by an `up` process (pids, ports, URLs, log paths), or None."""
    try:
        state = json.loads(state_file(workdir).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


class StateWriter:
    """Writes <workdir>/state.json for an `up` process: call save() after each stage (so that `down` also stops a
    start that hangs), save(ready=True) once everything runs, remove() at the end."""

    def __init__(self, workdir: str | os.PathLike[str], stack: Stack, extra: Mapping[str, Any] | None = None) -> None:
        self.path = state_file(workdir)
        self.stack = stack
        self.extra = dict(extra or {})
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def save(self, ready: bool = False) -> None:
        state = {"up_pid": os.getpid(), "up_marker": cmdline("self") or "", "ready": ready,
                 "started_at": self.started_at, **self.stack.state(), **self.extra}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def up_alive(state: Mapping[str, Any] | None) -> bool:
    """The `up` process that wrote this state still runs."""
    if not state:
        return False
    return pid_matches(state.get("up_pid"), str(state.get("up_marker") or ""))


class Recorded(NamedTuple):
    """A process a state file records."""

    name: str
    pid: int
    marker: str
    stop_signal: int


def recorded_services(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The state of every service a state file records, in start order."""
    out = [state.get("broker") or {}, *(state.get("workers") or []), *(state.get("services") or [])]
    return [s for s in out if isinstance(s, dict) and s]


def recorded_processes(state: Mapping[str, Any]) -> list[Recorded]:
    """(name, pid, marker, stop signal) of each process a state file records (those with a pid)."""
    return [Recorded(str(s.get("name")), int(s["pid"]), str(s.get("marker") or ""),
                     int(s.get("stop_signal") or signal.SIGTERM))
            for s in recorded_services(state) if s.get("pid") and s.get("marker")]


def state_ports(state: Mapping[str, Any]) -> list[int]:
    """Every TCP port a state file records."""
    return [int(p) for s in recorded_services(state) for p in s.get("ports") or [] if p]


def _stop(p: Recorded, timeout: float, group: bool = True) -> None:
    """Its stop signal (to its process group: every service is a group leader), SIGKILL after timeout."""
    kill = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(p.pid, p.stop_signal)
        kill(p.pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_matches(p.pid, p.marker):
        time.sleep(0.2)
    if pid_matches(p.pid, p.marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(p.pid, signal.SIGKILL)


def down(workdir: str | os.PathLike[str] = DEFAULT_WORKDIR, timeout: float = 30.0,
         progress: Callable[[str], None] = _quiet) -> bool:
    """Stop what an `up` process started in workdir: the `up` process (it stops its children), then any of them
    still alive. False when there is no state file."""
    state = load_state(workdir)
    if state is None:
        progress(f"nothing to stop: no state file in {workdir}")
        return False
    up_pid = state.get("up_pid")
    if up_alive(state) and up_pid != os.getpid():
        progress(f"stopping the `up` process (pid {up_pid})")
        _stop(Recorded("up", int(up_pid or 0), str(state.get("up_marker")), signal.SIGTERM), timeout, group=False)
    for p in recorded_processes(state):
        if pid_matches(p.pid, p.marker):
            progress(f"stopping {p.name} (pid {p.pid})")
            _stop(p, 20)
    for s in recorded_services(state):  # the private data dir of a PostgreSQL run as root
        d = Path(s.get("dir") or "/nonexistent")
        if d.name.startswith(TEMP_PREFIX) and d.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(d, ignore_errors=True)
    ports = state_ports(state)
    with contextlib.suppress(StackError):
        wait_until(lambda: not any(is_listening(p) for p in ports), 15, "the stack's ports to close")
    state_file(workdir).unlink(missing_ok=True)
    return True
