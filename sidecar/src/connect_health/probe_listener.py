"""``--probe-port``: a listener serving only the probes (issue 18, item 2), run by the probe process (probe_child.py,
issue 22), or in a thread of the main process when that one cannot run (probe_process.py).

Its only answers are the bytes app.ProbeAnswers renders once per poll, so it needs no WSGI, no thread pool and no
keep-alive: one epoll loop reads a request (at most MAX_REQUEST bytes, no body), writes the answer and closes. A
flood of the main port (held connections waitress walks on every loop pass, pages queued for its threads) never
reaches it, and a flood of this port meets the same guard as the main one (server.py): a deadline for the whole
request, the per-address and total bounds with the oldest waiting connection making room, every pending connection
accepted at once and read at once, refusals counted in one line per interval.
"""

from __future__ import annotations

import selectors
import socket
import time

from .admission import (
    HEARD,
    PER_ADDRESS,
    REQUEST_DEADLINE,
    UNHEARD,
    Admission,
    Tally,
    accept_pending,
    address_of,
    make_way,
)

TYPE_CHECKING = False  # no typing at run time: this module runs in the probe process too (admission.py)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from .admission import Logger

    Answers = Callable[[], dict[str, tuple[str, bytes]]]  # path -> (status line, JSON body), as ProbeAnswers renders

MAX_REQUEST = 8192  # bytes of request line and headers; a probe sends about 150
SWEEP_EVERY = 0.25  # seconds between two looks for connections past their deadline
ONLY = b"this port serves only /livez /readyz /startupz /health /ping\n"


class _Conn:
    __slots__ = ("sock", "address", "since", "inbuf", "out")

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self.since = time.monotonic()
        self.inbuf = bytearray()
        self.out = b""


def _rank(conn: _Conn) -> int:
    return HEARD if conn.inbuf else UNHEARD  # one with a whole request is answered and closed at once


def _response(status: str, body: bytes, content_type: str, head_only: bool) -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n\r\n")
    return headers.encode("ascii") + (b"" if head_only else body)


def answer(request: bytes, answers: Answers) -> bytes:
    """The whole response to one request (its line and headers, without the final blank line)."""
    line = request.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response("400 Bad Request", b"not an HTTP request\n", "text/plain", False)
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _response("405 Method Not Allowed", b"GET or HEAD only\n", "text/plain", method == b"HEAD")
    hit = answers().get(target.decode("latin-1"))
    if hit is None:
        return _response("404 Not Found", ONLY, "text/plain", method == b"HEAD")
    status, body = hit
    return _response(status, body, "application/json", method == b"HEAD")


class ProbeListener:
    """The probe port's loop on ``sock`` (bound, not listening), answering from ``answers``."""

    def __init__(self, sock: socket.socket, answers: Answers, logger: Logger, *, total: int,
                 per_address: int = PER_ADDRESS, deadline: float = REQUEST_DEADLINE, backlog: int = 1024) -> None:
        self.sock = sock
        self.answers = answers
        self.deadline = deadline
        self.backlog = backlog
        self.admission: Admission[_Conn] = Admission(per_address, total)
        self.tally = Tally(logger, label="the probe port")
        self._sel = selectors.DefaultSelector()
        self._halted = False  # set from another thread (stop) or from a watch callback (halt)
        self._wake_r, self._wake_w = socket.socketpair()
        self._paused_until = 0.0
        self._listening = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen and answer in a thread of this process."""
        import threading  # here: the probe process runs the loop in its only thread and never imports threading

        self.open()
        self._thread = threading.Thread(target=self.run, name="probe-listener", daemon=True)
        self._thread.start()

    def open(self) -> None:
        """Listen; ``run`` then answers in the calling thread (probe_process.py runs it as a process's only one)."""
        self.sock.listen(self.backlog)
        self.sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._listen(True)

    def watch(self, fileobj: socket.socket | int, ready: Callable[[], None]) -> None:
        """Call ``ready`` in the loop whenever ``fileobj`` can be read (the answers' feed of probe_process.py)."""
        self._sel.register(fileobj, selectors.EVENT_READ, ready)

    def halt(self) -> None:
        """End ``run`` from inside the loop (a ``watch`` callback)."""
        self._halted = True

    def stop(self) -> None:
        self._halted = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Conn):
                key.data.sock.close()
        self._sel.close()
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._sel.register(self.sock, selectors.EVENT_READ, "listen")
        elif not on and self._listening:
            self._sel.unregister(self.sock)
        self._listening = on

    def run(self) -> None:
        next_sweep = 0.0
        while not self._halted:
            for key, mask in self._sel.select(timeout=SWEEP_EVERY):
                try:
                    self._event(key, mask)
                except Exception as exc:  # a dead probe port gets Connect killed (Tally.internal)
                    if isinstance(key.data, _Conn):
                        self._close(key.data)
                    self.tally.internal(exc)
            now = time.monotonic()
            if not self._listening and now >= self._paused_until:
                self._listen(True)
            if now >= next_sweep:
                next_sweep = now + SWEEP_EVERY
                self._sweep(now)
                self.tally.flush()

    def _event(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "listen":
            self._accept()
        elif key.data == "wake":
            self._wake_r.recv(64)
        elif callable(key.data):
            key.data()
        elif isinstance(key.data, _Conn):
            if mask & selectors.EVENT_READ:
                self._read(key.data)
            elif mask & selectors.EVENT_WRITE:
                self._write(key.data)

    def _sweep(self, now: float) -> None:
        late = [key.data for key in self._sel.get_map().values()
                if isinstance(key.data, _Conn) and now - key.data.since > self.deadline]
        unfinished = sum(1 for conn in late if conn.inbuf)
        for conn in late:
            self._close(conn)
        if unfinished:
            self.tally.count(f"closed with a request unfinished after {self.deadline:g} s", unfinished)

    def _accept(self) -> None:
        accept_pending(self.sock, self.tally, self._admit, self._out_of_files)

    def _out_of_files(self) -> None:
        victim = self.admission.make_room(_rank)
        if victim is not None:
            self._close(victim)
        else:
            self._listen(False)
            self._paused_until = time.monotonic() + 0.2

    def _admit(self, sock: socket.socket, addr: object) -> None:
        address = address_of(addr)
        victims = make_way(self.admission, self.tally, address, _rank)
        if victims is None:
            sock.close()
            return
        for victim in victims:
            self._close(victim)
        sock.setblocking(False)
        conn = _Conn(sock, address)
        self.admission.add(address, conn)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        try:
            self._read(conn)  # a probe's request is usually here already: answered before the batch goes on
        except Exception:
            self._close(conn)  # unregistered and forgotten, not only closed
            raise

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(MAX_REQUEST + 1 - len(conn.inbuf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        end = conn.inbuf.find(b"\r\n\r\n")
        if end >= 0:
            conn.out = answer(bytes(conn.inbuf[:end]), self.answers)
        elif len(conn.inbuf) > MAX_REQUEST:
            conn.out = _response("431 Request Header Fields Too Large", b"request too large\n", "text/plain", False)
        else:
            return
        conn.inbuf.clear()
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        else:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self.admission.remove(conn.address, conn)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
