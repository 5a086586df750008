"""``connect-health serve | check | apply``. Usage errors exit 2 with one line; never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import replace
from typing import Any, NoReturn

from . import config
from .client import ConnectClient
from .declared import DeclarationError
from .declared import load as load_declared
from .poller import Poller
from .redact import redact


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else
                         _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # keeps probe requests out of the dev server's log


def _usage_exit(message: str) -> NoReturn:
    print(f"connect-health: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = config.build_parser()
    try:
        ns = parser.parse_args(argv)
        command = ns.command
        if command == "serve":
            return serve(config.serve_settings(ns))
        if command == "check":
            return check(ns)
        return apply_command(ns)
    except config.UsageError as exc:
        _usage_exit(str(exc))
    except DeclarationError as exc:
        _usage_exit(str(exc))
    except KeyboardInterrupt:
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM from the kubelet: stop the poller and exit like Ctrl-C


def serve(settings: config.ServeSettings) -> int:
    from .app import create_app

    setup_logging(settings.log_format)
    log = logging.getLogger("connect_health")
    client = ConnectClient(settings.connect)
    poller = Poller(client, settings.health, connectors_file=settings.connectors_file)
    app = create_app(poller, settings.health, refresh_seconds=max(2.0, min(settings.poll_interval, 10.0)))
    poller.start(settings.poll_interval)
    log.info("connect-health serving on %s:%d, watching %s as worker %s (scope %s)", settings.host,
             settings.port, settings.connect.safe_url, settings.health.worker_id or "-", settings.health.scope)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if settings.server == "flask":
            app.run(host=settings.host, port=settings.port, threaded=True)
        else:
            from waitress import serve as waitress_serve

            waitress_serve(app, host=settings.host, port=settings.port, threads=8, ident="connect-health",
                           _quiet=True)
    except OSError as exc:
        print(f"connect-health: error: --port: cannot listen on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        poller.stop()
        client.close()
    return 0


def check(ns: argparse.Namespace) -> int:
    connect = config.connect_settings(ns)
    health = config.health_settings(ns, connect)
    fmt = config.choice(ns.output, "--output", ("table", "json"))
    restart = config.boolean(ns.restart, "--restart")
    declared_file = config.readable_file(ns.connectors_file, "--connectors-file")
    if declared_file:
        load_declared(declared_file)  # one-shot: a malformed file is a usage error (exit 2), as for apply
    setup_logging(config.choice(ns.log_format, "--log-format", ("text", "json")))
    logging.getLogger().setLevel(logging.WARNING)
    client = ConnectClient(connect)
    # One look, no history: a failure counts at once, as if the ladder were spent; --restart sends one rung.
    poller = Poller(client, replace(health, restart_attempts=0), connectors_file=declared_file, restart=False)
    view = poller.poll_once()
    restarted: list[str] = []
    if restart and view.observation.snapshot is not None:
        from .model import failing_connectors

        for name in failing_connectors(view.observation.snapshot, health):
            outcome = poller._restart(view.observation.snapshot, name)
            restarted.append(f"restart {name}: {outcome}")
    client.close()
    report = view.report
    obs = view.observation
    healthy = report.livez.ok and obs.reachable and obs.started
    reasons = list(report.livez.reasons)
    if not obs.reachable:
        reasons.insert(0, f"Connect not reachable: {obs.error}")
    elif not obs.started:
        reasons.insert(0, f"worker not started: {obs.startup_detail}")
    if fmt == "json":
        from .app import status_document

        doc = status_document(view, health)
        doc["healthy"] = healthy
        doc["restarts"] = restarted
        print(json.dumps(doc, indent=2))
    else:
        print(_table(view, health))
        for line in restarted:
            print(line)
        print("HEALTHY" if healthy else "UNHEALTHY: " + "; ".join(reasons))
        for warning in report.readyz.warnings:
            print(f"warning: {warning}")
    return 0 if healthy else 1


def _table(view: Any, health: config.HealthSettings) -> str:
    from .redact import trace_line

    header = ("CONNECTOR", "TASK", "STATE", "WORKER", "POLICY", "VERDICT", "REASON")
    rows = [header]
    for r in view.report.rows:
        reason = redact(r.reason)
        trace = trace_line(r.trace, health.traces)
        if trace and r.verdict in ("failed", "restarting"):
            reason += f" | {trace}"
        rows.append((r.connector, "-" if r.task is None else str(r.task), r.state,
                     r.worker_id + (" *" if r.local else ""), r.policy, r.verdict, reason))
    if len(rows) == 1:
        return "no connectors"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    return "\n".join(lines)


def apply_command(ns: argparse.Namespace) -> int:
    from . import apply as apply_mod

    connect = config.connect_settings(ns)
    path = config.readable_file(ns.connectors_file, "--connectors-file")
    assert path is not None
    declared = load_declared(path)
    selector = config.regex(ns.prune_selector, "--prune-selector")
    prune = config.boolean(ns.prune, "--prune")
    if selector is not None and not prune:
        raise config.UsageError("--prune-selector: only meaningful with --prune")
    wait = config.seconds(ns.wait, "--wait")
    dry_run = config.boolean(ns.dry_run, "--dry-run")
    setup_logging(config.choice(ns.log_format, "--log-format", ("text", "json")))
    client = ConnectClient(connect)
    try:
        return apply_mod.run(client, declared, wait=wait, prune=prune, prune_selector=selector, dry_run=dry_run,
                             out=lambda line: print(line, flush=True))
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
