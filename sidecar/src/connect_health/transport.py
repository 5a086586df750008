"""HTTP/1.1 calls over the standard library's http.client: what the sidecar needs of an HTTP client, and no more.

Why not requests (issue 22): the sidecar runs in every Connect pod, and requests with urllib3, charset_normalizer
and idna took 10 of its 40 MB of RSS, more than the whole web stack, for a few GETs to one address. What requests
did for the sidecar is here: one connection per call, closed with its answer (as requests did here: closing a
response closed its connection), TLS checked against the system's CAs or ``--connect-ca-file`` with an optional
client certificate, the deadline watchdog's registration of every socket (deadline.py), and errors left as the
standard library raises them (client.py tells a refused connection from a DNS failure from a reset by their types
and errnos). A few calls per poll to one address need no pool, and none can be handed a connection the peer closed.

Not done, on purpose: proxies from the environment (Connect and the API server are reached directly; the Events
client already refused them), redirects (Connect answers none), compression (answers are read raw, identity).
"""

from __future__ import annotations

import http.client  # the command imported it first, without ssl: entry.py
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .deadline import WATCHDOG

if TYPE_CHECKING:
    import ssl


class _TLSConnection(http.client.HTTPConnection):
    """HTTPSConnection's part the sidecar uses: the socket wrapped in ``context`` for ``host``."""

    default_port = 443

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout)
        self._context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class Answer:
    """One response: ``status``, ``header(name)``, ``read1(n)`` (b"" at the end), ``close()`` (it and its
    connection)."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self._conn = conn
        self._resp = resp

    def header(self, name: str) -> str | None:
        return self._resp.getheader(name)

    def read1(self, n: int) -> bytes:
        return self._resp.read1(n)

    def read(self) -> bytes:
        return self._resp.read()

    def readline(self, limit: int) -> bytes:
        return self._resp.readline(limit)

    def incomplete(self) -> bool:
        """Whether the body ended before its Content-Length (the peer closed the connection early)."""
        return bool(self._resp.length)

    def close(self) -> None:
        self._resp.close()
        self._conn.close()


class Transport:
    """Calls to one ``scheme://host:port``; ``send`` raises what http.client, socket and ssl raise."""

    def __init__(self, url: str, *, timeout: float, ca_file: str | None = None,
                 cert: str | tuple[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://...")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.timeout = timeout
        self.ca_file = ca_file
        self.cert = cert
        self._context: ssl.SSLContext | None = None

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            import ssl

            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert is not None:
                certfile, keyfile = self.cert if isinstance(self.cert, tuple) else (self.cert, None)
                context.load_cert_chain(certfile, keyfile)
            self._context = context
        return self._context

    def _new(self) -> http.client.HTTPConnection:
        if self.https:
            return _TLSConnection(self.host, self.port, timeout=self.timeout, context=self._ssl())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def send(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """``target``: the path and query, sent exactly as given. Connecting raises OSError (socket.gaierror for a
        name that does not resolve, ConnectionRefusedError, ssl.SSLError, TimeoutError); sending and reading the
        response's head raise OSError or http.client.HTTPException."""
        conn = self._new()
        try:
            conn.connect()
            WATCHDOG.watch(conn.sock)
            conn.request(method, target, body=body, headers={**headers, "Connection": "close"})
            return Answer(conn, conn.getresponse())
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Nothing is held between calls (kept for the callers' symmetry)."""

