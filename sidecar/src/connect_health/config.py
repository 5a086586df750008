"""Settings objects of ``serve``, ``check`` and ``apply``, and the parser that builds them.

The flags, their environment twins ``CONNECT_HEALTH_<FLAG>``, kinds, bounds and defaults are the table in
:mod:`connect_health.options`; this module only turns a parsed command line into settings. A flag given on the
command line wins over its twin. Invalid values raise :class:`UsageError` with one line naming the option; the CLI
turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .options import COMMANDS, ENV_PREFIX, Option, Switch, UsageError, default, env_name, for_command, worker_id_of

__all__ = ["ApplySettings", "CheckSettings", "ConnectSettings", "HealthSettings", "ServeSettings", "UsageError",
           "build_parser", "env_name", "parse", "settings_for"]


@dataclass(frozen=True)
class ConnectSettings:
    """How to reach the Connect worker's REST API."""

    url: str = default("--connect-url")
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None  # read again whenever it changes (a rotated Secret) and after a 401/403
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = default("--request-timeout")

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
    scope: str = default("--scope")  # worker | cluster
    grace: float = default("--grace")
    restart_attempts: int = default("--restart-attempts")
    restart_backoff: float = default("--restart-backoff")
    restart_reset: float = default("--restart-reset")
    unresponsive_after: float = default("--unresponsive-after")
    herder_stuck_after: float = default("--herder-stuck-after")
    best_effort: re.Pattern[str] | None = None
    failure_threshold: float | None = None
    traces: str = default("--traces")  # redacted | none
    flap_window: float = default("--flap-window")
    pod_restarts: int = default("--pod-restarts")
    pod_restart_window: float = default("--pod-restart-window")


@dataclass(frozen=True)
class ServeSettings:
    """``connect-health serve``."""

    connect: ConnectSettings
    health: HealthSettings
    host: str = default("--host")
    port: int = default("--port")
    probe_port: int | None = None
    poll_interval: float = default("--poll-interval")
    connectors_file: str | None = None
    log_format: str = default("--log-format")
    server: str = default("--server")
    pages_token_file: str | None = None
    kubernetes_events: bool = False
    state_file: str | None = None
    reconcile: bool = False
    reconcile_lease: str | None = None
    reconcile_lease_duration: float = default("--reconcile-lease-duration")
    reconcile_after: float = default("--reconcile-after")

    @property
    def refresh_seconds(self) -> float:
        """How often the HTML status page reloads itself: the poll interval, kept between 2 and 10 s."""
        return max(2.0, min(self.poll_interval, 10.0))


@dataclass(frozen=True)
class CheckSettings:
    """``connect-health check``: one poll, a table or JSON, exit 0 healthy / 1 unhealthy."""

    connect: ConnectSettings
    health: HealthSettings
    connectors_file: str | None = None
    restart: bool = False
    output: str = default("--output")
    log_format: str = default("--log-format")


@dataclass(frozen=True)
class ApplySettings:
    """``connect-health apply``: make the worker hold exactly the declared connectors."""

    connect: ConnectSettings
    connectors_file: str
    prune: bool = False
    prune_selector: re.Pattern[str] | None = None
    wait: float = default("--wait")
    dry_run: bool = False
    log_format: str = default("--log-format")
    requests_configmap: str | None = None


Settings = ServeSettings | CheckSettings | ApplySettings


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


COMMAND_HELP = {
    "serve": "run the sidecar HTTP server with its background poller",
    "check": "poll once, print a table, exit 0 healthy / 1 unhealthy",
    "apply": "create, update, pause, stop (and prune) declared connectors",
}


def _help(o: Option, command: str) -> str:
    text = o.help
    if o.default_text() != "-":
        text += f" (default {o.default_text().strip('`')})"
    if command in o.required_for:
        text += " (required)"
    return f"{text} [env {o.env}]".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The parser of all three commands, from the option table. It stores the flags' raw text (None: not given);
    :func:`settings_for` reads the environment twins and converts."""
    from . import __version__

    parser = OneLineParser(
        prog="connect-health",
        description="Health sidecar for Kafka Connect: probes, restart ladder, metrics, status page.",
    )
    parser.add_argument("--version", action="version", version=f"connect-health {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{serve,check,apply}", parser_class=OneLineParser)
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command, help=COMMAND_HELP[command])
        groups: dict[str, Any] = {}
        for o in for_command(command):
            group = groups.get(o.group) or groups.setdefault(o.group, p.add_argument_group(o.group))
            if isinstance(o.kind, Switch):
                group.add_argument(o.flag, action="store_const", const=True, default=None, help=_help(o, command))
            else:
                group.add_argument(o.flag, default=None, metavar=o.kind.metavar, help=_help(o, command))
    return parser


def values(ns: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every option of ``command``, converted: the flag's text, else its environment twin's, else the default."""
    out: dict[str, Any] = {}
    for o in for_command(command):
        given = getattr(ns, o.dest, None)
        if given is True:  # a switch given on the command line
            out[o.dest] = True
            continue
        source = ""
        if given is None and o.env in os.environ:
            given, source = os.environ[o.env], f" (from {o.env})"
        value = o.convert(given, source)
        if value is None and command in o.required_for:
            raise UsageError(f"{o.flag}: required (or set {o.env})")
        out[o.dest] = value
    return out


def read_secret(path: str) -> str:
    """A mounted secret's text (UTF-8, without the trailing newline). Raises ValueError with one line (never the
    content) when it cannot be read or is not UTF-8."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(64 * 1024)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def connect_settings(v: dict[str, Any]) -> ConnectSettings:
    password: str | None = None
    if v["connect_password_file"]:
        try:
            password = read_secret(v["connect_password_file"])
        except ValueError as exc:
            raise UsageError(f"--connect-password-file: {exc}") from None
    elif os.environ.get(ENV_PREFIX + "CONNECT_PASSWORD"):
        password = os.environ[ENV_PREFIX + "CONNECT_PASSWORD"]
    if password is not None and not v["connect_user"]:
        raise UsageError("--connect-user: a password was given but no user")
    if v["connect_client_key"] and not v["connect_client_cert"]:
        raise UsageError("--connect-client-key: given without --connect-client-cert")
    return ConnectSettings(
        url=v["connect_url"],
        user=v["connect_user"],
        password=password,
        password_file=v["connect_password_file"],
        ca_file=v["connect_ca_file"],
        client_cert=v["connect_client_cert"],
        client_key=v["connect_client_key"],
        request_timeout=v["request_timeout"],
    )


def health_settings(v: dict[str, Any], connect: ConnectSettings) -> HealthSettings:
    scope = v["scope"]
    wid: str | None = v["worker_id"]
    if wid is None and os.environ.get("POD_IP"):
        wid = worker_id_of(os.environ["POD_IP"], connect.rest_port)  # [fd00::1]:8083 for an IPv6 pod
    elif wid is None and scope == "worker":
        # Outside Kubernetes the worker usually advertises the host it is reached on.
        host = urlsplit(connect.url).hostname or "127.0.0.1"
        wid = worker_id_of(host, connect.rest_port)
    return HealthSettings(
        worker_id=wid,
        scope=scope,
        grace=v["grace"],
        restart_attempts=v["restart_attempts"],
        restart_backoff=v["restart_backoff"],
        restart_reset=v["restart_reset"],
        unresponsive_after=v["unresponsive_after"],
        herder_stuck_after=v["herder_stuck_after"],
        best_effort=v["best_effort"],
        failure_threshold=v["failure_threshold"],
        traces=v["traces"],
        flap_window=v["flap_window"],
        pod_restarts=v["pod_restarts"],
        pod_restart_window=v["pod_restart_window"],
    )


def serve_settings(ns: argparse.Namespace) -> ServeSettings:
    v = values(ns, "serve")
    connect = connect_settings(v)
    if v["probe_port"] is not None and v["probe_port"] == v["port"]:
        raise UsageError(f"--probe-port: must differ from --port ({v['port']})")
    if v["reconcile"] and not v["connectors_file"]:
        raise UsageError("--reconcile: needs --connectors-file (the declared connectors it restores)")
    if v["reconcile_lease"] and not v["reconcile"]:
        raise UsageError("--reconcile-lease: only meaningful with --reconcile")
    return ServeSettings(connect=connect, health=health_settings(v, connect), host=v["host"], port=v["port"],
                         probe_port=v["probe_port"],
                         poll_interval=v["poll_interval"], connectors_file=v["connectors_file"],
                         log_format=v["log_format"], server=v["server"],
                         pages_token_file=v["pages_token_file"], kubernetes_events=v["kubernetes_events"],
                         state_file=v["state_file"], reconcile=v["reconcile"],
                         reconcile_lease=v["reconcile_lease"], reconcile_lease_duration=v["reconcile_lease_duration"],
                         reconcile_after=v["reconcile_after"])


def check_settings(ns: argparse.Namespace) -> CheckSettings:
    v = values(ns, "check")
    connect = connect_settings(v)
    return CheckSettings(connect=connect, health=health_settings(v, connect), connectors_file=v["connectors_file"],
                         restart=v["restart"], output=v["output"], log_format=v["log_format"])


def apply_settings(ns: argparse.Namespace) -> ApplySettings:
    v = values(ns, "apply")
    if v["prune_selector"] is not None and not v["prune"]:
        raise UsageError("--prune-selector: only meaningful with --prune")
    return ApplySettings(connect=connect_settings(v), connectors_file=v["connectors_file"], prune=v["prune"],
                         prune_selector=v["prune_selector"], wait=v["wait"], dry_run=v["dry_run"],
                         log_format=v["log_format"], requests_configmap=v["requests_configmap"])


def settings_for(ns: argparse.Namespace) -> Settings:
    if ns.command == "serve":
        return serve_settings(ns)
    if ns.command == "check":
        return check_settings(ns)
    return apply_settings(ns)


def parse(argv: list[str] | None = None) -> Settings:
    """Command line (and environment) -> the settings of the command. Usage errors: exit 2 or UsageError."""
    return settings_for(build_parser().parse_args(argv))
