"""A canned stand-in for a Kafka Connect worker's REST API, served over real HTTP on 127.0.0.1.

Why a fake here: the unit suite needs answers a real worker cannot produce on demand: malformed, truncated and
oversized JSON, 500s, answers that hang, a worker without ``GET /health`` (404, Kafka < 3.9), a worker that answers
204 to a KIP-745 restart (Kafka < 3.0) and 409 conflicts during a rebalance. Everything a real worker *can* do is
covered by the integration suite (tests/integration) against a real Kafka Connect worker.

The server is a real socket server, so the sidecar's ``requests`` session, timeouts and body limits are exercised
exactly as in production. Every request is recorded (method, raw path, query, headers, time).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DATA = Path(__file__).parent / "data"

HEALTHY = {"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}
STARTING = {"status": "starting", "message": "Worker is still starting up."}
ROOT = {"version": "3.9.0", "commit": "a60e31147e6b01ee", "kafka_cluster_id": "MkU3OEVBNTcwNTJENDM2Qk"}
NOT_FOUND = {"error_code": 404, "message": "HTTP 404 Not Found"}


def fixture(name: str) -> dict[str, Any]:
    """A ``GET /connectors?expand=status&expand=info`` answer from tests/sidecar/data."""
    with open(DATA / name, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@dataclass
class Answer:
    """One canned answer. ``body`` is JSON-encoded unless it is bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # block until the fake is released (or 30 s), then answer
    truncate_to: int | None = None  # send only this many bytes of the body, then close the connection
    stream_without_length: bool = False  # no Content-Length: the body ends when the connection closes
    trickle: float | None = None  # send the body one byte every this many seconds (until released or sent)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # raw, still percent-encoded
    query: tuple[tuple[str, str], ...]
    raw_query: str
    headers: dict[str, str]
    at: float
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


Route = Answer | Callable[["Seen"], Answer]


class FakeConnect:
    def __init__(self, port: int = 0) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self.hanging = threading.Event()  # set once a hanging answer has started to wait
        self._lock = threading.Lock()
        self.healthy(fixture("healthy.json"))
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the test output quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, parts.path, tuple(parse_qsl(parts.query)), parts.query,
                            dict(self.headers.items()), time.monotonic(), body)
                with fake._lock:
                    fake.seen.append(seen)
                    route = fake.routes.get((self.command, parts.path))
                if route is None:
                    answer = Answer(404, {"error_code": 404, "message": f"HTTP 404 Not Found {parts.path}"})
                elif isinstance(route, Answer):
                    answer = route
                else:
                    answer = route(seen)
                if answer.hang:
                    fake.hanging.set()
                    fake.release.wait(30)
                payload = answer.payload()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    if not answer.stream_without_length and "Content-Length" not in answer.headers:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if answer.truncate_to is not None:
                        payload = payload[: answer.truncate_to]
                    if answer.trickle is not None:  # a worker that answers, but slower than any deadline
                        for i in range(len(payload)):
                            if fake.release.wait(answer.trickle):
                                break
                            self.wfile.write(payload[i:i + 1])
                            self.wfile.flush()
                        payload = b""
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer to
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-connect", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> FakeConnect:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    # --- canned worker states ------------------------------------------------------------------------------
    def route(self, method: str, path: str, answer: Route) -> None:
        with self._lock:
            self.routes[(method, path)] = answer

    def healthy(self, connectors: Any) -> None:
        """A Kafka >= 3.9 worker that finished startup and answers ``connectors`` to the expanded list call."""
        self.route("GET", "/health", Answer(200, HEALTHY))
        self.route("GET", "/", Answer(200, ROOT))
        self.connectors(connectors)

    def without_health(self, version: str = "3.8.1") -> None:
        """A worker older than Kafka 3.9: ``GET /health`` is 404 and ``GET /`` reports ``version``."""
        self.route("GET", "/health", Answer(404, NOT_FOUND))
        self.route("GET", "/", Answer(200, {**ROOT, "version": version}))

    def connectors(self, body: Any) -> None:
        self.route("GET", "/connectors", body if isinstance(body, Answer) else Answer(200, body))

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen
                    if (method is None or s.method == method) and (path is None or s.path == path)]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()


class FakeClock:
    """A monotonic clock the tests move by hand, for the poller's ladder and unresponsive budget."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
