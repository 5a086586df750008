"""Cut the traces of a ``GET /connectors?expand=status`` answer while it streams in.

A mass failure makes that answer huge: 3,000 FAILED tasks with 30 KB stack traces are 100 MiB, of which the
sidecar shows one line per trace. :class:`TraceCut` is fed the answer's byte chunks as they are read and returns
the bytes to keep: everything, except that each trace string (``<name>.status.connector.trace`` and
``<name>.status.tasks[].trace``, nowhere else: a config value named ``trace`` is kept whole) is cut to its first
``keep`` characters. What it returns is still JSON, and decodes to the answer with those traces cut to a prefix of
at least ``keep`` characters (or whole), so a parser that keeps ``keep`` characters of a trace gives the same
result from either.

It tracks only what it needs: whether it is inside a string (an unescaped ``"``, backslash runs counted across
chunk boundaries), the stack of objects and arrays with each object's current key, and whether a string is a key.
Long strings are crossed with ``bytes.find``; a cut is placed where the kept bytes decode (never inside an escape,
a UTF-8 sequence or a surrogate pair) to at least ``keep`` characters. A malformed answer passes through as it is
(its parser then says what is wrong).
"""

from __future__ import annotations

import json

_OUT, _KEY, _VALUE, _TRACE, _SKIP = range(5)
_ARRAY = None  # a stack entry for an array; an object's entry is its current key (bytes, b"" before the first)
_KEY_BYTES = 64  # keys longer than this (connector names) are never compared: only the first bytes are kept
_STRUCTURE = frozenset(b"{}[]:,")


class TraceCut:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._mode = _OUT
        self._stack: list[bytes | None] = []
        self._expect_key = False
        self._escaped = False  # inside a string: the bytes so far end in an odd run of backslashes
        self._key = bytearray()
        self._trace = bytearray()
        self._target = 0

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._mode == _OUT:
                q = data.find(b'"', pos)
                end = n if q < 0 else q
                self._structure(data, pos, end)
                if q < 0:
                    out.append(data[pos:])
                    break
                out.append(data[pos:q + 1])
                self._open_string()
                pos = q + 1
                continue
            q = self._string_end(data, pos)
            piece = data[pos:n if q < 0 else q]
            if self._mode in (_KEY, _VALUE):
                out.append(piece)
                if self._mode == _KEY and len(self._key) <= _KEY_BYTES:
                    self._key += piece[:_KEY_BYTES + 1]
            elif self._mode == _TRACE:
                self._take_trace(piece, out)
            if q < 0:
                break
            self._close_string(out)
            pos = q + 1
        return b"".join(out)

    # --- outside strings --------------------------------------------------------------------------------------
    def _structure(self, data: bytes, start: int, end: int) -> None:
        stack = self._stack
        for b in data[start:end]:
            if b not in _STRUCTURE:
                continue  # whitespace, numbers, true/false/null
            if b == 0x7B:  # {
                stack.append(b"")
                self._expect_key = True
            elif b == 0x5B:  # [
                stack.append(_ARRAY)
                self._expect_key = False
            elif b in (0x7D, 0x5D):  # } ]
                if stack:
                    stack.pop()
                self._expect_key = False
            elif b == 0x3A:  # :
                self._expect_key = False
            else:  # ,
                self._expect_key = bool(stack) and stack[-1] is not _ARRAY

    def _open_string(self) -> None:
        self._escaped = False
        if self._expect_key and self._stack and self._stack[-1] is not _ARRAY:
            self._mode = _KEY
            self._key.clear()
        elif self._at_trace():
            self._mode = _TRACE
            self._trace.clear()
            self._target = self.keep + 12
        else:
            self._mode = _VALUE

    def _at_trace(self) -> bool:
        s = self._stack
        if len(s) == 4:  # {name: {"status": {"connector": {"trace": ...
            return s[0] is not _ARRAY and s[1] == b"status" and s[2] == b"connector" and s[3] == b"trace"
        if len(s) == 5:  # {name: {"status": {"tasks": [{"trace": ...
            return (s[0] is not _ARRAY and s[1] == b"status" and s[2] == b"tasks" and s[3] is _ARRAY
                    and s[4] == b"trace")
        return False

    # --- inside strings ---------------------------------------------------------------------------------------
    def _string_end(self, data: bytes, pos: int) -> int:
        """Index of the quote closing the current string, or -1 when it goes on past ``data``."""
        start = pos
        while True:
            q = data.find(b'"', pos)
            end = len(data) if q < 0 else q
            i = end
            while i > start and data[i - 1] == 0x5C:  # the run of backslashes just before it
                i -= 1
            run = end - i
            if i == start:  # the run reaches back into the previous piece
                run += self._escaped
            if q < 0:
                self._escaped = run % 2 == 1
                return -1
            if run % 2 == 0:
                return q
            pos = start = q + 1  # an escaped quote: go on after it
            self._escaped = False

    def _close_string(self, out: list[bytes]) -> None:
        if self._mode == _KEY:
            key = bytes(self._key)
            if b"\\" in key and len(key) <= _KEY_BYTES:
                try:
                    key = json.loads(b'"' + key + b'"').encode("utf-8", "surrogatepass")
                except ValueError:
                    pass
            if self._stack and len(key) <= _KEY_BYTES:
                self._stack[-1] = key
            elif self._stack:
                self._stack[-1] = b"\0long"  # compared with nothing
        elif self._mode == _TRACE:  # shorter than its cut: kept whole
            out.append(bytes(self._trace))
            self._trace.clear()
        out.append(b'"')
        self._mode = _OUT
        self._expect_key = False

    def _take_trace(self, piece: bytes, out: list[bytes]) -> None:
        """Collect a trace's first bytes; once they decode to ``keep`` characters, keep them and drop the rest."""
        buf = self._trace
        while piece:
            room = self._target - len(buf)
            buf += piece[:room]
            piece = piece[room:]
            if len(buf) < self._target:
                return
            cut, chars = _clean_prefix(bytes(buf))
            if chars >= self.keep:
                out.append(bytes(buf[:cut]))
                buf.clear()
                self._mode = _SKIP
                return
            self._target = len(buf) + (self.keep - chars) + 12  # every character takes at least one byte

    def close(self) -> bytes:
        """Whatever is held back (a trace shorter than its cut when the answer ends inside it)."""
        if self._mode == _TRACE:
            held = bytes(self._trace)
            self._trace.clear()
            return held
        return b""


def _clean_prefix(content: bytes) -> tuple[int, int]:
    """The longest cut of a string's content, within its last 12 bytes, that decodes on its own to a prefix of the
    whole string: (bytes, characters). (0, 0) when none does (a malformed string, whose parser will say so)."""
    for back in range(13):
        cut = len(content) - back
        if cut < 0:
            break
        try:
            text = json.loads(b'"' + content[:cut] + b'"')
        except ValueError:  # inside an escape or a UTF-8 sequence (UnicodeDecodeError is a ValueError)
            continue
        if text and "\ud800" <= text[-1] <= "\udbff":
            continue  # the first half of a surrogate pair written as two \u escapes
        return cut, len(text)
    return 0, 0
