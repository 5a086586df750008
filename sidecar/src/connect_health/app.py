"""The Flask app: probe endpoints, /status (JSON or HTML), /metrics. Handlers only read the poller's View."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .config import HealthSettings
from .metrics import Metrics
from .model import Verdict
from .poller import Poller, View
from .redact import redact, trace_line

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication


def create_app(poller: Poller, settings: HealthSettings, *, refresh_seconds: float = 3.0) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    metrics = Metrics(lambda: poller.view)
    previous_hook = poller.on_poll

    def on_poll(view: View) -> None:
        metrics.observe(view)
        if previous_hook is not None:
            previous_hook(view)

    poller.on_poll = on_poll
    app.extensions["connect_health"] = {"poller": poller, "metrics": metrics}

    app.wsgi_app = ProbeAnswers(poller, app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/status")
    @app.get("/")
    def status() -> Any:
        data = status_document(poller.view, settings)
        fmt = request.args.get("format")
        accept = request.accept_mimetypes
        wants_html = accept["text/html"] > accept["application/json"]
        if fmt == "html" or (fmt != "json" and wants_html):
            return render_template("status.html", s=data, refresh=refresh_seconds)
        return jsonify(data)

    return app


PROBE_PATHS = {"/livez": "livez", "/health": "livez", "/readyz": "readyz", "/startupz": "startupz", "/ping": None}


class ProbeAnswers:
    """WSGI middleware answering the probe paths before Flask's routing.

    The answers are rendered once per View (after each poll) and then served as bytes, so a probe costs a dict
    lookup and never touches Connect. Every other path goes to the Flask app.
    """

    def __init__(self, poller: Poller, app: WSGIApplication) -> None:
        self.poller = poller
        self.app = app
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
        return self.app(environ, start_response)


def status_document(view: View, settings: HealthSettings) -> dict[str, Any]:
    """The /status JSON: every connector and task with its verdict. Traces are first lines, redacted."""
    obs, report = view.observation, view.report
    connectors: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        entry = connectors.setdefault(row.connector, {
            "name": row.connector, "policy": row.policy, "restart_attempts": row.attempts,
            "restart_limit": obs.restart_limits.get(row.connector, settings.restart_attempts),
            "failed_past_ladder": row.connector in report.failed_connectors, "tasks": [],
        })
        if obs.snapshot is not None and row.connector in obs.snapshot.connectors:
            entry["type"] = obs.snapshot.connectors[row.connector].type
        item = {
            "state": row.state, "worker_id": row.worker_id, "on_this_worker": row.local,
            "verdict": row.verdict, "reason": redact(row.reason), "trace": trace_line(row.trace, settings.traces),
        }
        if row.task is None:
            entry["connector"] = item
        else:
            entry["tasks"].append({"id": row.task, **item})
    age = max(0.0, time.time() - view.wall_time) if view.polls else None
    return {
        "version": __version__,
        "worker_id": settings.worker_id,
        "scope": settings.scope,
        "worker": {
            "started": obs.started, "reachable": obs.reachable, "error": redact(obs.error) if obs.error else None,
            "health_endpoint": view.health_endpoint, "stale": view.stale,
        },
        "probes": {p: getattr(report, p).body() for p in ("livez", "readyz", "startupz")},
        "polls": view.polls,
        "last_poll_age_seconds": round(age, 3) if age is not None else None,
        "poll_seconds": round(view.poll_seconds, 4),
        "connectors": list(connectors.values()),
        "drift": [{"connector": n, "kind": k, "detail": d} for n, k, d in view.drift],
        "settings": {
            "grace": settings.grace, "restart_attempts": settings.restart_attempts,
            "restart_backoff": settings.restart_backoff, "unresponsive_after": settings.unresponsive_after,
            "failure_threshold": settings.failure_threshold,
            "best_effort": settings.best_effort.pattern if settings.best_effort else None,
        },
    }
