"""``connect-health apply``: make the worker hold exactly the declared connectors.

Order: wait for the worker; read what it has (one expanded call); wait until the plugin of every connector that
would be written is listed by GET /connector-plugins (a plugin added in the same upgrade: see ``wait_for_plugins``);
validate every connector that would be written and stop with nothing applied if any is invalid; write configs that
differ; set desired states; prune. A call answered "not now" (``Reply.retry_later``: a 409 during a rebalance, a
500 for a request the worker could not forward to the leader) or not answered at all is retried with backoff until the
``--wait`` deadline, which covers the whole run.
A connector whose config is already what the worker holds gets no write and no validation (the worker accepted
that exact config before), so re-applying an unchanged file sends no write at all.

Writes are judged by the worker's end state (``_write``): a write whose answer was lost may have been done, so when
its retry is refused (a DELETE retried after the first one deleted the connector answers 404) or never answered, the
worker is read again, and the write is a success when the worker holds what was declared. The Kafka version comes
from the worker's ``GET /`` (``versions.py``: Confluent Platform's ``7.4.0-ccs`` is Kafka 3.4); a call the worker
lacks (``PUT .../stop`` before Kafka 3.5) falls back to pause, with one line, and never fails the run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote

from . import versions
from .client import ConnectClient, ConnectError, Reply
from .declared import DESIRED_STATES, Declared, config_differs
from .redact import redact
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


class Retrier:
    """Calls Connect again while it answers "not now" (``Reply.retry_later``) or does not answer, with a backoff
    doubling from 0.5 s up to 5 s, until ``deadline`` (a ``clock()`` value). Every call is tried at least once;
    after the deadline the last answer is returned (or the last ConnectError raised)."""

    def __init__(self, deadline: float, out: Print, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline = deadline
        self.out = out
        self.sleep = sleep
        self.clock = clock
        self.lost = False  # whether an attempt of the last call got no answer (a write it sent may have been done)

    def call(self, what: str, send: Callable[[], Reply]) -> Reply:
        backoff = 0.5
        self.lost = False
        while True:
            try:
                reply = send()
                if not reply.retry_later:
                    return reply
                reason = f"{reply.status}: {reply.error_message()}"
            except ConnectError as exc:
                self.lost = True
                if self.clock() >= self.deadline:
                    raise
                reason = str(exc)
            else:
                if self.clock() >= self.deadline:
                    return reply
            pause = min(backoff, max(0.0, self.deadline - self.clock()))
            self.out(f"retrying {what} in {pause:.1f}s ({reason})")
            self.sleep(pause)
            backoff = min(backoff * 2, 5.0)


NO_RETRY = Retrier(deadline=float("-inf"), out=lambda _: None)


def _listed(connector_class: str, plugins: set[str]) -> bool:
    """Whether GET /connector-plugins lists the class, named in full or by its simple name or alias (Connect
    accepts `FileStreamSink` for `org.apache.kafka.connect.file.FileStreamSinkConnector`)."""
    for plugin in plugins:
        simple = plugin.rsplit(".", 1)[-1]
        if connector_class in (plugin, simple, simple.removesuffix("Connector")):
            return True
    return False


def wait_for_plugins(client: ConnectClient, classes: set[str], retrier: Retrier, out: Print) -> None:
    """Wait (until the retrier's deadline) until GET /connector-plugins lists every class, so that a connector whose
    plugin comes with the same upgrade is validated by a worker that has it. Returns when they are listed, when the
    worker cannot tell (no list), or at the deadline: validation then names the missing class."""
    announced = False
    while True:
        reply = retrier.call("GET /connector-plugins", partial(client.request, "GET", "/connector-plugins"))
        if reply.status != 200 or not isinstance(reply.body, list):
            return
        listed = {p.get("class", "") for p in reply.body if isinstance(p, dict)}
        missing = sorted(c for c in classes if not _listed(c, listed))
        if not missing or retrier.clock() >= retrier.deadline:
            return
        if not announced:
            out(f"waiting for the workers to list {', '.join(missing)} (GET /connector-plugins)")
            announced = True
        retrier.sleep(min(2.0, max(0.1, retrier.deadline - retrier.clock())))


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


def worker_version(client: ConnectClient) -> str | None:
    """The version the worker reports on ``GET /`` (``3.6.2``, ``7.4.0-ccs``); None when it does not answer one."""
    try:
        reply = client.root()
    except ConnectError:
        return None
    version = reply.body.get("version") if reply.ok and isinstance(reply.body, dict) else None
    return version if isinstance(version, str) else None


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
            lines = str(message).splitlines()
            errors.append(redact(f"connector {name}: {value.get('name', '?')}: {lines[0] if lines else ''}"))
    if not errors and isinstance(body.get("error_count"), int) and body["error_count"] > 0:
        errors.append(f"connector {name}: {body['error_count']} validation error(s)")
    return errors


def _check(reply: Reply, what: str, result: Result) -> bool:
    if reply.ok:
        return True
    result.refused.append(f"{what}: refused ({reply.status}): {reply.error_message()}")
    return False


# --- the worker's end state: does it hold what was declared? (a reason when it does, None when it does not) --------

def _path(name: str) -> str:
    return f"/connectors/{quote(name, safe='')}"


def _gone(client: ConnectClient, name: str) -> str | None:
    reply = client.request("GET", _path(name))
    return f"GET {_path(name)} answers 404: gone, as declared" if reply.status == 404 else None


def _config_held(client: ConnectClient, name: str, decl: Declared) -> str | None:
    reply = client.request("GET", f"{_path(name)}/config")
    if reply.status == 200 and isinstance(reply.body, dict) and not config_differs(
            decl, {str(k): str(v) for k, v in reply.body.items() if k != "name"}):
        return f"GET {_path(name)}/config shows the worker holds the declared config"
    return None


def _state_held(client: ConnectClient, name: str, target: str) -> str | None:
    reply = client.request("GET", f"{_path(name)}/status")
    body = reply.body if reply.status == 200 and isinstance(reply.body, dict) else {}
    connector = body.get("connector")
    if isinstance(connector, dict) and connector.get("state") == target:
        return f"GET {_path(name)}/status shows it {target}, as declared"
    return None


def _holds(check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except ConnectError:
        return None


def _write(retrier: Retrier, what: str, send: Callable[[], Reply], held: Callable[[], str | None],
           out: Print) -> Reply | None:
    """Send one write, retried by ``retrier``, and judge it by the worker's end state: None when it is done, else
    the answer that refused it.

    A write whose answer was lost (a connection cut after the request went out) may have been done, so its retry can
    be refused for the very reason that it was: a DELETE retried after the first one deleted the connector answers
    404. When an answer was lost, or the answer is a 404 (the connector may be gone already), or no attempt was
    answered by the deadline, ``held()`` reads the worker again: the write is done when the worker holds what was
    declared. Otherwise the answer stands (a refusal) or the last ConnectError is raised."""
    try:
        reply = retrier.call(what, send)
    except ConnectError as exc:
        reason = _holds(held)
        if reason is None:
            raise
        out(f"{what}: no answer ({exc}), but {reason}")
        return None
    if reply.ok:
        return None
    if retrier.lost or reply.status == 404:
        reason = _holds(held)
        if reason is not None:
            lost = " after an answer was lost" if retrier.lost else ""
            out(f"{what}: answered {reply.status}{lost}; {reason}")
            return None
    return reply


def _lacks(client: ConnectClient, name: str, reply: Reply) -> bool:
    """Whether a 404/405 to a call on connector ``name`` says the worker has no such call (Jersey's answer for an
    unknown path or method) rather than no such connector: the connector itself is still there."""
    if reply.status not in (404, 405):
        return False
    try:
        return client.request("GET", _path(name)).status == 200
    except ConnectError:
        return False


def apply(client: ConnectClient, declared: dict[str, Declared], *, prune: bool = False,
          prune_selector: re.Pattern[str] | None = None, dry_run: bool = False, out: Print = print,
          retrier: Retrier = NO_RETRY) -> Result:
    result = Result()
    call = retrier.call
    reply = call("GET /connectors", client.connectors_expanded)
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
    if to_write:
        wait_for_plugins(client, {declared[n].connector_class for n in to_write}, retrier, out)
    errors: list[str] = []
    for name in to_write:
        decl = declared[name]
        errors += validation_errors(name, decl, call(f"validate {name}", partial(
            client.validate, decl.connector_class, {**decl.config, "name": name})))
    if errors:
        for line in errors:
            out(f"invalid: {line}")
        result.refused += errors
        out(f"nothing applied: {len(errors)} validation error(s)")
        return result

    version = worker_version(client)
    kafka = versions.kafka_version(version) if version is not None else None
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
                refusal = _write(retrier, f"{verb} {name}", partial(client.put_config, name, decl.config),
                                 partial(_config_held, client, name, decl), out)
                if refusal is not None:
                    _check(refusal, f"{verb} {name}", result)
                    continue
                out(f"{verb}d {name}")
                state = state or "RUNNING"
        else:
            out(f"unchanged {name}")
        target = DESIRED_STATES[decl.state]
        action = _state_action(state, target)
        if action == "stop" and version is not None and kafka is not None and kafka < (3, 5):
            stays = " (it stays paused)" if state == "PAUSED" else ""
            out(f"stop {name}: {versions.describe(version)} has no STOPPED state (Kafka 3.5+): pausing it "
                f"instead{stays}")
            action, target = (None, "PAUSED") if state == "PAUSED" else ("pause", "PAUSED")
        if action is None:
            continue
        if dry_run:
            out(f"would {action} {name}")
            continue
        result.writes += 1
        refusal = _write(retrier, f"{action} {name}", partial(client.set_state, name, action),
                         partial(_state_held, client, name, target), out)
        if refusal is not None and action == "stop" and _lacks(client, name, refusal):
            out(f"stop {name}: the worker has no PUT {_path(name)}/stop (answered {refusal.status}): pausing it "
                "instead")
            action = "pause"
            refusal = _write(retrier, f"pause {name}", partial(client.set_state, name, "pause"),
                             partial(_state_held, client, name, "PAUSED"), out)
        if refusal is None:
            out(f"{PAST[action]} {name}")
        else:
            _check(refusal, f"{action} {name}", result)

    if prune:
        for name in sorted(set(snapshot.connectors) - set(declared)):
            if prune_selector is not None and not prune_selector.search(name):
                out(f"kept {name} (undeclared, outside --prune-selector)")
                continue
            if dry_run:
                out(f"would delete {name}")
                continue
            result.writes += 1
            refusal = _write(retrier, f"delete {name}", partial(client.delete, name),
                             partial(_gone, client, name), out)
            if refusal is None:
                out(f"deleted {name}")
            else:
                _check(refusal, f"delete {name}", result)
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
        prune_selector: re.Pattern[str] | None, dry_run: bool, out: Print = print,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """``wait`` bounds the whole run: waiting for the worker, for the plugins, and the retries of 409s."""
    retrier = Retrier(clock() + wait, out, sleep, clock)
    not_ready = wait_ready(client, wait, out, sleep, clock)
    if not_ready is not None:
        out(f"error: the worker at {client.settings.safe_url} was not ready within {wait:g}s: {not_ready}")
        return 1
    try:
        result = apply(client, declared, prune=prune, prune_selector=prune_selector, dry_run=dry_run, out=out,
                       retrier=retrier)
    except ConnectError as exc:
        out(f"error: {exc}")
        return 1
    out(f"applied {len(declared)} declared connector(s), {result.writes} write(s), "
        f"{len(result.refused)} refused")
    return result.exit_code
