"""The Flask app: probe endpoints, /status (JSON or HTML), /metrics. Handlers only read the poller's View.

:func:`build` wires what ``serve`` runs (client -> poller -> app, metrics observing the poller); ``serve`` and the
gunicorn comparison in bench/ both use it.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import reconcile
from .client import ConnectClient
from .config import HealthSettings, ServeSettings, UsageError
from .events import EventObserver, KubeEvents, log_event
from .memory import tune_malloc
from .metrics import Metrics
from .model import Verdict
from .poller import Poller, View
from .reconcile import Reconciler
from .status import Query, QueryError, status_document

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication


@dataclass
class Sidecar:
    """What ``serve`` runs: one client, one poller observed by the metrics, one WSGI app."""

    client: ConnectClient
    poller: Poller
    metrics: Metrics
    app: Flask
    poll_interval: float
    reconciler: Reconciler | None = None  # serve --reconcile (reconcile.py)

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
    app = create_app(poller, settings.health, metrics, refresh_seconds=settings.refresh_seconds, pages_token=token)
    return Sidecar(client=client, poller=poller, metrics=metrics, app=app, poll_interval=settings.poll_interval,
                   reconciler=reconciler)


def create_app(poller: Poller, settings: HealthSettings, metrics: Metrics, *, refresh_seconds: float = 3.0,
               pages_token: str | None = None) -> Flask:
    """The Flask app over ``poller``'s View; ``metrics`` must be one of the poller's observers. With
    ``pages_token`` every page but the probes needs ``Authorization: Bearer <pages_token>``."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["connect_health"] = {"poller": poller, "metrics": metrics}

    app.wsgi_app = ProbeAnswers(poller, app.wsgi_app, pages_token=pages_token)  # type: ignore[method-assign]

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

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


PROBE_PATHS = {"/livez": "livez", "/health": "livez", "/readyz": "readyz", "/startupz": "startupz", "/ping": None}
HEAVY_LANE = 2  # pages other than the probes served at once; of the server's 8 threads the rest are the probes'


class ProbeAnswers:
    """WSGI middleware answering the probe paths before Flask's routing.

    The answers are rendered once per View (after each poll) and then served as bytes, so a probe costs a dict
    lookup and never touches Connect. Every other path goes to the Flask app through a lane of ``heavy_limit``
    requests at once: one more is answered 503 at once instead of queueing, so however many clients read /metrics
    or /status, the server's other threads stay free for the probes (issue 11, item 3). With ``pages_token`` those
    pages need ``Authorization: Bearer <token>``; the probes never do (the kubelet sends no credentials).
    """

    def __init__(self, poller: Poller, app: WSGIApplication, *, pages_token: str | None = None,
                 heavy_limit: int = HEAVY_LANE) -> None:
        self.poller = poller
        self.app = app
        self.heavy_limit = heavy_limit
        self._lane = threading.BoundedSemaphore(heavy_limit)
        self._expected = f"Bearer {pages_token}".encode() if pages_token else None
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
            if not hmac.compare_digest(given, self._expected):
                return _plain(start_response, "401 UNAUTHORIZED", b"this page needs Authorization: Bearer <token>\n",
                              [("WWW-Authenticate", "Bearer")])
        if not self._lane.acquire(blocking=False):
            return _plain(start_response, "503 SERVICE UNAVAILABLE", b"busy: too many page requests at once\n",
                          [("Retry-After", "1")])
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


def _plain(start_response: StartResponse, status: str, body: bytes,
           extra: list[tuple[str, str]]) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *extra])
    return [body]
