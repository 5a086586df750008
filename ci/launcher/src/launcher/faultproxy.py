"""A small HTTP proxy in front of a Connect worker's REST API that injects what a real worker does not do on
demand: a delay on every request (a slow Connect) or on the requests matching a method and path (restarts answered
slowly by a busy leader), and 409 answers to GET /connectors (a rebalance that lasts). It records what it received.

Used by bench/faults.py; everything listens on 127.0.0.1 and the proxy forwards only to the worker it was given.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CONFLICT = {"error_code": 409, "message": "Cannot complete request momentarily due to stale configuration "
                                          "(typically caused by a concurrent config change)"}


class FaultProxy:
    """``with FaultProxy(worker.url) as proxy:`` point a sidecar at ``proxy.url``; set ``delay`` (seconds per
    request), ``slow(method, path_regex, seconds)`` or call ``conflict_for(seconds)`` while it runs; ``seen`` lists
    (monotonic time, method, path) of the requests received (the first ``SEEN_MAX``)."""

    SEEN_MAX = 100_000

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.delay = 0.0
        self._conflict_until = 0.0
        self.requests = 0
        self.seen: list[tuple[float, str, str]] = []
        self._slow: list[tuple[str, re.Pattern[str], float]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _serve(self) -> None:
                proxy.requests += 1
                if len(proxy.seen) < proxy.SEEN_MAX:
                    proxy.seen.append((time.monotonic(), self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20)) if length else b""
                delay = proxy.delay + sum(sec for method, rx, sec in proxy._slow
                                          if method == self.command and rx.fullmatch(self.path))
                if delay:
                    time.sleep(min(delay, 30.0))  # then forwarded, even when the client gave up waiting
                if self.command == "GET" and self.path.startswith("/connectors") \
                        and time.monotonic() < proxy._conflict_until:
                    self._answer(409, json.dumps(CONFLICT).encode(), "application/json")
                    return
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self._answer(resp.status, data, resp.getheader("Content-Type") or "application/json")
                except OSError:
                    self._answer(502, b'{"error_code": 502, "message": "upstream unreachable"}', "application/json")
                finally:
                    conn.close()

            def _answer(self, status: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def slow(self, method: str, path_regex: str, seconds: float) -> None:
        """Delay by ``seconds`` (on top of ``delay``) the requests with ``method`` whose path, query included,
        fully matches ``path_regex``."""
        self._slow.append((method, re.compile(path_regex), seconds))

    def conflict_for(self, seconds: float) -> None:
        self._conflict_until = time.monotonic() + seconds

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
