"""``connect-health serve | check | apply``: parse the settings, run the command. Usage errors exit 2 with one
line; never a traceback."""

from __future__ import annotations

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
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # keeps probe requests out of the dev server's log


def _usage_exit(message: str) -> NoReturn:
    print(f"connect-health: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = config.parse(argv)
        if isinstance(settings, config.ServeSettings):
            return serve(settings)
        if isinstance(settings, config.CheckSettings):
            return check(settings)
        return apply_command(settings)
    except (config.UsageError, DeclarationError) as exc:
        _usage_exit(redact(str(exc)))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, never a traceback (which could quote a secret)
        print(f"connect-health: internal error: {type(exc).__name__}: {redact(str(exc))[:300]}", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM from the kubelet: stop the poller and exit like Ctrl-C


# waitress, sized so that nothing a client sends can starve the probes (issue 11, item 3): requests are read by
# the event loop (a half-sent request holds no thread), idle connections are closed after CHANNEL_TIMEOUT, bodies
# over MAX_BODY are refused (413) before they are read, and the heavy pages get at most app.HEAVY_LANE of THREADS.
# server.py adds the request deadline, the per-address and total bounds (the latter from the open-file limit,
# replacing waitress's connection_limit) and counted, not traced, accept failures (issue 18, item 2).
THREADS = 8
WAITRESS = {"threads": THREADS, "channel_timeout": 10, "cleanup_interval": 1,
            "max_request_body_size": 4096, "max_request_header_size": 16384, "backlog": 1024,
            "asyncore_use_poll": True, "ident": "connect-health"}


def serve(settings: config.ServeSettings) -> int:
    from . import listen
    from . import server as server_mod
    from .app import build

    setup_logging(settings.log_format)
    log = logging.getLogger("connect_health")
    sock = listen.bind(settings.host, settings.port)  # before the poller: a bad address sends nothing to Connect
    probe_sock = None
    if settings.probe_port is not None:
        try:
            probe_sock = listen.bind(settings.host, settings.probe_port, "--probe-port")
        except config.UsageError:
            sock.close()
            raise
    before, after = server_mod.raise_open_files()
    log.info("open files: soft limit %s", f"raised from {before} to {after} (the hard limit)" if after != before
             else f"{after} (already the hard limit)")
    if probe_sock is None:
        total, probe_total = server_mod.total_bound(after), 0
    else:
        total, probe_total = server_mod.split_bound(after)
    # Threads building /metrics or /status hold the GIL in 5 ms slices by default; 1 ms slices let a probe through
    # sooner while they run (bench/FAULTS.md, heavy pages at 3,000 connectors).
    sys.setswitchinterval(0.001)
    sidecar = build(settings)
    probes = None
    if probe_sock is not None:  # the probe port's own process (probe_process.py)
        from .probe_process import ProbeProcess

        rendered = sidecar.wsgi
        probes = ProbeProcess(probe_sock, lambda: rendered.answers(sidecar.poller.view), total=probe_total)
        probes.start()
    sidecar.start()  # the poller's threads first: they keep this thread's priority, the pages' threads do not
    server_mod.yield_to_probes()
    server = None
    if settings.server == "waitress":
        server = server_mod.create(sidecar.wsgi, sock, total, **WAITRESS)
    else:
        sock.close()  # the development server binds again itself
    log.info("connect-health serving on %s:%d%s, watching %s as worker %s (scope %s)", settings.host,
             settings.port, f" (probes also on port {settings.probe_port})" if probes else "",
             settings.connect.safe_url, settings.health.worker_id or "-", settings.health.scope)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if server is None:
            sidecar.app.run(host=settings.host, port=settings.port, threaded=True)
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()
        if probes is not None:
            probes.stop()
        sidecar.stop()
    return 0


def check(settings: config.CheckSettings) -> int:
    from . import status

    if settings.connectors_file:
        load_declared(settings.connectors_file)  # one-shot: a malformed file is a usage error (exit 2), as for apply
    setup_logging(settings.log_format)
    logging.getLogger().setLevel(logging.WARNING)
    health = settings.health
    client = ConnectClient(settings.connect)
    # One look, no history: a failure counts at once, as if the ladder were spent; --restart sends one rung.
    poller = Poller(client, replace(health, restart_attempts=0), connectors_file=settings.connectors_file,
                    restart=False)
    try:
        view = poller.poll_once()
        restarted = [f"restart {name}: {outcome}" for name, outcome in poller.restart_failing()] \
            if settings.restart else []
    finally:
        client.close()
    report = view.report
    obs = view.observation
    healthy = report.livez.ok and obs.reachable and obs.started
    reasons = list(report.livez.reasons)
    if obs.sidecar_error:
        healthy = False  # nothing could be judged: not a verdict of healthy
        reasons.insert(0, f"the sidecar cannot judge Connect: {obs.sidecar_error}")
    elif not obs.reachable:
        reasons.insert(0, f"Connect not reachable: {obs.error}")
    elif not obs.started:
        reasons.insert(0, f"worker not started: {obs.startup_detail}")
    if settings.output == "json":
        doc = status.status_document(view, health)
        doc["healthy"] = healthy
        doc["restarts"] = restarted
        print(json.dumps(doc, indent=2))
    else:
        print(status.table(view, health))
        for line in restarted:
            print(line)
        print("HEALTHY" if healthy else "UNHEALTHY: " + "; ".join(reasons))
        for warning in report.readyz.warnings:
            print(f"warning: {warning}")
    return 0 if healthy else 1


def apply_command(settings: config.ApplySettings) -> int:
    from . import apply as apply_mod
    from .kubeapi import RequestsRecord

    declared = load_declared(settings.connectors_file)
    setup_logging(settings.log_format)
    record = None
    if settings.requests_configmap:
        try:
            record = RequestsRecord.from_environment(settings.requests_configmap)
        except ValueError as exc:
            _usage_exit(str(exc))
    client = ConnectClient(settings.connect)
    try:
        return apply_mod.run(client, declared, wait=settings.wait, prune=settings.prune,
                             prune_selector=settings.prune_selector, dry_run=settings.dry_run,
                             out=lambda line: print(redact(line), flush=True), requests=record)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
