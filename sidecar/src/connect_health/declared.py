"""Connectors declared as code: loading the file, normalising configs, and drift against the worker.

The file is a JSON or YAML map keyed by connector name::

    my-sink:
      config: {connector.class: FileStreamSink, topics: lines, file: /data/out.txt}
      state: running        # running | paused | stopped   (default running)
      policy: critical      # critical | best-effort       (default critical)
      restartAttempts: 0    # optional: this connector's restart ladder (default: --restart-attempts)
      offsets:              # optional: a one-shot offsets action (KIP-875, Kafka 3.6+), see OffsetsAction
        request: "2026-12-06"   # done once per distinct value (recorded by `apply`); change it to ask again
        action: reset           # reset | set (set takes offsets: [{partition: {...}, offset: {...}}, ...])

``FIELDS`` is the one place the rules of state, policy and restartAttempts are written (restartAttempts takes
the bounds of ``--restart-attempts``); the chart's schema for ``connectors`` is checked against it. ``offsets`` is
an object of its own (``parse_offsets``; its schema: ``offsets_schema``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kubeapi import CONFIGMAP_KEY
from .options import RESTART_ATTEMPTS, Choice, Invalid, Number
from .snapshot import Snapshot

DESIRED_STATES = {"running": "RUNNING", "paused": "PAUSED", "stopped": "STOPPED"}
POLICIES = ("critical", "best-effort")


@dataclass(frozen=True)
class Field:
    """A key of a declared connector besides ``config``: its kind, its default when absent, what it means."""

    kind: Choice | Number
    default: Any
    help: str

    def schema(self) -> dict[str, Any]:
        return {**self.kind.schema(), "description": self.help}


FIELDS = {
    "state": Field(Choice(tuple(DESIRED_STATES)), "running", "Desired state, set by the apply Job"),
    "policy": Field(Choice(POLICIES), "critical",
                    "critical: a failure past the restart ladder fails liveness; best-effort: only a warning"),
    "restartAttempts": Field(RESTART_ATTEMPTS, None, "This connector's restart ladder, overriding "
                             "healthcheck.restartAttempts (0: a failure counts at once)"),
}


OFFSETS_ACTIONS = ("reset", "set")
MAX_REQUEST = 253  # characters of an offsets request (KEEP of them per connector fit a ConfigMap value easily)


class DeclarationError(Exception):
    """The connectors file is unreadable or malformed; the message names the connector and key."""


@dataclass(frozen=True)
class OffsetsAction:
    """A one-shot offsets action (KIP-875): ``reset`` (``DELETE /connectors/{name}/offsets``) or ``set``
    (``PATCH /connectors/{name}/offsets`` with ``{"offsets": offsets}``, items ``{"partition": {...}, "offset":
    {...} | null}`` as Connect takes them: a sink's ``{"kafka_topic", "kafka_partition"}`` / ``{"kafka_offset"}``, a
    source's own shapes). Done once per distinct ``request``: ``apply`` records the requests it did."""

    request: str
    action: str
    offsets: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Declared:
    name: str
    config: dict[str, str]
    state: str = "running"
    policy: str = "critical"
    restart_attempts: int | None = None  # overrides --restart-attempts for this connector
    offsets: OffsetsAction | None = None

    @property
    def connector_class(self) -> str:
        return self.config["connector.class"]


def config_value(value: Any) -> str:
    """Connect stores every config value as a string; render YAML scalars the way Connect would read them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(config_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse(data: Any, source: str = "connectors file") -> dict[str, Declared]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeclarationError(f"{source}: expected a map keyed by connector name, got {type(data).__name__}")
    out: dict[str, Declared] = {}
    for name, entry in data.items():
        where = f"{source}: connector {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise DeclarationError(f"{source}: connector names must be non-empty strings, got {name!r}")
        if not isinstance(entry, dict):
            raise DeclarationError(f"{where}: expected a map with config/state/policy")
        unknown = set(entry) - {"config", *FIELDS, "offsets"}
        if unknown:
            raise DeclarationError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                                   f"(allowed: config, {', '.join(FIELDS)}, offsets)")
        config = entry.get("config")
        if not isinstance(config, dict):
            raise DeclarationError(f"{where}: config must be a map")
        norm = {str(k): config_value(v) for k, v in config.items()}
        if not norm.get("connector.class"):
            raise DeclarationError(f"{where}: config.connector.class is required")
        if "name" in norm and norm["name"] != name:
            raise DeclarationError(f"{where}: config.name {norm['name']!r} differs from the connector's key")
        norm.pop("name", None)
        fields = {key: field_value(entry, key, where) for key in FIELDS}
        offsets = parse_offsets(entry["offsets"], name, f"{where}: offsets") if "offsets" in entry else None
        out[name] = Declared(name=name, config=norm, state=fields["state"], policy=fields["policy"],
                             restart_attempts=fields["restartAttempts"], offsets=offsets)
    return out


def parse_offsets(value: Any, connector: str, where: str) -> OffsetsAction:
    """A declared ``offsets`` object, checked; DeclarationError names the first thing wrong, in one line."""
    if not isinstance(value, dict):
        raise DeclarationError(f"{where}: expected a map with request and action, got {type(value).__name__}")
    unknown = sorted(set(value) - {"request", "action", "offsets"})
    if unknown:
        raise DeclarationError(f"{where}: unknown key {unknown[0]!r} (allowed: request, action, offsets)")
    request = value.get("request")
    if not isinstance(request, str) or not request.strip():
        raise DeclarationError(f"{where}: request: expected a non-empty string (change it to ask for the action "
                               f"again), got {request!r}")
    if len(request) > MAX_REQUEST:
        raise DeclarationError(f"{where}: request: at most {MAX_REQUEST} characters, got {len(request)}")
    action = value.get("action")
    if action not in OFFSETS_ACTIONS:
        raise DeclarationError(f"{where}: action: expected one of {', '.join(OFFSETS_ACTIONS)}, got {action!r}")
    if not CONFIGMAP_KEY.fullmatch(connector):
        raise DeclarationError(f"{where}: the connector's name is where its done requests are recorded (a "
                               "ConfigMap key: letters, digits, '-', '_', '.', at most 253): rename the connector "
                               "or set its offsets by hand")
    items = value.get("offsets")
    if action == "reset":
        if items is not None:
            raise DeclarationError(f"{where}: offsets: only with action set (reset clears them all)")
        return OffsetsAction(request, action)
    if not isinstance(items, list) or not items:
        raise DeclarationError(f"{where}: offsets: action set needs a non-empty list of "
                               "{partition: {...}, offset: {...}} items")
    for i, item in enumerate(items):
        at = f"{where}: offsets[{i}]"
        if not isinstance(item, dict) or set(item) != {"partition", "offset"}:
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise DeclarationError(f"{at}: expected exactly the keys partition and offset, got {keys}")
        if not isinstance(item["partition"], dict) or not item["partition"]:
            raise DeclarationError(f"{at}: partition: expected a non-empty map, got {item['partition']!r}")
        if item["offset"] is not None and not isinstance(item["offset"], dict):
            raise DeclarationError(f"{at}: offset: expected a map (or null to clear it), got {item['offset']!r}")
    return OffsetsAction(request, action, tuple(items))


def offsets_schema() -> dict[str, Any]:
    """The JSON schema of a declared connector's ``offsets`` (the chart's ``connectors.*.offsets``)."""
    item = {"type": "object", "additionalProperties": False, "required": ["partition", "offset"],
            "properties": {"partition": {"type": "object", "minProperties": 1},
                           "offset": {"type": ["object", "null"]}}}
    return {"type": "object", "additionalProperties": False, "required": ["request", "action"],
            "description": "A one-shot offsets action (KIP-875, Kafka 3.6+), done once per distinct request",
            "properties": {"request": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST, "pattern": r"\S"},
                           "action": {"type": "string", "enum": list(OFFSETS_ACTIONS)},
                           "offsets": {"type": "array", "minItems": 1, "items": item}},
            "if": {"properties": {"action": {"const": "set"}}},
            "then": {"required": ["offsets"]}, "else": {"not": {"required": ["offsets"]}}}


def field_value(entry: Mapping[str, Any], key: str, where: str) -> Any:
    """The value of ``key`` in one declared connector: its default when absent, else checked by its kind."""
    field = FIELDS[key]
    if key not in entry:
        return field.default
    try:
        return field.kind.from_json(entry[key])
    except Invalid as exc:
        raise DeclarationError(f"{where}: {key}: {exc}") from None


def load(path: str) -> dict[str, Declared]:
    """The declared connectors of a file, or of every file of a directory (the chart's shards, past one
    ConfigMap's 1 MiB). In a directory, names starting with "." are skipped (the kubelet's ``..data`` machinery), and
    a connector declared in two files is refused naming both."""
    if os.path.isdir(path):
        return load_dir(path)
    return load_file(path)


def load_dir(path: str) -> dict[str, Declared]:
    out: dict[str, Declared] = {}
    where: dict[str, str] = {}
    try:
        names = sorted(n for n in os.listdir(path) if not n.startswith("."))
    except OSError as exc:
        raise DeclarationError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for name in names:
        file = os.path.join(path, name)
        for connector, decl in load_file(file).items():
            if connector in out:
                raise DeclarationError(f"{path}: connector {connector!r} is declared in {where[connector]} "
                                       f"and in {name}")
            out[connector], where[connector] = decl, name
    return out


def load_file(path: str) -> dict[str, Declared]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise DeclarationError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DeclarationError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})") from None
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DeclarationError(f"{path}: not valid JSON: {exc}") from None
    else:
        import yaml  # only for YAML files: the chart mounts JSON, and PyYAML costs the sidecar ~1 MB of RSS

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DeclarationError(f"{path}: not valid YAML: {first}") from None
    return parse(data, path)


def comparable(config: Mapping[str, str]) -> dict[str, str]:
    """Config as the worker reports it, without the name key Connect adds."""
    return {k: v for k, v in config.items() if k != "name"}


def config_differs(declared: Declared, actual: Mapping[str, str] | None) -> bool:
    return actual is None or comparable(actual) != declared.config


def drift(declared: Mapping[str, Declared], snapshot: Snapshot | None) -> list[tuple[str, str, str]]:
    """(connector, kind, detail) for each declared connector that is missing, differs, or is in another state."""
    if snapshot is None:
        return []
    out: list[tuple[str, str, str]] = []
    for name in sorted(declared):
        want = declared[name]
        have = snapshot.connectors.get(name)
        if have is None:
            out.append((name, "missing", f"declared connector {name} is missing from the worker"))
            continue
        if have.config is not None and config_differs(want, have.config):
            keys = sorted(set(want.config) ^ set(comparable(have.config))
                          | {k for k in want.config if have.config.get(k) != want.config[k]})
            out.append((name, "config", f"connector {name} config differs from the declaration "
                                        f"(keys: {', '.join(keys[:5])})"))
        target = DESIRED_STATES[want.state]
        if have.state in DESIRED_STATES.values() and have.state != target:
            out.append((name, "state", f"connector {name} is {have.state}, declared {want.state}"))
    return out
