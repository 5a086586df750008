"""Child processes that never outlive the launcher, and the foreground loop of `up` commands.

Every process is started in its own process group and is killed with its group by ``Proc.stop()``, by an atexit
hook, on SIGTERM/SIGHUP, and (through PR_SET_PDEATHSIG) when the Python process that started it dies.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

_LIVE: set[Proc] = set()
_LIVE_LOCK = threading.Lock()
_TEMP_DIRS: list[Path] = []
_PR_SET_PDEATHSIG = 1
_HANDLERS_INSTALLED = False


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that forked it dies (so no JVM outlives a crash)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; atexit and signal handlers remain
        pass


def user_ids(user: str) -> dict[str, Any]:
    """subprocess keyword arguments that run a child as this system user (root only)."""
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class Proc:
    """One child process in its own process group, with its output appended to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], log: Path, cwd: Path, env: Mapping[str, str] | None = None,
                 user: str | None = None, stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.cmd = list(cmd)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        # PR_SET_PDEATHSIG fires when the forking *thread* ends: only ask for it from the main thread.
        main = threading.current_thread() is threading.main_thread()
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                env=dict(env) if env is not None else None, start_new_session=True,
                preexec_fn=_die_with_parent if main else None, **(user_ids(user) if user else {}))
        self.pid = self.popen.pid
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_signal_handlers()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, sig: int | None = None, timeout: float = 20.0) -> int | None:
        """Signal the group (default: its stop_signal), wait up to timeout, then SIGKILL it. Returns the exit code."""
        self.ask_to_stop(sig)
        return self.reap(timeout)

    def ask_to_stop(self, sig: int | None = None) -> None:
        """The first half of stop(): the signal (SIGCONT after it: a SIGSTOPped process cannot handle it)."""
        if self.alive():
            self.signal_group(self.stop_signal if sig is None else sig)
            self.signal_group(signal.SIGCONT)

    def reap(self, timeout: float) -> int | None:
        """The second half of stop(): wait up to timeout for the exit, then SIGKILL the group."""
        try:
            self.popen.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.popen.returncode


def remove_at_exit(directory: Path) -> None:
    """Delete this directory when the launcher exits (with the processes that use it)."""
    _TEMP_DIRS.append(directory)


def cleanup_all() -> None:
    """Stop every process started here (their stop signal, SIGKILL after 10 s) and remove the temporary dirs."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:  # all at once, then one deadline for all
        p.ask_to_stop()
    deadline = time.monotonic() + 10
    for p in procs:
        p.reap(deadline - time.monotonic())
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    _TEMP_DIRS.clear()


atexit.register(cleanup_all)


def _install_signal_handlers() -> None:
    """On SIGTERM/SIGHUP (whose default would skip atexit), stop our children, then die of the same signal."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _HANDLERS_INSTALLED = True

    def handler(signum: int, frame: FrameType | None) -> None:
        cleanup_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """The body of an `up` command: SIGINT, SIGTERM and SIGHUP end it as Ctrl-C does (quietly), and from then on
    they are ignored, so that a second Ctrl-C cannot cut the cleanup after the `with` short.

    SIGINT is set too: a shell that starts `up` in the background leaves SIGINT ignored, and Python keeps it so.
    """
    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def cmdline(pid: int | str) -> str | None:
    """The command line of a process (arguments joined by spaces), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def pid_matches(pid: int | None, marker: str) -> bool:
    """pid is alive and its command line contains marker (which guards against a recycled pid)."""
    if not pid or not marker:
        return False
    line = cmdline(pid)
    return line is not None and marker in line


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a log; when a process died, from its last ERROR on (stack frames trimmed), which says why."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    all_lines = data.splitlines()[-400:]
    errors = [i for i, line in enumerate(all_lines) if _ERROR_LINE.search(line)]
    if not errors:
        return "\n".join(all_lines[-lines:])
    out: list[str] = []
    frames = 0
    for line in all_lines[errors[-1]:]:
        frames = frames + 1 if line.startswith("\tat ") else 0
        if frames <= 3:
            out.append(line)
    return "\n".join(out[:lines])


_ERROR_LINE = re.compile(r"\] (ERROR|FATAL) |^Error: |^Exception in thread |FATAL:  ")
