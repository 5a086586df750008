"""``--probe-port`` answered by a process of its own, so that no page reader can slow a probe (issue 22).

In one process, every thread waits for the GIL: 24 clients reading /metrics and /status kept the probe thread of
probe_listener.py waiting 6-10x its quiet p99 (bench/results/scale.md). Here ``serve`` forks, before any thread
starts, one child whose only thread is probe_listener's epoll loop. The main process renders the probe answers once
per View, as before (app.ProbeAnswers), and a feeder thread writes them down a pipe to the child: whenever the View
changes (looked at every ``LOOK_EVERY`` s) and at least every ``HEARTBEAT`` s.

Lifecycles, so that the child can neither outlive nor misreport the main process:
- the main process ends (exit, SIGKILL, OOM kill): the pipe reaches end of file and the child exits at once, closing
  the probe port, so the kubelet's next probe is refused as it would have been before;
- the main process hangs (the feeder gets no GIL, SIGSTOP): after ``STALE_AFTER`` s without a word the child answers
  every path 503 naming that, where one process would not have answered at all;
- the child ends (a bug, an OOM kill of the child alone): the feeder sees it within ``LOOK_EVERY`` s, reaps it, and
  the main process answers the probe port itself on the listening socket both held (probe_listener in a thread, as
  before this module), so the probes pending in its backlog are answered too; one line is logged.

Memory: the child is forked after every import and ``gc.freeze()``, so it shares the main process's pages and adds
only what it writes (measured in bench/scale.py and measure.py: the pair's RSS counts each page once).
"""

from __future__ import annotations

import gc
import logging
import marshal
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from .probe_listener import ProbeListener

log = logging.getLogger("connect_health.probe_process")

Rendered = dict[str, tuple[str, bytes]]  # path -> (status line, JSON body), as app.ProbeAnswers renders them
LOOK_EVERY = 0.05  # seconds between two looks at the poller's View by the feeder
HEARTBEAT = 1.0  # the answers are sent at least this often, changed or not
STALE_AFTER = 10.0  # seconds without a word from the main process before the child answers 503
_HEADER = struct.Struct(">I")
MAX_FRAME = 16 << 20  # a frame longer than this is not the feeder's: the child exits (the main process takes over)


def stale_answers(paths: Iterable[str], silent_for: float) -> Rendered:
    body = ('{"status": "fail", "reasons": ["the sidecar\'s main process has sent no verdict for '
            f'{silent_for:.0f} s (hung or stopped)"]}}').encode()
    return {str(path): ("503 SERVICE UNAVAILABLE", body) for path in paths}


def frame(rendered: Rendered) -> bytes:
    data = marshal.dumps(rendered)
    return _HEADER.pack(len(data)) + data


class Feed:
    """The child's side of the pipe: the latest answers, whole frames only, and how long since the last one."""

    def __init__(self, initial: Rendered, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.answers = initial
        self.heard = clock()
        self._buf = bytearray()

    def take(self, data: bytes) -> None:
        """Add bytes read from the pipe; raises ValueError for a frame the feeder cannot have written."""
        self._buf += data
        self.heard = self.clock()
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise ValueError(f"a frame of {size} bytes")
            if len(self._buf) < _HEADER.size + size:
                return
            rendered = marshal.loads(bytes(self._buf[_HEADER.size:_HEADER.size + size]))
            del self._buf[:_HEADER.size + size]
            if not isinstance(rendered, dict):
                raise ValueError("a frame that is not the answers")
            self.answers = rendered

    def current(self) -> Rendered:
        silent = self.clock() - self.heard
        return stale_answers(self.answers, silent) if silent > STALE_AFTER else self.answers


def _child(listener: ProbeListener, pipe_r: int, initial: Rendered) -> None:
    """The child's whole life: answer from the feed until the pipe ends."""
    feed = Feed(initial)
    listener.answers = feed.current
    os.set_blocking(pipe_r, False)

    def ready() -> None:
        try:
            data = os.read(pipe_r, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            listener.halt()  # the main process is gone
            return
        try:
            feed.take(data)
        except ValueError as exc:
            log.error("probe process: %s on the feed; exiting so that the main process answers the probes", exc)
            listener.halt()

    listener.watch(pipe_r, ready)
    listener.run()


class ProbeProcess:
    """Fork the probe port's child (``start``, before any thread), feed it from ``render(view())``."""

    def __init__(self, sock: socket.socket, render: Callable[[], Rendered], *, total: int,
                 close_in_child: list[socket.socket]) -> None:
        self.sock = sock
        self.total = total
        self.render = render
        self.listener: ProbeListener | None = None  # made in the process that answers (its epoll is its own)
        self.close_in_child = close_in_child
        self.pid: int | None = None
        self._pipe_w: int | None = None
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="probe-feeder", daemon=True)
        self.in_process = False  # True once the main process answers the port itself (the child ended)

    def start(self) -> None:
        if threading.active_count() > 1:  # fork copies only this thread: a lock held by another would stay held
            log.warning("probe port answered in this process: %d threads already run", threading.active_count())
            self._take_over()
            return
        initial = self.render()
        pipe_r, pipe_w = os.pipe()
        gc.freeze()  # the objects so far stay out of the collector's way in both processes: their pages stay shared
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(pipe_w)
                for sock in self.close_in_child:
                    sock.close()
                listener = ProbeListener(self.sock, lambda: initial, total=self.total)
                listener.open()
                _child(listener, pipe_r, initial)
            except BaseException as exc:  # noqa: BLE001 (never return into the main process's code)
                if not isinstance(exc, KeyboardInterrupt | SystemExit):
                    log.error("probe process failed: %s", exc)
                    code = 1
            finally:
                os._exit(code)
        os.close(pipe_r)
        self.pid, self._pipe_w = pid, pipe_w
        self._feeder.start()

    def _feed(self) -> None:
        last: Rendered | None = None
        sent_at = 0.0
        while not self._stop.wait(LOOK_EVERY):
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
                assert self._pipe_w is not None
                out = memoryview(frame(rendered))
                while out:  # blocking: the child reads at once (a few kB per frame)
                    out = out[os.write(self._pipe_w, out):]
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.error("probe process %s ended (%s); the probe port is answered by this process now",
                          self.pid, exc)
                self._reap(0.5)
                self._take_over()
                return
            last, sent_at = rendered, now

    def _ended(self) -> bool:
        """Whether the child has ended (reaped here if so): its probes wait in the backlog until taken over."""
        if self.pid is None:
            return True
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        return done != 0

    def _take_over(self) -> None:
        self.in_process = True
        self.listener = ProbeListener(self.sock, self.render, total=self.total)
        self.listener.start()

    def _reap(self, timeout: float) -> None:
        if self.pid is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done = self.pid
            if done:
                self.pid = None
                return
            if time.monotonic() >= deadline:
                try:
                    os.kill(self.pid, 9)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._feeder.is_alive():
            self._feeder.join(2)
        if self._pipe_w is not None:
            os.close(self._pipe_w)  # the child reads end of file and exits
            self._pipe_w = None
        self._reap(2.0)
        if self.listener is not None:
            self.listener.stop()
        else:
            self.sock.close()
