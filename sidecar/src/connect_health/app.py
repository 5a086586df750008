"""The sidecar's WSGI app: probe endpoints, /metrics, /status (JSON or HTML). Handlers only read the poller's View.

:func:`build` wires what ``serve`` runs (client -> poller -> app, metrics observing the poller); ``serve`` and the
gunicorn comparison in bench/ both use it.

Cost per pod (issue 22): the probes and /metrics are answered without Flask; Flask (and Jinja) are imported when a
``/status`` page is first asked for (:class:`FlaskPages`), so a sidecar only probed and scraped never loads them.
/metrics and /status are built at most once per poll and query and shared by every reader (:class:`PageCache`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import reconcile
from .client import ConnectClient
from .config import HealthSettings, ServeSettings, UsageError
from .events import EventObserver, KubeEvents, log_event
from .memory import tune_malloc
from .metrics import CONTENT_TYPE, Metrics
from .model import Verdict
from .poller import Poller, View
from .reconcile import Reconciler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication
    from flask import Flask


@dataclass
class Sidecar:
    """What ``serve`` runs: one client, one poller observed by the metrics, one WSGI app (``wsgi``)."""

    client: ConnectClient
    poller: Poller
    metrics: Metrics
    wsgi: ProbeAnswers
    poll_interval: float
    pages: FlaskPages = field(repr=False)
    reconciler: Reconciler | None = None  # serve --reconcile (reconcile.py)

    @property
    def app(self) -> Flask:
        """The Flask app of the pages, wrapped by ``wsgi`` (created, Flask imported, on first use: tests, the
        development server)."""
        return self.pages.flask()

    def start(self) -> None:
        """Start the polling thread (its first poll runs at once)."""
        if self.reconciler is not None:
            self.reconciler.start()
        self.poller.start(self.poll_interval)

    def stop(self) -> None:
        self.poller.stop()
        if self.reconciler is not None:
            self.reconciler.stop()
        self.client.close()


def build(settings: ServeSettings, *, clock: Callable[[], float] = time.monotonic) -> Sidecar:
    """Wire the sidecar for ``settings``; nothing runs until ``start()``."""
    tune_malloc()  # before any thread starts (memory.py)
    client = ConnectClient(settings.connect)
    # The metrics read the poller's latest View at scrape time and observe each poll's duration: the lambda
    # names the poller created on the next line.
    metrics = Metrics(lambda: poller.view)
    try:  # restarts and liveness changes as Events on this pod (--kubernetes-events), or as log lines
        emit = KubeEvents.from_environment() if settings.kubernetes_events else log_event
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    reconciler = reconcile.from_settings(settings, emit) if settings.reconcile else None
    poller = Poller(client, settings.health, connectors_file=settings.connectors_file, clock=clock,
                    observers=(metrics.observe, EventObserver(emit), *([reconciler] if reconciler else [])),
                    state_file=settings.state_file)
    if reconciler is not None:
        reconciler.attach(poller)
    token = None
    if settings.pages_token_file:
        from .config import read_secret

        try:
            token = read_secret(settings.pages_token_file).strip()
        except ValueError as exc:
            raise UsageError(f"--pages-token-file: {exc}") from None
    pages = FlaskPages(poller, settings.health, refresh_seconds=settings.refresh_seconds)
    wsgi = wire(poller, metrics, pages, pages_token=token)
    return Sidecar(client=client, poller=poller, metrics=metrics, wsgi=wsgi, poll_interval=settings.poll_interval,
                   pages=pages, reconciler=reconciler)


def wire(poller: Poller, metrics: Metrics, pages: FlaskPages, *, pages_token: str | None = None) -> ProbeAnswers:
    """probes -> (token) -> page cache -> /metrics here, every other page to Flask; the Flask app, once created,
    has this chain as its ``wsgi_app`` (so its test client sees what ``serve`` serves)."""
    chain = ProbeAnswers(poller, Pages(metrics, pages), pages_token=pages_token, cache=PageCache(poller))
    pages.outer = chain
    return chain


def create_app(poller: Poller, settings: HealthSettings, metrics: Metrics, *, refresh_seconds: float = 3.0,
               pages_token: str | None = None) -> Flask:
    """The Flask app over ``poller``'s View, wrapped by the probe answers and the page cache; ``metrics`` must be
    one of the poller's observers. With ``pages_token`` every page but the probes needs ``Authorization: Bearer
    <pages_token>``."""
    pages = FlaskPages(poller, settings, refresh_seconds=refresh_seconds)
    wire(poller, metrics, pages, pages_token=pages_token)
    return pages.flask()


class FlaskPages:
    """The /status pages as a Flask app, created (Flask and Jinja imported: ~7 MB of RSS) on the first request for
    one, or the first use of :meth:`flask`."""

    def __init__(self, poller: Poller, settings: HealthSettings, *, refresh_seconds: float = 3.0) -> None:
        self.poller = poller
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.outer: WSGIApplication | None = None  # what the Flask app's wsgi_app becomes (see wire)
        self._lock = threading.Lock()
        self._app: Flask | None = None
        self._inner: WSGIApplication | None = None

    def flask(self) -> Flask:
        with self._lock:
            if self._app is None:
                app = _flask_app(self.poller, self.settings, self.refresh_seconds)
                self._inner = app.wsgi_app
                if self.outer is not None:
                    app.wsgi_app = self.outer  # type: ignore[method-assign,assignment]
                self._app = app
            return self._app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._inner is None:
            self.flask()
        assert self._inner is not None
        return self._inner(environ, start_response)


def _flask_app(poller: Poller, settings: HealthSettings, refresh_seconds: float) -> Flask:
    from flask import Flask, jsonify, render_template, request

    from .status import Query, QueryError, status_document

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["connect_health"] = {"poller": poller}

    @app.get("/status")
    @app.get("/")
    def status() -> Any:
        try:
            query = Query.parse(request.args)
        except QueryError as exc:
            return jsonify({"error": str(exc)}), 400
        data = status_document(poller.view, settings, query)
        fmt = request.args.get("format")
        accept = request.accept_mimetypes
        wants_html = accept["text/html"] > accept["application/json"]
        if fmt == "html" or (fmt != "json" and wants_html):
            return render_template("status.html", s=data, refresh=refresh_seconds)
        return jsonify(data)

    return app


class Pages:
    """/metrics answered here (metrics.py writes the text format), every other page by ``other`` (Flask)."""

    def __init__(self, metrics: Metrics, other: WSGIApplication) -> None:
        self.metrics = metrics
        self.other = other

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = self.metrics.render()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
            return [body] if environ.get("REQUEST_METHOD") == "GET" else []
        return self.other(environ, start_response)


Response = tuple[str, list[tuple[str, str]], bytes]  # status line, headers, body
CACHED_PATHS = ("/metrics", "/status", "/")
PAGE_MAX_AGE = 5.0  # seconds a page is served for one View (its last_poll_age_seconds is at most this old)
MAX_PAGES = 64  # pages (path, query, Accept) kept; more distinct queries are built for each request
MAX_PAGE_BYTES = 8 * 1024 * 1024  # bytes of pages kept (a cluster page of 5,000 connectors is ~1 MB): a client paging
# through the whole cluster never makes the cache grow past this, under the chart's memory limit


class PageCache:
    """GET /metrics and /status built at most once per View (poll) and query, the bytes shared by every reader.

    A page is looked up by (path, query string, Accept header): the inputs of its handler besides the View. A
    reader finding the page of the current View (built less than ``PAGE_MAX_AGE`` ago) gets its bytes; one finding
    the previous View's page while another thread builds the current one gets the previous page at once (one poll
    old) instead of building it too or waiting: at most one build per page runs, however many read it, so page
    readers hold the GIL for one build per poll, not one per request (issue 22: 24 readers at 3,000 connectors had
    /livez p99 at ~200 ms).
    """

    def __init__(self, poller: Poller, clock: Callable[[], float] = time.monotonic) -> None:
        self.poller = poller
        self.clock = clock
        self._lock = threading.Lock()
        self._pages: dict[tuple[str, str, str], tuple[View, float, Response]] = {}
        self._building: set[tuple[str, str, str]] = set()
        self.builds = 0  # pages built (for tests and the bench)

    @staticmethod
    def key(environ: dict[str, Any]) -> tuple[str, str, str] | None:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or path not in CACHED_PATHS:
            return None
        return path, str(environ.get("QUERY_STRING", "")), str(environ.get("HTTP_ACCEPT", ""))

    def lookup(self, key: tuple[str, str, str], view: View) -> tuple[Response | None, bool]:
        """(a page to serve now or None, whether it is the current View's)."""
        with self._lock:
            hit = self._pages.get(key)
            if hit is None:
                return None, False
            current = hit[0] is view and self.clock() - hit[1] < PAGE_MAX_AGE
            if current or key in self._building:
                return hit[2], current
            return None, False

    def stale(self, key: tuple[str, str, str]) -> Response | None:
        with self._lock:
            hit = self._pages.get(key)
            return hit[2] if hit is not None else None

    def build(self, key: tuple[str, str, str], view: View, produce: Callable[[], Response]) -> Response:
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None and hit[0] is view and self.clock() - hit[1] < PAGE_MAX_AGE:
                return hit[2]  # built by another reader meanwhile
            self._building.add(key)
        try:
            response = produce()
        finally:
            with self._lock:
                self._building.discard(key)
        with self._lock:
            self.builds += 1
            self._pages.pop(key, None)
            size = len(response[2])
            if size <= MAX_PAGE_BYTES:
                while self._pages and (len(self._pages) >= MAX_PAGES or self._bytes() + size > MAX_PAGE_BYTES):
                    del self._pages[next(iter(self._pages))]  # the oldest first
                self._pages[key] = (view, self.clock(), response)
        return response

    def _bytes(self) -> int:
        return sum(len(page[2][2]) for page in self._pages.values())


def _collect(app: WSGIApplication, environ: dict[str, Any]) -> Response:
    """Run ``app`` for ``environ``; its whole answer."""
    got: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        got[:] = [status, headers]
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    headers = [(k, v) for k, v in got[1] if k.lower() != "content-length"]
    return got[0], [*headers, ("Content-Length", str(len(body)))], body


PROBE_PATHS = {"/livez": "livez", "/health": "livez", "/readyz": "readyz", "/startupz": "startupz", "/ping": None}
HEAVY_LANE = 2  # pages other than the probes served at once; of the server's 8 threads the rest are the probes'


class ProbeAnswers:
    """WSGI middleware answering the probe paths before Flask's routing.

    The answers are rendered once per View (after each poll) and then served as bytes, so a probe costs a dict
    lookup and never touches Connect. A page ``cache`` holds (:class:`PageCache`) is served from it; every other
    request, and the build of a page, goes through a lane of ``heavy_limit`` requests at once: one more is answered
    503 at once (or the previous poll's page, when there is one) instead of queueing, so however many clients read
    /metrics or /status, the server's other threads stay free for the probes (issue 11, item 3). With
    ``pages_token`` those pages need ``Authorization: Bearer <token>``; the probes never do (the kubelet sends no
    credentials).
    """

    def __init__(self, poller: Poller, app: WSGIApplication, *, pages_token: str | None = None,
                 heavy_limit: int = HEAVY_LANE, cache: PageCache | None = None) -> None:
        self.poller = poller
        self.cache = cache
        self.app = app
        self.heavy_limit = heavy_limit
        self._lane = threading.BoundedSemaphore(heavy_limit)
        self._expected = f"Bearer {pages_token}".encode() if pages_token else None
        if pages_token:  # hmac loads OpenSSL's libcrypto (1.6 MB of RSS): only for a sidecar that compares tokens
            import hmac

            self._same = hmac.compare_digest
        self._cache: tuple[View, dict[str, tuple[str, bytes]]] | None = None

    def answers(self, view: View) -> dict[str, tuple[str, bytes]]:
        cached = self._cache
        if cached is not None and cached[0] is view:
            return cached[1]
        rendered: dict[str, tuple[str, bytes]] = {}
        for path, probe in PROBE_PATHS.items():
            body: dict[str, Any] = {"status": "ok"}
            ok = True
            if probe is not None:
                verdict: Verdict = getattr(view.report, probe)
                body, ok = verdict.body(), verdict.ok
                if probe == "startupz":
                    body["health_endpoint"] = view.health_endpoint
            rendered[path] = ("200 OK" if ok else "503 SERVICE UNAVAILABLE", json.dumps(body).encode())
        self._cache = (view, rendered)
        return rendered

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD"):
            hit = self.answers(self.poller.view).get(environ.get("PATH_INFO", ""))
            if hit is not None:
                status, body = hit
                start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                         ("Cache-Control", "no-store")])
                return [body] if method == "GET" else []
        if self._expected is not None:
            given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("utf-8", "replace")
            if not self._same(given, self._expected):
                return _plain(start_response, "401 UNAUTHORIZED", b"this page needs Authorization: Bearer <token>\n",
                              [("WWW-Authenticate", "Bearer")])
        key = self.cache.key(environ) if self.cache is not None else None
        if key is not None:
            assert self.cache is not None
            view = self.poller.view
            page, _ = self.cache.lookup(key, view)
            if page is None:
                if not self._lane.acquire(blocking=False):
                    page = self.cache.stale(key)  # the previous poll's page rather than a 503
                    if page is None:
                        return _busy(start_response)
                else:
                    try:
                        page = self.cache.build(key, view, lambda: _collect(self.app, environ))
                    finally:
                        self._lane.release()
            start_response(page[0], page[1])
            return [page[2]]
        if not self._lane.acquire(blocking=False):
            return _busy(start_response)
        try:
            # Read the whole answer inside the lane: the pages are built in memory anyway.
            chunks = self.app(environ, start_response)
            try:
                return [b"".join(chunks)]
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        finally:
            self._lane.release()


def _busy(start_response: StartResponse) -> Iterable[bytes]:
    return _plain(start_response, "503 SERVICE UNAVAILABLE", b"busy: too many page requests at once\n",
                  [("Retry-After", "1")])


def _plain(start_response: StartResponse, status: str, body: bytes,
           extra: list[tuple[str, str]]) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *extra])
    return [body]
