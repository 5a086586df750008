"""The HTTP server of ``serve``: waitress, guarded so that no client can starve the kubelet's probes (issue 18, 2).

Whoever reaches the port (any pod, NetworkPolicy being off by default) could hold waitress's connections: a
header line every few seconds resets an idle timeout forever, 4,000 such connections stopped it accepting, and
past the open-file limit every accept() failed with a traceback. The guard adds what waitress lacks:

- **a deadline for a whole request**: from accept (or the end of the previous answer) a connection has
  ``REQUEST_DEADLINE`` seconds to deliver a complete request, headers and body, and to read its answer; then it is
  closed, however often it trickles a byte. A request being served has no deadline (the pages bound themselves).
- **a bound per client address** (``PER_ADDRESS``) and **a total bound** below the open-file limit. A new connection
  over a bound is not refused: it takes the place of the oldest connection waiting for its request, from its own
  address at the per-address bound, else from the address holding the most. The kubelet cannot be told apart by
  its address (hostNetwork pods share the node's), but it opens one fresh connection per probe and sends its
  request at once, so the connection evicted is always an older one: a flood from other addresses can never
  starve it, and one from its own address must open ``PER_ADDRESS`` connections within the few milliseconds a
  probe takes.
- **all pending connections accepted at once** (waitress takes one per loop pass, and a pass walks every
  connection), so a probe never waits behind a backlog of flooders; what a new connection already sent is read at
  once, so a complete request (the kubelet sends its own right after connecting) is being served before the rest
  of the batch can evict it.
- **the open-file soft limit raised to the hard limit** at start (:func:`raise_open_files`), logged once.
- **refusals and failed accepts counted**, one log line per ``REPORT_EVERY`` seconds with the counts, never a
  traceback each (:class:`Tally`); on EMFILE a waiting connection is closed to free a descriptor.

:class:`Admission` is the policy alone (which connections to close to admit one more), tested by tables; the
waitress subclasses only feed it.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from .admission import (  # the policy, shared with the probe port's process (admission.py)
    HEARD,
    PER_ADDRESS,
    REQUEST_DEADLINE,
    SERVED,
    UNHEARD,
    Admission,
    Tally,
    accept_pending,
    address_of,
    make_way,
)

log = logging.getLogger("connect_health.server")

MAX_CONNECTIONS = 1024  # total, also kept FD_RESERVE below the open-file limit
PROBE_CONNECTIONS = 256  # total of the probe port (--probe-port), taken from the same budget
FD_RESERVE = 64  # descriptors left for the poller's connections to Connect, the log, Events, waitress's trigger


def raise_open_files() -> tuple[int, int]:
    """Raise this process's open-file soft limit to its hard limit; the (old, new) soft limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20  # Linux refuses an infinite RLIMIT_NOFILE; its default nr_open
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard


PAGES_NICE = 5  # the main port's threads' niceness above the poller's and the probe process's


def yield_to_probes() -> int:
    """Lower the calling thread's priority by PAGES_NICE, and so that of the threads it starts from now on (Linux
    keeps niceness per thread): ``serve`` calls it after starting the poller and the probe process, before waitress
    starts the threads that build and send /metrics and /status. When both want a core, the probe process and the
    poller get it first (bench/scale.py: /livez p99 under 24 page readers). Within the sidecar container's cgroup
    nothing else competes; the niceness of other containers' processes is not compared with it. Returns the new
    niceness (unchanged where the system refuses)."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + PAGES_NICE))
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, tid)


def total_bound(open_files: int) -> int:
    """Connections held at once: MAX_CONNECTIONS, or fewer so FD_RESERVE descriptors stay free."""
    return max(8, min(MAX_CONNECTIONS, open_files - FD_RESERVE))


def split_bound(open_files: int) -> tuple[int, int]:
    """Total bounds of the main port and of a probe port sharing ``open_files``: the probe port's a quarter,
    at most PROBE_CONNECTIONS (probes need few; its bounds only have to outlast a flood's)."""
    total = total_bound(open_files)
    probes = max(8, min(PROBE_CONNECTIONS, total // 4))
    return max(8, total - probes), probes


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    """waitress's channel, remembering since when it has been waiting for its next request."""

    server: GuardedServer

    def __init__(self, server: GuardedServer, sock: socket.socket, addr: Any, adj: Any,
                 map: dict[int, Any] | None = None) -> None:
        self.waiting_since = time.monotonic()
        self.served = False
        self.born = server.passes
        super().__init__(server, sock, addr, adj, map=map)

    def _stale(self) -> bool:
        """Whether an event now is not this connection's: in the loop pass that accepted it, its descriptor number
        may be that of a connection closed earlier in the pass (evicted), whose readiness poll() had already
        reported; dispatched here, a spurious read (EAGAIN) would close it. poll() is level-triggered: real
        events come again on the next pass."""
        return self.born == self.server.passes

    def handle_read_event(self) -> None:
        if not self._stale():
            super().handle_read_event()

    def handle_write_event(self) -> None:
        if not self._stale():
            super().handle_write_event()

    def handle_expt_event(self) -> None:
        if not self._stale():
            super().handle_expt_event()

    def handle_close(self) -> None:
        if not self._stale():  # a hang-up reported for the descriptor's previous owner; a real one comes again
            super().handle_close()

    def cut(self) -> None:
        """Close now (evicted, past its deadline), whenever it was accepted."""
        super().handle_close()

    def service(self) -> None:
        try:
            super().service()
        finally:
            self.served = True
            self.waiting_since = time.monotonic()  # the answer is written: the next request's deadline starts

    def del_channel(self, map: dict[int, Any] | None = None) -> None:
        super().del_channel(map)
        self.server.admission.remove(address_of(self.addr), self)


def _waiting(channel: GuardedChannel) -> bool:
    return not channel.requests


def _rank(channel: GuardedChannel) -> int:
    if channel.requests:
        return SERVED
    return HEARD if channel.request is not None or channel.served else UNHEARD


class GuardedServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with the request deadline, the bounds and the accept loop described above."""

    channel_class = GuardedChannel

    def __init__(self, app: Any, sock: socket.socket, adj: Any, dispatcher: Any, *, total: int,
                 per_address: int = PER_ADDRESS, deadline: float = REQUEST_DEADLINE, tally: Tally | None = None
                 ) -> None:
        self.admission: Admission[GuardedChannel] = Admission(per_address, total)
        self.deadline = deadline
        self.tally = tally or Tally(log)
        self._paused_until = 0.0
        self.passes = 0
        super().__init__(app, map={}, _sock=sock, dispatcher=dispatcher, adj=adj, bind_socket=False,
                         sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))

    def readable(self) -> bool:
        self.passes += 1  # poll() asks each object once per loop pass, before it waits
        accepting = bool(super().readable())  # also runs maintenance() every cleanup_interval
        return accepting and time.monotonic() >= self._paused_until

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # waitress's idle timeout
        cutoff = time.monotonic() - self.deadline
        late = [ch for ch in self.active_channels.values() if _waiting(ch) and ch.waiting_since < cutoff]
        trickled = 0
        for channel in late:
            trickled += channel.request is not None  # part of a request came, never all of it
            channel.cut()  # now, not will_close: a client that reads nothing never makes it writable
        if trickled:
            self.tally.count(f"closed with a request unfinished after {self.deadline:g} s", trickled)
        self.tally.flush()

    def handle_accept(self) -> None:
        accept_pending(self.socket, self.tally, self._admit, self._out_of_files)

    def _out_of_files(self) -> None:
        victim = self.admission.make_room(_rank)
        if victim is not None:
            victim.cut()
        else:  # nothing to free: stop polling the listener for a moment instead of spinning on it
            self._paused_until = time.monotonic() + 0.2

    def _admit(self, conn: socket.socket, addr: Any) -> None:
        address = address_of(addr)
        victims = make_way(self.admission, self.tally, address, _rank)
        if victims is None:
            conn.close()
            return
        for victim in victims:
            victim.cut()
        try:
            self.set_socket_options(conn)
            channel = self.channel_class(self, conn, addr, self.adj, map=self._map)
        except OSError:
            conn.close()
            return
        self.admission.add(address, channel)
        # Read what already came: a request sent right after connecting (as the kubelet's is) is then being served
        # and cannot be evicted by the rest of this batch of accepts.
        try:
            arrived = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:  # nothing yet (EAGAIN), or an error the loop will see
            arrived = b""
        if arrived:
            channel.handle_read()


def create(app: Any, sock: socket.socket, total: int, **adjustments: Any) -> GuardedServer:
    """The guarded waitress server for ``app`` on the bound socket ``sock``, holding at most ``total``."""
    adj = Adjustments(**adjustments, connection_limit=total + 16, log_socket_errors=False)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    return GuardedServer(app, sock, adj, dispatcher, total=total)
