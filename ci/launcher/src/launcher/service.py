"""Service: one process of the stack. A subclass says what to run and how to tell it is ready; starting, stopping,
pausing and reporting are written once, here.

A subclass sets ``name``, ``dir`` and ``log`` (``Service.__init__`` does, from workdir and name) and implements:

- ``command()``: the argv to run;
- ``ready()``: True once it serves (a probe that may raise: any exception counts as "not yet");
- ``ports()``: the ``Port`` s it listens on (checked free before the start, waited closed after the stop); a
  service with one port sets ``self.listener`` (``claim_port(...)``) instead, and gets ``port`` and ``ports()``.

and may override ``prepare()`` (write config files, format storage; runs before each start), ``env()``,
``stop_signal``, ``run_as``, ``start_timeout``, ``ready_interval``, ``describe()``, ``waiting_for()``, ``marker()`` and
``state()``.
"""

from __future__ import annotations

import abc
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from .errors import ServiceFailed, StackError
from .net import Port, require_free, wait_closed, wait_until
from .process import Proc, log_tail


class Service(abc.ABC):
    """One process of the stack on 127.0.0.1, with its files in <workdir>/<name>/ and its output in ``log``."""

    stop_signal: int = signal.SIGTERM
    run_as: str | None = None  # a system user to run as (only when the launcher runs as root)
    start_timeout: float = 60.0
    stop_timeout: float = 20.0
    ready_interval: float = 0.25

    def __init__(self, workdir: str | os.PathLike[str], name: str, log_name: str) -> None:
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.dir = self.workdir / name
        self.log = self.dir / log_name
        self.proc: Proc | None = None
        self.start_seconds: float | None = None  # how long the last start took, once it succeeded

    # -- what a subclass says ------------------------------------------------------------------------------

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The argv of the process."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """True once the process serves (called repeatedly while it starts; an exception means not yet)."""

    listener: Port  # the port of a service with one; one with more overrides ports()

    @property
    def port(self) -> int:
        return self.listener.number

    def ports(self) -> list[Port]:
        """The TCP ports it listens on."""
        return [self.listener]

    def prepare(self) -> None:
        """Runs before each start: config files, storage. The default makes the service's directory."""
        self.dir.mkdir(parents=True, exist_ok=True)

    def env(self) -> Mapping[str, str] | None:
        """The process environment (None: the launcher's own)."""
        return None

    def describe(self) -> str:
        """What it is, for progress lines ("starting <describe()>")."""
        return self.name

    def waiting_for(self) -> str:
        """How the wait for ready() is named in a timeout message."""
        return f"{self.name} to be ready"

    def marker(self) -> str:
        """A piece of the process's command line that no other process has (``down`` checks it before it signals
        a pid from a state file, so a recycled pid is left alone): its arguments as started, by default."""
        return " ".join(self.proc.cmd[1:]) if self.proc else ""

    def state(self) -> dict[str, Any]:
        """What a state file records about it (``down`` stops it from there)."""
        return {"name": self.name, "pid": self.pid, "ports": [p.number for p in self.ports()],
                "marker": self.marker(), "stop_signal": int(self.stop_signal), "log": str(self.log),
                "dir": str(self.dir)}

    # -- written once --------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def start(self, timeout: float | None = None) -> Self:
        """Start the process and wait until ready() (ServiceFailed with its log's tail when it does not get there;
        PortInUse before anything starts when a port is taken). A running service is left as it is."""
        if self.alive():
            return self
        t0 = time.monotonic()
        for port in self.ports():
            require_free(port)
        self.prepare()
        self.proc = Proc(self.name, self.command(), self.log, cwd=self.dir, env=self.env(), user=self.run_as,
                         stop_signal=self.stop_signal)
        try:
            wait_until(self.ready, self.start_timeout if timeout is None else timeout, self.waiting_for(),
                       interval=self.ready_interval, check=self.check_running)
        except StackError as e:
            self.stop()
            raise e if isinstance(e, ServiceFailed) else self.failed(str(e)) from None
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Its stop signal to the process group, SIGKILL after timeout; then wait until its ports are closed."""
        if self.proc is not None:
            self.proc.stop(timeout=self.stop_timeout if timeout is None else timeout)
            self.proc = None
        wait_closed(p.number for p in self.ports())

    def restart(self, timeout: float | None = None) -> Self:
        self.stop()
        return self.start(timeout)

    def failed(self, reason: str, lines: int = 30) -> ServiceFailed:
        return ServiceFailed(self.name, reason, self.log, self.log_tail(lines))

    def check_running(self) -> None:
        """ServiceFailed when the process was started and has exited since."""
        if self.proc is not None and not self.proc.alive():
            raise self.failed(f"exited unexpectedly (code {self.proc.popen.returncode})")

    def pause(self) -> None:
        """SIGSTOP the process group: it stops answering anything, like a hung JVM."""
        if self.proc is None:
            raise StackError(f"{self.name} is not running")
        self.proc.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is None:
            raise StackError(f"{self.name} is not running")
        self.proc.signal_group(signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def supervise(services: Iterable[Service], tick: Callable[[], None] | None = None, interval: float = 1.0) -> None:
    """Run until interrupted (see process.foreground): ServiceFailed as soon as one of services has exited;
    tick(), when given, every interval seconds."""
    services = list(services)
    while True:
        for svc in services:
            svc.check_running()
        if tick is not None:
            tick()
        time.sleep(interval)
