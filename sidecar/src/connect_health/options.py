"""Every setting of the sidecar, each written once: flag, kind (type and bounds), default, help, environment twin
and the chart value that sets it.

Everything else is derived from ``OPTIONS``: the argparse parsers of ``serve``, ``check`` and ``apply``
(:mod:`connect_health.config`), the environment twins ``CONNECT_HEALTH_<FLAG>``, the defaults of the settings
objects, the README's flag table (:func:`markdown_table`) and the ``healthcheck`` part of the chart's
``values.schema.json`` (:func:`chart_schema`; tests/chart/test_settings_agree.py fails on any difference and proves
on boundary values that the chart and the sidecar accept the same values).

A kind turns the text of a flag or environment variable into a value, or raises :class:`Invalid`; the same kind
checks typed values (numbers in the declared connectors file) and writes its JSON schema, so a bound lives in one
place.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from .redact import redact

ENV_PREFIX = "CONNECT_HEALTH_"
COMMANDS = ("serve", "check", "apply")


class UsageError(Exception):
    """A configuration or command-line error; its message is one line naming the option."""


class Invalid(ValueError):
    """A value refused by a kind; the message says what is wrong and quotes the value, without the option."""


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class Kind(Protocol):
    @property
    def metavar(self) -> str: ...

    @property
    def empty_is_unset(self) -> bool:
        """Whether "" means "not set" (the default), as for an optional path or pattern."""
        ...

    def parse(self, text: str) -> Any: ...

    def from_json(self, value: Any) -> Any:
        """A typed value (YAML/JSON, e.g. a chart value): the kind's JSON type, then the rule of ``parse``."""
        ...

    def schema(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


def _text_from_json(kind: Kind, value: Any) -> Any:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {value!r}")
    return kind.parse(value)


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Number:
    """A number with optional bounds; ``whole`` for integers. ``unit`` words the messages ("seconds", "percent")."""

    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    whole: bool = False
    unit: str = ""
    metavar: str = "N"
    empty_is_unset: bool = False

    def bounds(self) -> str:
        low = "" if self.minimum is None else _num(self.minimum)
        if self.maximum is None:
            return f"{'>' if self.exclusive_minimum else '>='} {low}{' seconds' if self.unit == 'seconds' else ''}"
        if self.whole and not self.exclusive_minimum:
            return f"between {low} and {_num(self.maximum)}"
        return f"in {'(' if self.exclusive_minimum else '['}{low}, {_num(self.maximum)}]"

    def within(self, number: float) -> bool:
        if self.minimum is not None and (number < self.minimum or (self.exclusive_minimum and number == self.minimum)):
            return False
        return self.maximum is None or number <= self.maximum

    def parse(self, text: str) -> float | int:
        number: float | int
        try:
            number = int(text.strip()) if self.whole else float(text)
        except ValueError:
            what = {"seconds": "a number of seconds", "percent": "a percentage"}.get(self.unit, "a number")
            raise Invalid(f"expected {'a whole number' if self.whole else what}, got {text!r}") from None
        if not math.isfinite(number):
            raise Invalid(f"expected a finite number, got {text!r}")
        if not self.within(number):
            raise Invalid(f"must be {self.bounds()}, got {text!r}")
        return number

    def from_json(self, value: Any) -> float | int:
        """A typed value (JSON/YAML): a number of the right type within the bounds. 3.0 is a whole number, as in
        JSON Schema; booleans are not numbers."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Invalid(f"expected {'a whole number' if self.whole else 'a number'}, got {value!r}")
        number: float | int = value
        if self.whole:
            if number != int(number):
                raise Invalid(f"expected a whole number, got {value!r}")
            number = int(number)
        if not self.within(number):
            raise Invalid(f"must be {self.bounds()}, got {value!r}")
        return number

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer" if self.whole else "number"}
        if self.minimum is not None:
            key = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
            out[key] = int(self.minimum) if self.minimum == int(self.minimum) else self.minimum
        if self.maximum is not None:
            out["maximum"] = int(self.maximum) if self.maximum == int(self.maximum) else self.maximum
        return out

    def describe(self) -> str:
        base = {"seconds": "seconds", "percent": "percent"}.get(self.unit, "whole number" if self.whole else "number")
        return f"{base}, {self.bounds().removesuffix(' seconds')}"


def seconds(*, positive: bool = False, minimum: float = 0) -> Number:
    """Seconds; ``minimum`` for a period that must not be absurdly short (a poll every 1e-300 s is a busy loop)."""
    return Number(minimum=minimum, exclusive_minimum=positive and not minimum, unit="seconds", metavar="SECONDS")


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words, exactly as written (the chart's enum is case-sensitive too)."""

    values: tuple[str, ...]
    empty_is_unset: bool = False

    @property
    def metavar(self) -> str:
        return "{" + ",".join(self.values) + "}"

    def parse(self, text: str) -> str:
        if text not in self.values:
            raise Invalid(f"expected one of {', '.join(self.values)}, got {text!r}")
        return text

    def from_json(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected one of {', '.join(self.values)}, got {value!r}")
        return self.parse(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}

    def describe(self) -> str:
        return " or ".join(f"`{v}`" for v in self.values)


@dataclass(frozen=True)
class Text:
    metavar: str = "TEXT"
    empty_is_unset: bool = True

    def parse(self, text: str) -> str:
        return text

    def from_json(self, value: Any) -> Any:
        return _text_from_json(self, value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def describe(self) -> str:
        return "text"


@dataclass(frozen=True)
class Regex:
    """A Python regular expression. The chart's schema checks ``format: regex`` (helm uses Go's syntax): the common
    subset of both is what a chart value should use."""

    metavar: str = "REGEX"
    empty_is_unset: bool = True

    def parse(self, text: str) -> re.Pattern[str]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # FutureWarning on "[[": a valid pattern, not an error
                return re.compile(text)
        except re.error as exc:
            raise Invalid(f"invalid regular expression {text!r}: {exc}") from None

    def from_json(self, value: Any) -> Any:
        return _text_from_json(self, value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "regex"}

    def describe(self) -> str:
        return "regex"


@dataclass(frozen=True)
class Url:
    metavar: str = "URL"
    empty_is_unset: bool = False

    def parse(self, text: str) -> str:
        value = text.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(f"expected an http:// or https:// URL with a host, got {redact(text)!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise Invalid(f"invalid port in {redact(text)!r}") from None  # no user:password@ in the message
        return value

    def from_json(self, value: Any) -> Any:
        return _text_from_json(self, value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^https?://"}

    def describe(self) -> str:
        return "URL"


@dataclass(frozen=True)
class File:
    """A path the sidecar must be able to read (checked at start, so a missing mount is a usage error)."""

    metavar: str = "PATH"
    empty_is_unset: bool = True
    directory_ok: bool = False  # a directory of such files will do (readable and listable)

    def parse(self, text: str) -> str:
        if self.directory_ok and os.path.isdir(text):
            if not os.access(text, os.R_OK | os.X_OK):
                raise Invalid(f"cannot read the directory {text!r}")
            return text
        try:
            with open(text, "rb"):
                pass
        except OSError as exc:
            raise Invalid(f"cannot read {text!r}: {exc.strerror or exc}") from None
        return text

    def from_json(self, value: Any) -> Any:
        return _text_from_json(self, value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def describe(self) -> str:
        return "readable file"


class StatePath(File):
    """A file the sidecar writes: its folder must exist and be writable (checked at start: a missing mount is a
    usage error); the file itself may not exist yet."""

    def parse(self, text: str) -> str:
        folder = os.path.dirname(os.path.abspath(text))
        if os.path.isdir(text):
            raise Invalid(f"{text!r} is a directory, not a file")
        if not os.path.isdir(folder):
            raise Invalid(f"folder {folder!r} of {text!r} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise Invalid(f"folder {folder!r} of {text!r} is not writable")
        return text

    def describe(self) -> str:
        return "file in a writable folder"


def worker_id_of(host: str, port: int) -> str:
    """A worker id as Connect writes it: ``host:port``, an IPv6 address in brackets (``[fd00::1]:8083``)."""
    host = host.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


@dataclass(frozen=True)
class WorkerId:
    metavar: str = "HOST:PORT"
    empty_is_unset: bool = True

    def parse(self, text: str) -> str:
        value = text.strip()
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise Invalid(f"expected host:port (as Connect reports worker_id), got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                raise Invalid(f"expected an IPv6 address in the brackets of {text!r}") from None
        elif ":" in host or "[" in host or "]" in host or any(c.isspace() for c in host):
            # '::1' would be read as host '::' port 1: Connect writes IPv6 worker ids as [::1]:8083
            raise Invalid(f"expected host:port with an IPv6 address in brackets ([fd00::1]:8083), got {text!r}")
        return value

    def from_json(self, value: Any) -> Any:
        return _text_from_json(self, value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^.+:[0-9]+$"}

    def describe(self) -> str:
        return "host:port"


@dataclass(frozen=True)
class Switch:
    """A flag without a value; its environment twin takes true/false/1/0/yes/no/on/off (empty: false)."""

    metavar: str = ""
    empty_is_unset: bool = False

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("", "0", "false", "no", "off"):
            return False
        raise Invalid(f"expected true or false, got {text!r}")

    def from_json(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"expected true or false, got {value!r}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def describe(self) -> str:
        return "switch"


@dataclass(frozen=True)
class Option:
    flag: str
    kind: Kind
    help: str
    default: Any = None  # the value when neither flag nor twin is given; None: unset
    commands: tuple[str, ...] = ("serve", "check")
    group: str = "health model"
    chart: str | None = None  # the chart value (under .Values) the chart passes straight to this option
    chart_note: str = ""  # how the chart sets it otherwise
    required_for: tuple[str, ...] = ()
    shown_default: str | None = None  # how to show a computed default

    @property
    def env(self) -> str:
        return env_name(self.flag)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def optional(self) -> bool:
        """Unset is a valid state (default None): the chart's schema then also accepts null."""
        return self.default is None and not isinstance(self.kind, Switch)

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.default is False:
            return "-"
        return _num(self.default) if isinstance(self.default, (int, float)) else str(self.default)

    def convert(self, text: str | None, source: str = "") -> Any:
        """The value for the given text (None: not given). Raises UsageError naming the option (and ``source``)."""
        if text is None or (text == "" and self.kind.empty_is_unset):
            return self.default
        try:
            return self.kind.parse(text)
        except Invalid as exc:
            raise UsageError(f"{self.flag}: {exc}{source}") from None

    def from_json(self, value: Any) -> Any:
        """A typed value for this option (a chart value): null only when the option may be unset, "" as for text."""
        if value is None:
            if self.optional:
                return None
            raise Invalid(f"expected {self.kind.describe()}, got None")
        if value == "" and isinstance(value, str) and self.kind.empty_is_unset:
            return self.default
        return self.kind.from_json(value)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of this option's chart value."""
        out = self.kind.schema()
        if self.optional:
            out["type"] = [out["type"], "null"]
        out["description"] = f"`{self.flag}`: {self.help}"
        return out


# Also each declared connector's restartAttempts (connect_health.declared).
RESTART_ATTEMPTS = Number(minimum=0, maximum=100, whole=True)

CONNECT = "Connect REST API"
SERVER = "server"
CHECK = "check"
APPLY = "apply"
DECLARED = "declared connectors"
RECONCILE = "drift correction"
ALL = COMMANDS

OPTIONS: tuple[Option, ...] = (
    # --- reaching Connect -------------------------------------------------------------------------------------
    Option("--connect-url", Url(), "base URL of the Connect worker's REST API", "http://127.0.0.1:8083", ALL, CONNECT,
           chart_note="`http://127.0.0.1:<restPort>` (https with TLS)"),
    Option("--connect-user", Text(), "basic-auth user", None, ALL, CONNECT,
           chart_note="`healthcheck.auth.username` (with `existingSecret`)"),
    Option("--connect-password-file", File(),
           f"file holding the basic-auth password (a mounted Secret); or set {ENV_PREFIX}CONNECT_PASSWORD", None, ALL,
           CONNECT, chart_note="the key `healthcheck.auth.passwordKey` of `healthcheck.auth.existingSecret`"),
    Option("--connect-ca-file", File(), "CA bundle for https", None, ALL, CONNECT),
    Option("--connect-client-cert", File(), "client certificate (mTLS)", None, ALL, CONNECT),
    Option("--connect-client-key", File(), "client key (mTLS); needs --connect-client-cert", None, ALL, CONNECT),
    Option("--request-timeout", seconds(minimum=0.1), "seconds each REST call may take in all (connect, "
           "headers and the whole body)", 5.0,
           ALL, CONNECT, chart="healthcheck.requestTimeout"),
    Option("--log-format", Choice(("text", "json")), "log lines as text or one JSON object each", "text", ALL,
           "output", chart="healthcheck.logFormat"),
    # --- the health model -------------------------------------------------------------------------------------
    Option("--worker-id", WorkerId(), "this pod's worker id as Connect reports it; without it and without POD_IP, "
           "the host and port of --connect-url", shown_default="`$POD_IP:<port of --connect-url>`",
           chart_note="`$POD_IP` from the downward API"),
    Option("--scope", Choice(("worker", "cluster")),
           "worker: only this worker's connectors and tasks count; cluster: all of them", "worker",
           chart="healthcheck.scope"),
    Option("--grace", seconds(), "seconds UNASSIGNED and RESTARTING are tolerated before they are reported", 300.0,
           chart="healthcheck.grace"),
    Option("--restart-attempts", RESTART_ATTEMPTS,
           "REST restarts per connector before a failure counts (0 disables the ladder)", 3,
           chart="healthcheck.restartAttempts"),
    Option("--restart-backoff", seconds(), "seconds before the first retry, doubling after each attempt", 30.0,
           chart="healthcheck.restartBackoff"),
    Option("--restart-reset", seconds(), "seconds a connector must run cleanly before its attempts reset", 300.0,
           chart="healthcheck.restartReset"),
    Option("--unresponsive-after", seconds(positive=True), "seconds of failed polls after which liveness fails", 60.0,
           chart="healthcheck.unresponsiveAfter"),
    Option("--herder-stuck-after", seconds(positive=True),
           "seconds GET /health (on Kafka < 3.9: the herder probe) may keep failing while GET / answers (the "
           "worker is alive, its herder busy or stuck: a broker outage) before liveness fails", 600.0,
           chart="healthcheck.herderStuckAfter"),
    Option("--best-effort", Regex(), "regex of connector names whose failures never fail liveness", None,
           chart="healthcheck.bestEffort"),
    Option("--failure-threshold",
           Number(minimum=0, exclusive_minimum=True, maximum=100, unit="percent", metavar="PERCENT"),
           "percent of this worker's connector instances and tasks that must have failed past the ladder to fail "
           "liveness (unset: any failure counts)", None, chart="healthcheck.failureThreshold"),
    Option("--flap-window", seconds(positive=True), "seconds over which a connector that failed past the ladder "
           "is judged: it stays failed while FAILED in at least half of this window's polls", 40.0,
           chart="healthcheck.flapWindow"),
    Option("--pod-restarts", Number(minimum=0, maximum=100, whole=True),
           "liveness failures (pod restarts) one connector may cause per --pod-restart-window; none again when the "
           "last one did not fix it; 0: a connector's failure never fails liveness", 2,
           chart="healthcheck.podRestarts"),
    Option("--pod-restart-window", seconds(positive=True), "seconds over which --pod-restarts are counted", 3600.0,
           chart="healthcheck.podRestartWindow"),
    Option("--traces", Choice(("redacted", "none")),
           "redacted: first line of each trace with secrets masked; none: drop traces", "redacted",
           chart="healthcheck.traces"),
    Option("--connectors-file", File(directory_ok=True), "declared connectors (JSON or YAML map keyed by "
           "connector name, or a directory of such files, each connector in one): apply writes them; serve and "
           "check report drift and use each one's policy and restartAttempts", None, ALL,
           DECLARED, required_for=("apply",), chart_note="`connectors` (ConfigMaps, sharded past 1 MiB)"),
    # --- serve ------------------------------------------------------------------------------------------------
    Option("--host", Text(), "address to listen on; `::` listens on IPv6 and IPv4 (falling back to 0.0.0.0 "
           "where IPv6 is off)", "::", ("serve",), SERVER, chart="healthcheck.host"),
    Option("--port", Number(minimum=1, maximum=65535, whole=True, metavar="PORT"), "port to listen on", 8090,
           ("serve",), SERVER, chart="healthcheck.port"),
    Option("--probe-port", Number(minimum=1, maximum=65535, whole=True, metavar="PORT"),
           "a second port serving only /livez, /readyz, /startupz, /health and /ping, with its own thread (for "
           "the kubelet's probes; the pages and /metrics stay on --port, which answers the probes too); unset: "
           "none", None, ("serve",), SERVER, chart="healthcheck.probePort"),
    Option("--poll-interval", seconds(minimum=0.1), "seconds between polls", 5.0, ("serve",), SERVER,
           chart="healthcheck.pollInterval"),
    Option("--pages-token-file", File(), "file holding a token that /status and /metrics then require "
           "(`Authorization: Bearer <token>`); the probes stay open", None, ("serve",), SERVER),
    Option("--server", Choice(("waitress", "flask")), "waitress (production) or flask (development only)",
           "waitress", ("serve",), SERVER),
    Option("--state-file", StatePath(), "file where the pod restarts spent, the ladder's attempts and the last "
           "restarts per connector are kept across the sidecar's own restarts (written atomically; an unreadable or "
           "foreign file is ignored with one warning); unset: kept in memory only", None, ("serve",), SERVER,
           chart_note="`/var/run/connect-health/state.json` on an emptyDir (it survives both containers' restarts, "
           "not the pod)"),
    Option("--kubernetes-events", Switch(), "also post each restart sent and each /livez change as an Event on this "
           "pod, with its service-account token (needs POD_NAME and create on events); off: log lines only", False,
           ("serve",), SERVER, chart_note="`rbac.events` (with the Role allowing it)"),
    # --- drift correction (reconcile.py, lease.py) --------------------------------------------------------------
    Option("--reconcile", Switch(), "re-apply a declared connector (from --connectors-file) that drifted: config "
           "changed, deleted, paused or resumed by hand; only while the worker answers, and by one pod at a time "
           "(--reconcile-lease)", False, ("serve",), RECONCILE, chart_note="`connectorsReconcile.enabled`"),
    Option("--reconcile-lease", Text(metavar="NAME"), "name of the Kubernetes Lease (coordination.k8s.io/v1) in "
           "this pod's namespace whose holder alone corrects drift (needs get, update on it and create on leases, "
           "and POD_NAME); unset: this sidecar corrects alone (one worker only)", None, ("serve",), RECONCILE,
           chart_note="`<fullname>-reconcile` with `connectorsReconcile.enabled`"),
    Option("--reconcile-lease-duration", seconds(minimum=3), "seconds a Lease holder that stops renewing keeps "
           "it before another pod takes over (it renews every third of that and stops writing after two thirds)",
           15.0, ("serve",), RECONCILE, chart_note="`connectorsReconcile.leaseDurationSeconds`"),
    Option("--reconcile-after", seconds(), "seconds a drift must last (and be seen by two polls at least) before "
           "it is corrected: longer than the kubelet takes to update a mounted ConfigMap (about a minute), so a "
           "new revision written by the apply Job is never reverted from a pod's older file", 90.0, ("serve",),
           RECONCILE),
    # --- check ------------------------------------------------------------------------------------------------
    Option("--restart", Switch(), "send one rung of the restart ladder to every connector failing on this worker",
           False, ("check",), CHECK),
    Option("--output", Choice(("table", "json")), "table or json", "table", ("check",), CHECK),
    # --- apply ------------------------------------------------------------------------------------------------
    Option("--prune", Switch(), "delete connectors that are not declared", False, ("apply",), APPLY,
           chart="connectorsApply.prune"),
    Option("--prune-selector", Regex(), "with --prune: delete only undeclared connectors whose names match", None,
           ("apply",), APPLY, chart="connectorsApply.pruneSelector"),
    Option("--wait", seconds(), "seconds to wait for the worker to be ready", 300.0, ("apply",), APPLY,
           chart="connectorsApply.wait"),
    Option("--dry-run", Switch(), "validate and print the plan, change nothing", False, ("apply",), APPLY),
    Option("--requests-configmap", Text(), "ConfigMap (in CONNECT_HEALTH_NAMESPACE, else the pod's namespace) where "
           "the offsets requests done per connector are recorded, through the Kubernetes API with the pod's "
           "service-account token; unset: a declared offsets action is refused", None, ("apply",), APPLY,
           chart_note="`<fullname>-connector-requests`, rendered by the chart"),
)

BY_FLAG = {o.flag: o for o in OPTIONS}


def option(flag: str) -> Option:
    return BY_FLAG[flag]


def default(flag: str) -> Any:
    """The table's default of a flag, for the settings objects' field defaults."""
    return BY_FLAG[flag].default


def for_command(command: str) -> Iterator[Option]:
    return (o for o in OPTIONS if command in o.commands)


def chart_schema() -> dict[str, dict[str, Any]]:
    """{chart value path: its JSON schema} for every option the chart passes straight through."""
    return {o.chart: o.schema() for o in OPTIONS if o.chart}


def markdown_table() -> str:
    """The README's flag table."""
    lines = ["| flag | environment twin | commands | default | chart value | takes | meaning |",
             "|---|---|---|---|---|---|---|"]
    for o in OPTIONS:
        commands = ", ".join(o.commands)
        if o.required_for:
            commands += f" (required for {', '.join(o.required_for)})"
        chart = f"`{o.chart}`" if o.chart else o.chart_note or ("`healthcheck.extraEnv`" if "serve" in o.commands
                                                                 else "-")
        dflt = o.default_text()
        if dflt != "-" and not dflt.startswith("`"):
            dflt = f"`{dflt}`"
        meaning = o.help.replace("|", "\\|")
        lines.append(f"| `{o.flag}` | `{o.env}` | {commands} | {dflt} | {chart} | {o.kind.describe()} | {meaning} |")
    return "\n".join(lines) + "\n"
