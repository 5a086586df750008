"""The Flask app: probe endpoints, /status (JSON or HTML), /metrics. Handlers only read the poller's View."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .config import HealthSettings
from .metrics import Metrics
from .model import Verdict
from .poller import Poller, View
from .redact import redact, trace_line


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

    def verdict(v: Verdict, extra: dict[str, Any] | None = None) -> tuple[Response, int]:
        body = v.body()
        if extra:
            body.update(extra)
        return jsonify(body), 200 if v.ok else 503

    @app.get("/livez")
    @app.get("/health")
    def livez() -> tuple[Response, int]:
        return verdict(poller.view.report.livez)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        return verdict(poller.view.report.readyz)

    @app.get("/startupz")
    def startupz() -> tuple[Response, int]:
        view = poller.view
        return verdict(view.report.startupz, {"health_endpoint": view.health_endpoint})

    @app.get("/ping")
    def ping() -> tuple[Response, int]:
        return jsonify({"status": "ok"}), 200

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


def status_document(view: View, settings: HealthSettings) -> dict[str, Any]:
    """The /status JSON: every connector and task with its verdict. Traces are first lines, redacted."""
    obs, report = view.observation, view.report
    connectors: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        entry = connectors.setdefault(row.connector, {
            "name": row.connector, "policy": row.policy, "restart_attempts": row.attempts,
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
