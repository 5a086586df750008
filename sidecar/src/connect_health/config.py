"""Command-line and environment configuration.

Every flag has an environment twin ``CONNECT_HEALTH_<FLAG>`` (``--connect-url`` -> ``CONNECT_HEALTH_CONNECT_URL``);
a flag given on the command line wins over its twin. Invalid values raise :class:`UsageError` with one line naming
the option; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .redact import redact

ENV_PREFIX = "CONNECT_HEALTH_"


class UsageError(Exception):
    """A configuration or command-line error; its message is one line naming the option."""


@dataclass(frozen=True)
class ConnectSettings:
    """How to reach the Connect worker's REST API."""

    url: str = "http://127.0.0.1:8083"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = 5.0

    @property
    def rest_port(self) -> int:
        parts = urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        return 443 if parts.scheme == "https" else 80

    @property
    def safe_url(self) -> str:
        """The URL without any credentials, for logs and pages."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True)
class HealthSettings:
    """Inputs of the health model and the restart ladder."""

    worker_id: str | None = None
    scope: str = "worker"  # worker | cluster
    grace: float = 300.0
    restart_attempts: int = 3
    restart_backoff: float = 30.0
    restart_reset: float = 300.0
    unresponsive_after: float = 60.0
    best_effort: re.Pattern[str] | None = None
    failure_threshold: float | None = None
    traces: str = "redacted"  # redacted | none


@dataclass(frozen=True)
class ServeSettings:
    connect: ConnectSettings
    health: HealthSettings
    host: str = "0.0.0.0"
    port: int = 8090
    poll_interval: float = 5.0
    connectors_file: str | None = None
    log_format: str = "text"
    server: str = "waitress"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class _EnvDefault(argparse.Action):
    """An argparse action whose default comes from the flag's environment twin."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        flag = next(o for o in option_strings if o.startswith("--"))
        self.env = env_name(flag)
        if self.env in os.environ and kwargs.get("nargs") != 0:
            kwargs["default"] = os.environ[self.env]
            kwargs["required"] = False
        help_text = kwargs.get("help") or ""
        kwargs["help"] = f"{help_text} [env {self.env}]".strip()
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)


class _EnvFlag(argparse.Action):
    """A boolean switch whose environment twin accepts true/false/1/0/yes/no."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        flag = next(o for o in option_strings if o.startswith("--"))
        self.env = env_name(flag)
        default: Any = False
        if self.env in os.environ:
            default = os.environ[self.env]
        help_text = kwargs.pop("help", "")
        super().__init__(option_strings, dest, nargs=0, default=default,
                         help=f"{help_text} [env {self.env}]", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)


def add_connect_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Connect REST API")
    g.add_argument("--connect-url", action=_EnvDefault, default="http://127.0.0.1:8083",
                   help="base URL of the Connect worker's REST API")
    g.add_argument("--connect-user", action=_EnvDefault, default=None, help="basic-auth user")
    g.add_argument("--connect-password-file", action=_EnvDefault, default=None,
                   help="file holding the basic-auth password (a mounted Secret); "
                        f"or set {ENV_PREFIX}CONNECT_PASSWORD")
    g.add_argument("--connect-ca-file", action=_EnvDefault, default=None, help="CA bundle for https")
    g.add_argument("--connect-client-cert", action=_EnvDefault, default=None, help="client certificate (mTLS)")
    g.add_argument("--connect-client-key", action=_EnvDefault, default=None, help="client key (mTLS)")
    g.add_argument("--request-timeout", action=_EnvDefault, default="5",
                   help="seconds to wait for each REST call (connect and read)")
    p.add_argument("--log-format", action=_EnvDefault, default="text", help="text or json")


def add_health_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("health model")
    g.add_argument("--worker-id", action=_EnvDefault, default=None,
                   help="this pod's worker id (host:port); default $POD_IP:<port of --connect-url>")
    g.add_argument("--scope", action=_EnvDefault, default="worker",
                   help="worker: only this worker's connectors and tasks count; cluster: all of them")
    g.add_argument("--grace", action=_EnvDefault, default="300",
                   help="seconds UNASSIGNED and RESTARTING are tolerated before they are reported")
    g.add_argument("--restart-attempts", action=_EnvDefault, default="3",
                   help="REST restarts per connector before a failure counts (0 disables the ladder)")
    g.add_argument("--restart-backoff", action=_EnvDefault, default="30",
                   help="seconds before the first retry, doubling after each attempt")
    g.add_argument("--restart-reset", action=_EnvDefault, default="300",
                   help="seconds a connector must run cleanly before its attempts reset")
    g.add_argument("--unresponsive-after", action=_EnvDefault, default="60",
                   help="seconds of failed polls after which liveness fails")
    g.add_argument("--best-effort", action=_EnvDefault, default=None,
                   help="regex of connector names whose failures never fail liveness")
    g.add_argument("--failure-threshold", action=_EnvDefault, default=None,
                   help="percent of this worker's tasks that must have failed past the ladder to fail liveness")
    g.add_argument("--traces", action=_EnvDefault, default="redacted",
                   help="redacted: first line of each trace with secrets masked; none: drop traces")
    g.add_argument("--connectors-file", action=_EnvDefault, default=None,
                   help="declared connectors (JSON or YAML): drift reports and per-connector policy")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(
        prog="connect-health",
        description="Health sidecar for Kafka Connect: probes, restart ladder, metrics, status page.",
    )
    parser.add_argument("--version", action="version", version=f"connect-health {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{serve,check,apply}", parser_class=OneLineParser)
    sub.required = True

    serve = sub.add_parser("serve", help="run the sidecar HTTP server with its background poller")
    add_connect_options(serve)
    add_health_options(serve)
    serve.add_argument("--host", action=_EnvDefault, default="0.0.0.0", help="address to listen on")
    serve.add_argument("--port", action=_EnvDefault, default="8090", help="port to listen on")
    serve.add_argument("--poll-interval", action=_EnvDefault, default="5", help="seconds between polls")
    serve.add_argument("--server", action=_EnvDefault, default="waitress",
                       help="waitress (production) or flask (development only)")

    check = sub.add_parser("check", help="poll once, print a table, exit 0 healthy / 1 unhealthy")
    add_connect_options(check)
    add_health_options(check)
    check.add_argument("--restart", action=_EnvFlag, help="run one rung of the restart ladder")
    check.add_argument("--output", action=_EnvDefault, default="table", help="table or json")

    apply = sub.add_parser("apply", help="create, update, pause, stop (and prune) declared connectors")
    add_connect_options(apply)
    apply.add_argument("--connectors-file", action=_EnvDefault, default=None, required=True,
                       help="declared connectors (JSON or YAML map keyed by connector name)")
    apply.add_argument("--prune", action=_EnvFlag, help="delete connectors that are not declared")
    apply.add_argument("--prune-selector", action=_EnvDefault, default=None,
                       help="regex: --prune deletes only undeclared connectors whose names match")
    apply.add_argument("--wait", action=_EnvDefault, default="300",
                       help="seconds to wait for the worker to be ready")
    apply.add_argument("--dry-run", action=_EnvFlag, help="validate and print the plan, change nothing")
    return parser


# --- value checks: each raises UsageError naming the option -------------------------------------------

def seconds(value: Any, option: str, *, allow_zero: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option}: expected a number of seconds, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageError(f"{option}: expected a finite number of seconds, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise UsageError(f"{option}: must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")
    return number


def integer(value: Any, option: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{option}: expected a whole number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise UsageError(f"{option}: must be {bound}, got {value!r}")
    return number


def boolean(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise UsageError(f"{option}: expected true or false, got {value!r}")


def choice(value: Any, option: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise UsageError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")
    return text


def regex(value: Any, option: str) -> re.Pattern[str] | None:
    if value in (None, ""):
        return None
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise UsageError(f"{option}: invalid regular expression {value!r}: {exc}") from None


def url(value: Any, option: str) -> str:
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option}: expected an http:// or https:// URL with a host, got {redact(str(value))!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"{option}: invalid port in {redact(str(value))!r}") from None  # no user:password@
    return text


def readable_file(value: Any, option: str) -> str | None:
    if value in (None, ""):
        return None
    path = str(value)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None
    return path


def worker_id(value: Any, option: str) -> str:
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"{option}: expected host:port (as Connect reports worker_id), got {value!r}")
    return text


def connect_settings(ns: argparse.Namespace) -> ConnectSettings:
    password: str | None = None
    password_file = readable_file(ns.connect_password_file, "--connect-password-file")
    if password_file:
        with open(password_file, encoding="utf-8", errors="replace") as fh:
            password = fh.read().rstrip("\r\n")
    elif os.environ.get(ENV_PREFIX + "CONNECT_PASSWORD"):
        password = os.environ[ENV_PREFIX + "CONNECT_PASSWORD"]
    if password is not None and not ns.connect_user:
        raise UsageError("--connect-user: a password was given but no user")
    cert = readable_file(ns.connect_client_cert, "--connect-client-cert")
    key = readable_file(ns.connect_client_key, "--connect-client-key")
    if key and not cert:
        raise UsageError("--connect-client-key: given without --connect-client-cert")
    timeout = seconds(ns.request_timeout, "--request-timeout", allow_zero=False)
    return ConnectSettings(
        url=url(ns.connect_url, "--connect-url"),
        user=ns.connect_user or None,
        password=password,
        ca_file=readable_file(ns.connect_ca_file, "--connect-ca-file"),
        client_cert=cert,
        client_key=key,
        request_timeout=timeout,
    )


def health_settings(ns: argparse.Namespace, connect: ConnectSettings) -> HealthSettings:
    scope = choice(ns.scope, "--scope", ("worker", "cluster"))
    wid: str | None = None
    if ns.worker_id:
        wid = worker_id(ns.worker_id, "--worker-id")
    elif os.environ.get("POD_IP"):
        wid = f"{os.environ['POD_IP'].strip()}:{connect.rest_port}"
    elif scope == "worker":
        # Outside Kubernetes the worker usually advertises the host it is reached on.
        host = urlsplit(connect.url).hostname or "127.0.0.1"
        wid = f"{host}:{connect.rest_port}"
    threshold: float | None = None
    if ns.failure_threshold not in (None, ""):
        try:
            threshold = float(ns.failure_threshold)
        except ValueError:
            raise UsageError(f"--failure-threshold: expected a percentage, got {ns.failure_threshold!r}") from None
        if not 0 < threshold <= 100:
            raise UsageError(f"--failure-threshold: must be in (0, 100], got {ns.failure_threshold!r}")
    return HealthSettings(
        worker_id=wid,
        scope=scope,
        grace=seconds(ns.grace, "--grace"),
        restart_attempts=integer(ns.restart_attempts, "--restart-attempts", maximum=100),
        restart_backoff=seconds(ns.restart_backoff, "--restart-backoff"),
        restart_reset=seconds(ns.restart_reset, "--restart-reset"),
        unresponsive_after=seconds(ns.unresponsive_after, "--unresponsive-after", allow_zero=False),
        best_effort=regex(ns.best_effort, "--best-effort"),
        failure_threshold=threshold,
        traces=choice(ns.traces, "--traces", ("redacted", "none")),
    )


def serve_settings(ns: argparse.Namespace) -> ServeSettings:
    connect = connect_settings(ns)
    return ServeSettings(
        connect=connect,
        health=health_settings(ns, connect),
        host=str(ns.host),
        port=integer(ns.port, "--port", minimum=1, maximum=65535),
        poll_interval=seconds(ns.poll_interval, "--poll-interval", allow_zero=False),
        connectors_file=readable_file(ns.connectors_file, "--connectors-file"),
        log_format=choice(ns.log_format, "--log-format", ("text", "json")),
        server=choice(ns.server, "--server", ("waitress", "flask")),
    )
