"""``--probe-port`` answered by a process of its own, so that no page reader can slow a probe (issue 22).

In one process every thread waits for the GIL: 24 clients reading /metrics and /status at 3,000 connectors kept
the probe thread waiting 6-10x its quiet p99 (bench/results/scale.md). So ``serve`` starts a probe process
(probe_child.py: a fresh interpreter of about 4 MB of its own, started with posix_spawn, safe beside threads) that
answers the probe port from the answers the main process renders once per View (app.ProbeAnswers), written down a
pipe by a feeder thread whenever the View changes (looked at every ``LOOK_EVERY`` s) and at least every
``HEARTBEAT`` s. The same thread reads the probe process's log lines and logs them here.

Lifecycles, so that the probe process can neither outlive nor misreport the main process:
- the main process ends (exit, SIGKILL, OOM kill): the feed ends and the probe process exits at once, closing the
  probe port, so the kubelet's next probe is refused as it would have been before;
- the main process hangs or is stopped (no frame for ``probe_child.STALE_AFTER`` s): every answer is 503 naming
  that, where one process would not have answered at all;
- the probe process ends (a bug, an OOM kill of it alone) or cannot start: the feeder sees it within
  ``LOOK_EVERY`` s, and the main process answers the probe port itself (probe_listener in a thread, as before this
  module) on the listening socket both held, so the probes waiting in its backlog are answered too; one line is
  logged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .probe_child import BOOT, FEED_FD, LOG_FD, SOCKET_FD, frame
from .probe_listener import ProbeListener

log = logging.getLogger("connect_health.probe_process")
child_log = logging.getLogger("connect_health.probe_listener")

Rendered = dict[str, tuple[str, bytes]]  # path -> (status line, JSON body), as app.ProbeAnswers renders them
LOOK_EVERY = 0.05  # seconds between two looks at the poller's View (and at the probe process) by the feeder
HEARTBEAT = 1.0  # the answers are sent at least this often, changed or not
LEVELS = {"WARNING": logging.WARNING, "ERROR": logging.ERROR}


class ProbeProcess:
    """The probe port's process (``start``), fed from ``render()``; or, when it cannot run, a listener here."""

    def __init__(self, sock: socket.socket, render: Callable[[], Rendered], *, total: int) -> None:
        self.sock = sock
        self.total = total
        self.render = render
        self.pid: int | None = None
        self.listener: ProbeListener | None = None  # this process's own, once it answers the port itself
        self._feed_w: int | None = None
        self._log_r: int | None = None
        self._log_buf = b""
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="probe-feeder", daemon=True)

    def start(self) -> None:
        self.sock.listen(1024)  # probes arriving before the probe process runs wait in the backlog
        feed_r, feed_w = os.pipe()
        log_r, log_w = os.pipe()
        rendered = self.render()
        os.write(feed_w, frame(rendered))  # the first answers, there before the probe process reads its feed
        package = str(Path(__file__).resolve().parent.parent)
        # Copies above the three targets first, so that no dup2 overwrites a source still to be copied.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (self.sock.fileno(), feed_r, log_w)]
        try:
            self.pid = os.posix_spawn(
                sys.executable, [sys.executable, "-I", "-S", "-B", "-c", BOOT, package, str(self.total)],
                {},  # nothing of this process's environment (secrets among it) is needed there
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, target)
                              for fd, target in zip(high, (SOCKET_FD, FEED_FD, LOG_FD), strict=True)])
        except OSError as exc:
            log.error("the probe process could not start (%s); the probe port is answered by this process", exc)
            for fd in (feed_r, feed_w, log_r, log_w, *high):
                os.close(fd)
            self._take_over()
            return
        for fd in (feed_r, log_w, *high):
            os.close(fd)
        os.set_blocking(log_r, False)
        self._feed_w, self._log_r = feed_w, log_r
        self._feeder.start()

    def _feed(self) -> None:
        last: Rendered | None = None
        sent_at = 0.0
        while not self._stop.wait(LOOK_EVERY):
            self._relay_log()
            if self._ended():
                log.error("probe process %s ended; the probe port is answered by this process now", self.pid)
                self.pid = None
                self._take_over()
                return
            rendered = self.render()
            now = time.monotonic()
            if rendered is last and now - sent_at < HEARTBEAT:
                continue
            try:
                assert self._feed_w is not None
                out = memoryview(frame(rendered))
                while out:  # blocking: the probe process reads at once (a few kB per frame)
                    out = out[os.write(self._feed_w, out):]
            except OSError:
                continue  # it ended: seen by _ended at the next look
            last, sent_at = rendered, now

    def _relay_log(self) -> None:
        """The probe process's log lines, logged here (redacted and formatted as every line of this process)."""
        if self._log_r is None:
            return
        try:
            while chunk := os.read(self._log_r, 1 << 16):
                self._log_buf += chunk
        except BlockingIOError:
            pass
        except OSError:
            return
        *lines, self._log_buf = self._log_buf.split(b"\n")
        for line in lines:
            level, _, message = line.decode("utf-8", "replace").partition(" ")
            child_log.log(LEVELS.get(level, logging.WARNING), "%s", message)

    def _ended(self) -> bool:
        """Whether the probe process has ended (reaped here if so)."""
        if self.pid is None:
            return True
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        return done != 0

    def _take_over(self) -> None:
        self.listener = ProbeListener(self.sock, self.render, child_log, total=self.total)
        self.listener.start()

    def stop(self) -> None:
        self._stop.set()
        if self._feeder.is_alive():
            self._feeder.join(2)
        if self._feed_w is not None:
            os.close(self._feed_w)  # the probe process reads the end of its feed and exits
            self._feed_w = None
        if self.pid is not None:
            deadline = time.monotonic() + 2
            while not self._ended() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not self._ended():
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            self.pid = None
        if self._log_r is not None:
            self._relay_log()
            os.close(self._log_r)
            self._log_r = None
        if self.listener is not None:
            self.listener.stop()
        else:
            self.sock.close()
