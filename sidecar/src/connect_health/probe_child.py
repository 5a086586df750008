"""The probe process: a fresh interpreter answering ``--probe-port`` from the answers the main process feeds it
(probe_process.py starts it, issue 22).

It runs as ``python -I -S -B -c <BOOT> <package folder>`` with three descriptors set up by its parent: the
listening probe socket (3), the read end of the feed (4) and the write end of its log pipe (5). It imports only
this module, probe_listener and admission: no site, no typing, no logging, no waitress, so it holds about 4 MB of
its own. Its log lines go down the log pipe as ``<level> <message>`` and the main process logs them, in its format
and redacted like every other line.

The feed is a stream of frames, each a 4-byte length and the marshalled answers (path -> (status line, body)).
``STALE_AFTER`` seconds without a frame (the main process hung or stopped, where one process would not have
answered at all) turn every answer into a 503 naming that; the end of the feed (the main process gone) ends this
process and closes the probe port.
"""

from __future__ import annotations

import marshal
import os
import socket
import struct
import sys
import time

from .probe_listener import ProbeListener

TYPE_CHECKING = False  # no typing at run time (admission.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

SOCKET_FD, FEED_FD, LOG_FD = 3, 4, 5
STALE_AFTER = 10.0  # seconds without a word from the main process before every answer is 503
MAX_FRAME = 16 << 20  # a longer frame is not the feeder's: this process ends, and the main process takes the port
_HEADER = struct.Struct(">I")
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from connect_health.probe_child import main; main(sys.argv[2:])"


def frame(rendered: dict[str, tuple[str, bytes]]) -> bytes:
    data = marshal.dumps(rendered)
    return _HEADER.pack(len(data)) + data


def stale_answers(paths: Iterable[str], silent_for: float) -> dict[str, tuple[str, bytes]]:
    body = ('{"status": "fail", "reasons": ["the sidecar\'s main process has sent no verdict for '
            f'{silent_for:.0f} s (hung or stopped)"]}}').encode()
    return {str(path): ("503 SERVICE UNAVAILABLE", body) for path in paths}


class Feed:
    """The answers as the feed last said them, whole frames only, and how long since it said anything."""

    def __init__(self, initial: dict[str, tuple[str, bytes]], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.answers = initial
        self.heard = clock()
        self._buf = bytearray()

    def take(self, data: bytes) -> None:
        """Add bytes read from the feed; ValueError for a frame the feeder cannot have written."""
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

    def current(self) -> dict[str, tuple[str, bytes]]:
        silent = self.clock() - self.heard
        return stale_answers(self.answers, silent) if silent > STALE_AFTER else self.answers


class PipeLog:
    """A logger for admission.Tally writing ``<level> <message>`` lines down the log pipe (never blocking long:
    Tally writes at most one line per 10 s, and the main process reads them every 50 ms)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _line(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        text = (msg % args if args else msg).replace("\n", " ")
        try:
            os.write(self.fd, f"{level} {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass  # the main process is gone: the feed's end stops this process

    def warning(self, msg: str, *args: object) -> None:
        self._line("WARNING", msg, args)

    def error(self, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        if exc_info is not None:
            msg += f": {type(exc_info).__name__}: {exc_info}"
        self._line("ERROR", msg, args)


def main(argv: list[str]) -> None:
    """``argv``: the total connection bound. Ends when the feed ends."""
    total = int(argv[0])
    log = PipeLog(LOG_FD)
    feed = Feed({})
    while not feed.answers:  # the first frame, written before this process started: nothing is answered without it
        data = os.read(FEED_FD, 1 << 16)
        if not data:
            sys.exit(0)
        feed.take(data)
    sock = socket.socket(fileno=SOCKET_FD)
    listener = ProbeListener(sock, feed.current, log, total=total)
    listener.open()
    os.set_blocking(FEED_FD, False)

    def ready() -> None:
        try:
            data = os.read(FEED_FD, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            listener.halt()  # the main process is gone
            return
        try:
            feed.take(data)
        except ValueError as exc:
            log.error("probe process: %s on the feed; ending so that the main process answers the probes", exc)
            listener.halt()

    listener.watch(FEED_FD, ready)
    try:
        listener.run()
    except KeyboardInterrupt:
        pass
    sys.exit(0)
