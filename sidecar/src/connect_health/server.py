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

import errno
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger("connect_health.server")

REQUEST_DEADLINE = 5.0  # seconds from accept (or the last answer) to a complete request and its answer read
# Connections one client address may hold. Legitimate clients of one address fit with room to spare: the kubelet
# (at most 3 probes at once, a fresh connection each), Prometheus (1-2 kept alive), a browser on /status (6),
# kubectl port-forwards (all from 127.0.0.1). What it buys: one address cannot make waitress walk more than this
# many of its connections per loop pass (the cost every probe pays), and at the total bound the largest holder
# loses first. A flood sharing the kubelet's address has to get this many connections accepted between the
# kubelet's connect and its request (read at accept) to evict it. 64 would double that margin but let 16
# addresses instead of 32 fill the total bound, doubling the held connections a small flood costs each pass.
PER_ADDRESS = 32
MAX_CONNECTIONS = 1024  # total, also kept FD_RESERVE below the open-file limit
PROBE_CONNECTIONS = 256  # total of the probe port (--probe-port), taken from the same budget
FD_RESERVE = 64  # descriptors left for the poller's connections to Connect, the log, Events, waitress's trigger
REPORT_EVERY = 10.0  # seconds between two log lines about refused connections
ACCEPT_BATCH = 256  # connections accepted per readiness of the listening socket
OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

K = TypeVar("K", bound=Hashable)


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


def total_bound(open_files: int) -> int:
    """Connections held at once: MAX_CONNECTIONS, or fewer so FD_RESERVE descriptors stay free."""
    return max(8, min(MAX_CONNECTIONS, open_files - FD_RESERVE))


def split_bound(open_files: int) -> tuple[int, int]:
    """Total bounds of the main port and of a probe port sharing ``open_files``: the probe port's a quarter,
    at most PROBE_CONNECTIONS (probes need few; its bounds only have to outlast a flood's)."""
    total = total_bound(open_files)
    probes = max(8, min(PROBE_CONNECTIONS, total // 4))
    return max(8, total - probes), probes


Rank = Callable[[Any], int]  # a held connection -> 0: never close it (being served); higher: close it sooner
SERVED, UNHEARD, HEARD = 0, 1, 2  # being served | nothing received yet | part of a request received, or idle
LOOK_AT = 16  # addresses of the largest holders' group compared for the oldest connection


class Admission(Generic[K]):
    """Which held connections to close so that one more from ``address`` fits within the bounds.

    Connections are opaque keys; ``rank`` says which may be closed and which first: never one being served
    (SERVED), first those that sent part of a request or sit idle after an answer (HEARD: a trickler, a kept-alive
    client), last those that sent nothing yet (UNHEARD: maybe a probe whose request is on its way). Within a rank,
    oldest first: the newest connection of a flood is the last to go, and so is a probe's.
    """

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self._held: dict[str, dict[K, int]] = {}  # address -> {connection: admission number}, oldest first
        self._sizes: dict[int, dict[str, None]] = {}  # connections held -> the addresses holding that many
        self._count = 0
        self._seq = 0

    def _resize(self, address: str, old: int, new: int) -> None:
        if old:
            bucket = self._sizes[old]
            del bucket[address]
            if not bucket:
                del self._sizes[old]
        if new:
            self._sizes.setdefault(new, {})[address] = None  # last in its bucket: the address that changed last

    def __len__(self) -> int:
        return self._count

    def held(self, address: str) -> int:
        return len(self._held.get(address, ()))

    def add(self, address: str, key: K) -> None:
        self._seq += 1
        keys = self._held.setdefault(address, {})
        keys[key] = self._seq
        self._count += 1
        self._resize(address, len(keys) - 1, len(keys))

    def remove(self, address: str, key: K) -> None:
        """Forget a connection (closed, evicted); forgetting one twice is harmless."""
        keys = self._held.get(address)
        if keys is not None and keys.pop(key, None) is not None:
            self._count -= 1
            self._resize(address, len(keys) + 1, len(keys))
            if not keys:
                del self._held[address]

    def _first(self, address: str, rank: Callable[[K], int]) -> tuple[int, int, K] | None:
        """(rank, admission number, key) of the address's connection to close first, if any may be."""
        best: tuple[int, int, K] | None = None
        for key, seq in self._held.get(address, {}).items():  # oldest first
            r = rank(key)
            if r > (best[0] if best else 0):
                best = (r, seq, key)
                if r >= HEARD:
                    break
        return best

    def _from_largest(self, rank: Callable[[K], int]) -> tuple[str, K] | None:
        """The connection to close first of the address holding the most (of those with any that may be): among
        addresses holding as many, the highest rank, the first found with HEARD, else the oldest of the first
        LOOK_AT looked at (addresses whose count changed last are looked at last: a kubelet's, one connection per
        probe, is such a one), so that an admission costs the same under a flood from a thousand addresses."""
        for size in sorted(self._sizes, reverse=True):
            best: tuple[tuple[int, int, K], str] | None = None
            for looked, address in enumerate(self._sizes[size]):
                if looked >= LOOK_AT and best is not None:
                    break
                hit = self._first(address, rank)
                if hit is None:
                    continue
                if hit[0] >= HEARD:
                    return address, hit[2]
                if best is None or (-hit[0], hit[1]) < (-best[0][0], best[0][1]):
                    best = (hit, address)
            if best is not None:
                return best[1], best[0][2]
        return None

    def make_room(self, rank: Callable[[K], int]) -> K | None:
        """Close one connection anywhere (out of file descriptors): the largest holder's first to close."""
        victim = self._from_largest(rank)
        if victim is None:
            return None
        self.remove(*victim)
        return victim[1]

    def admit(self, address: str, rank: Callable[[K], int]) -> list[K] | None:
        """The connections to close (already forgotten here) so that a new one from ``address`` fits; None: no
        connection can make room and the new one is to be refused. The caller then ``add``s the new one."""
        victims: list[K] = []
        if self.held(address) >= self.per_address:
            hit = self._first(address, rank)
            if hit is None:
                return None
            self.remove(address, hit[2])
            victims.append(hit[2])
        if self._count >= self.total:
            other = self._from_largest(rank)
            if other is None:
                for key in victims:  # nothing was closed yet: put them back (as the newest; harmless)
                    self.add(address, key)
                return None
            self.remove(*other)
            victims.append(other[1])
        return victims


class Tally:
    """Counts refused and cut connections by reason; at most one log line per ``every`` seconds, with the counts."""

    def __init__(self, logger: logging.Logger = log, every: float = REPORT_EVERY,
                 clock: Callable[[], float] = time.monotonic, label: str = "the main port") -> None:
        self.logger = logger
        self.label = label
        self.every = every
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._next = 0.0
        self._since: float | None = None
        self._traced = False

    def internal(self, exc: Exception) -> None:
        """A bug met while guarding a connection: the listener goes on (a dead listener gets Connect killed); the
        first traceback is logged, the rest counted."""
        if not self._traced:
            self._traced = True
            self.logger.error("internal error on %s (the connection is dropped, the listener goes on)", self.label,
                              exc_info=exc)
        self.count(f"dropped by an internal error ({type(exc).__name__})")

    def count(self, reason: str, n: int = 1) -> None:
        if self._since is None:
            self._since = self.clock()
        self.counts[reason] += n
        self.flush()

    def flush(self) -> None:
        now = self.clock()
        if not self.counts or now < self._next:
            return
        spent = now - (self._since if self._since is not None else now)
        detail = "; ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        self.logger.warning("connections refused or cut on %s in the last %.0f s (at most one such line per %.0f s):"
                            " %s", self.label, spent, self.every, detail)
        self.counts.clear()
        self._since = None
        self._next = now + self.every


def accept_pending(listener: socket.socket, tally: Tally, admit: Callable[[socket.socket, Any], None],
                   out_of_files: Callable[[], None]) -> None:
    """Accept every pending connection (at most ACCEPT_BATCH) and ``admit`` each; a failed accept() is counted,
    never raised nor traced, and out of descriptors ``out_of_files`` frees one or pauses the listener."""
    for _ in range(ACCEPT_BATCH):
        try:
            conn, addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionAbortedError:
            continue
        except OSError as exc:
            tally.count(f"accept() failed ({errno.errorcode.get(exc.errno or 0, str(exc.errno))})")
            if exc.errno in OUT_OF_FILES:
                out_of_files()
            return
        try:
            admit(conn, addr)
        except Exception as exc:  # see Tally.internal
            conn.close()
            tally.internal(exc)


def make_way(admission: Admission[K], tally: Tally, address: str, rank: Callable[[K], int]) -> list[K] | None:
    """``admission.admit`` with the refusal or the evictions counted by bound."""
    at_address = admission.held(address) >= admission.per_address
    victims = admission.admit(address, rank)
    if victims is None:
        tally.count("refused: every held connection is being served")
        return None
    if victims and at_address:
        tally.count(f"oldest waiting connection closed at the per-address bound {admission.per_address}")
    if len(victims) > at_address:
        tally.count(f"oldest waiting connection closed at the total bound {admission.total}",
                    len(victims) - at_address)
    return victims


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


def address_of(addr: Any) -> str:
    host = addr[0] if isinstance(addr, tuple) and addr else str(addr)
    return str(host).removeprefix("::ffff:")  # an IPv4 client on the dual-stack socket is the same client


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
        self.tally = tally or Tally()
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
