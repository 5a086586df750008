"""Who may hold a connection to a port, and how refusals are told (issue 18, item 2): the guard's policy, shared by
the main port's waitress (server.py) and the probe port's epoll loop (probe_listener.py).

Why a module of its own (issue 22): the probe port is answered by a process of its own (probe_process.py), a fresh
interpreter that imports only this, probe_listener and probe_child, so that it holds about 4 MB. Nothing here may
import waitress, logging or typing (0.9 MB alone): the annotations are strings, and the types they name are imported
for the type checker only.
"""

from __future__ import annotations

import errno
import socket
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; the type checker reads it as True
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable
    from typing import Any, Generic, Protocol, TypeVar

    K = TypeVar("K", bound=Hashable)

    class _Keyed(Generic[K]):
        pass

    class Logger(Protocol):
        def warning(self, msg: str, *args: object) -> None: ...

        def error(self, msg: str, *args: object, exc_info: BaseException | None = None) -> None: ...

    Rank = Callable[[Any], int]  # a held connection -> 0: never close it (being served); higher: close it sooner
else:
    K = None

    class _Keyed:
        def __class_getitem__(cls, item: object) -> type:
            return cls

REQUEST_DEADLINE = 5.0  # seconds from accept (or the last answer) to a complete request and its answer read
# Connections one client address may hold. Legitimate clients of one address fit with room to spare: the kubelet
# (at most 3 probes at once, a fresh connection each), Prometheus (1-2 kept alive), a browser on /status (6),
# kubectl port-forwards (all from 127.0.0.1). What it buys: one address cannot make waitress walk more than this
# many of its connections per loop pass (the cost every probe pays), and at the total bound the largest holder
# loses first. A flood sharing the kubelet's address has to get this many connections accepted between the
# kubelet's connect and its request (read at accept) to evict it. 64 would double that margin but let 16
# addresses instead of 32 fill the total bound, doubling the held connections a small flood costs each pass.
PER_ADDRESS = 32
REPORT_EVERY = 10.0  # seconds between two log lines about refused connections
ACCEPT_BATCH = 256  # connections accepted per readiness of the listening socket
OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

SERVED, UNHEARD, HEARD = 0, 1, 2  # being served | nothing received yet | part of a request received, or idle
LOOK_AT = 16  # addresses of the largest holders' group compared for the oldest connection


class Admission(_Keyed[K]):
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

    def __init__(self, logger: Logger, every: float = REPORT_EVERY,
                 clock: Callable[[], float] = time.monotonic, label: str = "the main port") -> None:
        self.logger = logger
        self.label = label
        self.every = every
        self.clock = clock
        self.counts: dict[str, int] = {}
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
        self.counts[reason] = self.counts.get(reason, 0) + n
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


def address_of(addr: Any) -> str:
    host = addr[0] if isinstance(addr, tuple) and addr else str(addr)
    return str(host).removeprefix("::ffff:")  # an IPv4 client on the dual-stack socket is the same client
