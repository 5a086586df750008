"""Calls that end at their deadline, whatever the peer trickles.

A socket timeout bounds each read, not a call: a server sending its response headers (or body) one byte within
every read timeout keeps a call running for as long as it likes. Here one watchdog thread shuts down the sockets
of a call still running at its deadline, so the blocked read returns at once and the caller sees
:attr:`Call.expired`. The sockets are registered by transport.py (``WATCHDOG.watch``) for the call running in the
current thread (``with WATCHDOG.call(budget) as call``).

Not covered: a TLS handshake trickled by the server (the socket is registered once the handshake is done); each of
its reads is still bounded by the connect timeout.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Call:
    """One call's deadline and the sockets it opened."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.done = False
        self.sockets: list[socket.socket] = []


class Watchdog:
    """One daemon thread for every call: shuts down the sockets of calls past their deadline."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Call]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    @contextmanager
    def call(self, budget: float) -> Iterator[Call]:
        c = Call(time.monotonic() + budget)
        with self._lock:
            heapq.heappush(self._heap, (c.deadline, next(self._seq), c))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="call-deadlines", daemon=True)
                self._thread.start()
            self._lock.notify()
        previous = getattr(self._local, "call", None)
        self._local.call = c
        try:
            yield c
        finally:
            self._local.call = previous
            with self._lock:
                c.done = True  # left in the heap: dropped when its deadline comes (no search, no re-heapify)
                c.sockets.clear()

    def watch(self, sock: socket.socket | None) -> None:
        """Put ``sock`` under the current thread's call (if any); shut it down at once if that call has expired."""
        c: Call | None = getattr(self._local, "call", None)
        if c is None or sock is None:
            return
        with self._lock:
            if c.done:
                return
            if c.expired:
                _shut(sock)
            else:
                c.sockets.append(sock)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, c = heapq.heappop(self._heap)
                    if not c.done:
                        c.expired = True
                        for sock in c.sockets:
                            _shut(sock)
                self._lock.wait(self._heap[0][0] - now if self._heap else None)


def _shut(sock: socket.socket) -> None:
    """Make every blocked and future read of ``sock`` return (closing is left to its owner)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


WATCHDOG = Watchdog()
