"""``connect-health apply``: make the worker hold exactly the declared connectors.

Order: wait for the worker; read what it has (one expanded call); validate every connector that would be written
and stop with nothing applied if any is invalid; write configs that differ; set desired states; prune.
A connector whose config is already what the worker holds gets no write and no validation (the worker accepted
that exact config before), so re-applying an unchanged file sends no write at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .client import ConnectClient, ConnectError, Reply
from .declared import DESIRED_STATES, Declared, config_differs
from .snapshot import ParseError, Snapshot, parse_expanded

Print = Callable[[str], None]
PAST = {"pause": "paused", "resume": "resumed", "stop": "stopped"}


@dataclass
class Result:
    refused: list[str] = field(default_factory=list)
    writes: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.refused else 0


def wait_ready(client: ConnectClient, timeout: float, out: Print, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> str | None:
    """Wait until the worker lists connectors. Returns None when ready, else the last reason."""
    deadline = clock() + timeout
    reason = "no answer"
    announced = False
    while True:
        try:
            health = client.health()
            if health.status in (200, 404):
                reply = client.request("GET", "/connectors")
                if reply.status == 200:
                    return None
                reason = f"GET /connectors answered {reply.status}: {reply.error_message()}"
            else:
                reason = f"GET /health answered {health.status}"
        except ConnectError as exc:
            reason = str(exc)
        if clock() >= deadline:
            return reason
        if not announced:
            out(f"waiting up to {timeout:g}s for the worker at {client.settings.safe_url} ({reason})")
            announced = True
        sleep(min(2.0, max(0.1, deadline - clock())))


def worker_version(client: ConnectClient) -> tuple[int, ...]:
    try:
        reply = client.root()
    except ConnectError:
        return ()
    version = reply.body.get("version") if isinstance(reply.body, dict) else None
    if not isinstance(version, str):
        return ()
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def validation_errors(name: str, decl: Declared, reply: Reply) -> list[str]:
    if reply.status != 200:
        return [f"connector {name}: connector.class: {reply.error_message()}"]
    body = reply.body if isinstance(reply.body, dict) else {}
    errors: list[str] = []
    for item in body.get("configs", []) if isinstance(body.get("configs"), list) else []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            continue
        for message in value.get("errors") or []:
            errors.append(f"connector {name}: {value.get('name', '?')}: {str(message).splitlines()[0]}")
    if not errors and isinstance(body.get("error_count"), int) and body["error_count"] > 0:
        errors.append(f"connector {name}: {body['error_count']} validation error(s)")
    return errors


def _check(reply: Reply, what: str, result: Result) -> bool:
    if reply.ok:
        return True
    result.refused.append(f"{what}: refused ({reply.status}): {reply.error_message()}")
    return False


def apply(client: ConnectClient, declared: dict[str, Declared], *, prune: bool = False,
          prune_selector: re.Pattern[str] | None = None, dry_run: bool = False, out: Print = print) -> Result:
    result = Result()
    reply = client.connectors_expanded()
    if reply.status != 200:
        result.refused.append(f"GET /connectors answered {reply.status}: {reply.error_message()}")
        return result
    try:
        snapshot: Snapshot = parse_expanded(reply.body)
    except ParseError as exc:
        result.refused.append(f"unexpected answer from GET /connectors: {exc}")
        return result

    to_write = [n for n in sorted(declared)
                if config_differs(declared[n], (snapshot.connectors[n].config
                                                if n in snapshot.connectors else None))]
    errors: list[str] = []
    for name in to_write:
        decl = declared[name]
        errors += validation_errors(name, decl, client.validate(decl.connector_class, {**decl.config, "name": name}))
    if errors:
        for line in errors:
            out(f"invalid: {line}")
        result.refused += errors
        out(f"nothing applied: {len(errors)} validation error(s)")
        return result

    version = worker_version(client)
    for name in sorted(declared):
        decl = declared[name]
        have = snapshot.connectors.get(name)
        state = have.state if have else None
        if name in to_write:
            verb = "update" if have else "create"
            if dry_run:
                out(f"would {verb} {name}")
            else:
                result.writes += 1
                if not _check(client.put_config(name, decl.config), f"{verb} {name}", result):
                    continue
                out(f"{verb}d {name}")
                state = state or "RUNNING"
        else:
            out(f"unchanged {name}")
        target = DESIRED_STATES[decl.state]
        action = _state_action(state, target)
        if action is None:
            continue
        if action == "stop" and version and version < (3, 5):
            result.refused.append(f"stop {name}: state stopped needs Kafka >= 3.5 (worker runs "
                                  f"{'.'.join(map(str, version))})")
            continue
        if dry_run:
            out(f"would {action} {name}")
            continue
        result.writes += 1
        if _check(client.set_state(name, action), f"{action} {name}", result):
            out(f"{PAST[action]} {name}")

    if prune:
        for name in sorted(set(snapshot.connectors) - set(declared)):
            if prune_selector is not None and not prune_selector.search(name):
                out(f"kept {name} (undeclared, outside --prune-selector)")
                continue
            if dry_run:
                out(f"would delete {name}")
                continue
            result.writes += 1
            if _check(client.delete(name), f"delete {name}", result):
                out(f"deleted {name}")
    for line in result.refused:
        out(f"refused: {line}")
    return result


def _state_action(actual: str | None, target: str) -> str | None:
    if actual is None or actual == target:
        return None
    if target == "PAUSED":
        return "pause"
    if target == "STOPPED":
        return "stop"
    if actual in ("PAUSED", "STOPPED"):
        return "resume"
    return None


def run(client: ConnectClient, declared: dict[str, Declared], *, wait: float, prune: bool,
        prune_selector: re.Pattern[str] | None, dry_run: bool, out: Print = print) -> int:
    not_ready = wait_ready(client, wait, out)
    if not_ready is not None:
        out(f"error: the worker at {client.settings.safe_url} was not ready within {wait:g}s: {not_ready}")
        return 1
    try:
        result = apply(client, declared, prune=prune, prune_selector=prune_selector, dry_run=dry_run, out=out)
    except ConnectError as exc:
        out(f"error: {exc}")
        return 1
    out(f"applied {len(declared)} declared connector(s), {result.writes} write(s), "
        f"{len(result.refused)} refused")
    return result.exit_code
