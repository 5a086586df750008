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

Issue 20: a new connector declared paused or stopped is created in that state (``POST /connectors`` with
``initial_state``, Kafka 3.7+); a declared offsets action (KIP-875, Kafka 3.6+) runs once per request string: stop,
wait until no task is left, reset or alter, record the request in the ConfigMap (``kubeapi.RequestsRecord``), then
the declared state. ``apply_connector`` does all of this for ONE connector (what drift correction calls); ``apply``
validates every connector it would write first, then calls it for each. docs/connectors/states-and-offsets.md.
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
from .kubeapi import RecordError, RequestsRecord
from .redact import redact
from .snapshot import ConnectorView, ParseError, Snapshot, parse_expanded

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

    def call(self, what: str, send: Callable[[], Reply],
             not_yet: Callable[[Reply], bool] = lambda reply: reply.retry_later) -> Reply:
        """``not_yet`` says which answers to send again (default: ``Reply.retry_later``)."""
        backoff = 0.5
        self.lost = False
        while True:
            try:
                reply = send()
                if not not_yet(reply):
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
           out: Print, not_yet: Callable[[Reply], bool] = lambda reply: reply.retry_later) -> Reply | None:
    """Send one write, retried by ``retrier``, and judge it by the worker's end state: None when it is done, else
    the answer that refused it.

    A write whose answer was lost (a connection cut after the request went out) may have been done, so its retry can
    be refused for the very reason that it was: a DELETE retried after the first one deleted the connector answers
    404. When an answer was lost, or the answer is a 404 (the connector may be gone already), or no attempt was
    answered by the deadline, ``held()`` reads the worker again: the write is done when the worker holds what was
    declared. Otherwise the answer stands (a refusal) or the last ConnectError is raised."""
    try:
        reply = retrier.call(what, send, not_yet)
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


@dataclass
class Applier:
    """What applying declarations needs besides them: the worker, how its "not now" answers are retried, where each
    line goes, the worker's version (``GET /``; None: unknown), where done offsets requests are recorded (None: no
    ConfigMap configured, an offsets action is refused), and the result so far (writes, refusals)."""

    client: ConnectClient
    retrier: Retrier = NO_RETRY
    out: Print = print
    dry_run: bool = False
    version: str | None = None
    requests: RequestsRecord | None = None
    result: Result = field(default_factory=Result)

    @property
    def kafka(self) -> tuple[int, int] | None:
        return versions.kafka_version(self.version) if self.version is not None else None

    def older_than(self, need: tuple[int, int]) -> bool:
        """Whether the worker is known to run a Kafka older than ``need`` (unknown: not known to be older)."""
        return self.kafka is not None and self.kafka < need

    def refuse(self, line: str) -> None:
        self.result.refused.append(line)


def apply(client: ConnectClient, declared: dict[str, Declared], *, prune: bool = False,
          prune_selector: re.Pattern[str] | None = None, dry_run: bool = False, out: Print = print,
          retrier: Retrier = NO_RETRY, requests: RequestsRecord | None = None) -> Result:
    """Make the worker hold exactly ``declared``: every connector that would be written is validated first (one
    invalid connector: nothing is applied), then each is applied by :func:`apply_connector`, then undeclared ones are
    pruned (``prune``)."""
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

    to_write = [n for n in sorted(declared) if _differs(declared[n], snapshot.connectors.get(n))]
    if to_write:
        wait_for_plugins(client, {declared[n].connector_class for n in to_write}, retrier, out)
    errors: list[str] = []
    for name in to_write:
        errors += _validate(client, declared[name], retrier)
    if errors:
        for line in errors:
            out(f"invalid: {line}")
        result.refused += errors
        out(f"nothing applied: {len(errors)} validation error(s)")
        return result

    applier = Applier(client, retrier, out, dry_run, worker_version(client), requests, result)
    for name in sorted(declared):
        apply_connector(applier, declared[name], snapshot.connectors.get(name), validate=False)

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


def _differs(decl: Declared, have: ConnectorView | None) -> bool:
    return config_differs(decl, have.config if have else None)


def _validate(client: ConnectClient, decl: Declared, retrier: Retrier) -> list[str]:
    return validation_errors(decl.name, decl, retrier.call(f"validate {decl.name}", partial(
        client.validate, decl.connector_class, {**decl.config, "name": decl.name})))


def apply_connector(applier: Applier, decl: Declared, have: ConnectorView | None, *, validate: bool = True) -> bool:
    """Make the worker hold ONE connector's declaration: its config (written only when it differs from ``have``,
    what the worker holds of it, None when it has no such connector; validated first unless ``validate`` is False),
    its offsets action if one is declared and not yet done, then its declared state. A new connector declared
    paused or stopped (or with an offsets action: created STOPPED, so that it never runs on the offsets it is about to
    lose) is created in that state on Kafka 3.7+ (KIP-980); older workers create it running and then pause or stop it
    (the window docs/connectors/states-and-offsets.md describes).

    Every step says one line through ``applier.out``; writes and refusals are counted in ``applier.result``. Returns
    False when something was refused. ``apply`` calls it for each declared connector; drift correction may call it
    for the one connector that drifted."""
    client, out, retrier, result, name = applier.client, applier.out, applier.retrier, applier.result, decl.name
    refused_before = len(result.refused)
    state = have.state if have else None
    target = DESIRED_STATES[decl.state]
    if _differs(decl, have):
        if validate:
            wait_for_plugins(client, {decl.connector_class}, retrier, out)
            errors = _validate(client, decl, retrier)
            if errors:
                for line in errors:
                    out(f"invalid: {line}")
                result.refused += errors
                return False
        verb = "update" if have else "create"
        initial = "STOPPED" if decl.offsets is not None else target
        in_state = have is None and initial != "RUNNING"
        if in_state and (applier.kafka is None or applier.older_than((3, 7))):
            why = versions.describe(applier.version) if applier.version is not None else "a worker of unknown Kafka"
            out(f"create {name}: {why} cannot create a connector {initial.lower()} (initial_state, Kafka 3.7+): it "
                f"runs until it is {initial.lower()}")
            in_state = False
        if applier.dry_run:
            out(f"would {verb} {name}" + (f" {initial} (initial_state)" if in_state else ""))
            state = initial if in_state else state
        elif in_state:
            created = _create_in_state(applier, decl, initial)
            if created is None:
                return False
            state = created
        else:
            result.writes += 1
            refusal = _write(retrier, f"{verb} {name}", partial(client.put_config, name, decl.config),
                             partial(_config_held, client, name, decl), out)
            if refusal is not None:
                _check(refusal, f"{verb} {name}", result)
                return False
            out(f"{verb}d {name}")
            state = state or "RUNNING"
    else:
        out(f"unchanged {name}")
    if decl.offsets is not None:
        state = _offsets(applier, decl, state)
    _set_state(applier, name, state, target)
    return len(result.refused) == refused_before


def _create_in_state(applier: Applier, decl: Declared, target: str) -> str | None:
    """``POST /connectors`` with ``initial_state`` (KIP-980): the connector never runs before it is paused or
    stopped. Returns the state it is then in, None when refused. A 409 "already exists" (created since the worker was
    read, or by an earlier attempt whose answer was lost) is no "not now": the worker is read again, and a connector
    holding another config is updated as any existing connector."""
    client, out, name = applier.client, applier.out, decl.name
    applier.result.writes += 1
    refusal = _write(applier.retrier, f"create {name}", partial(client.create, name, decl.config, target),
                     partial(_config_held, client, name, decl), out, not_yet=_not_yet_created)
    if refusal is None:
        out(f"created {name} {target} (initial_state)")
        return target
    if not _exists(refusal):
        _check(refusal, f"create {name}", applier.result)
        return None
    out(f"create {name}: {refusal.error_message()}: updating it instead")
    applier.result.writes += 1
    refusal = _write(applier.retrier, f"update {name}", partial(client.put_config, name, decl.config),
                     partial(_config_held, client, name, decl), out)
    if refusal is not None:
        _check(refusal, f"update {name}", applier.result)
        return None
    out(f"updated {name}")
    return _read_state(client, name) or "RUNNING"


def _exists(reply: Reply) -> bool:
    return reply.status == 409 and "already exists" in reply.error_message()


def _not_yet_created(reply: Reply) -> bool:
    return reply.retry_later and not _exists(reply)


def _read_state(client: ConnectClient, name: str) -> str | None:
    try:
        reply = client.request("GET", f"{_path(name)}/status")
    except ConnectError:
        return None
    body = reply.body if reply.status == 200 and isinstance(reply.body, dict) else {}
    connector = body.get("connector")
    state = connector.get("state") if isinstance(connector, dict) else None
    return state if isinstance(state, str) else None


def _set_state(applier: Applier, name: str, state: str | None, target: str) -> str | None:
    """Move the connector from ``state`` to ``target`` (stop falls back to pause on workers without STOPPED);
    returns the state it is in afterwards as far as apply knows."""
    client, out, retrier, version = applier.client, applier.out, applier.retrier, applier.version
    action = _state_action(state, target)
    if action == "stop" and version is not None and applier.older_than((3, 5)):
        stays = " (it stays paused)" if state == "PAUSED" else ""
        out(f"stop {name}: {versions.describe(version)} has no STOPPED state (Kafka 3.5+): pausing it "
            f"instead{stays}")
        action, target = (None, "PAUSED") if state == "PAUSED" else ("pause", "PAUSED")
    if action is None:
        return state
    if applier.dry_run:
        out(f"would {action} {name}")
        return state
    applier.result.writes += 1
    refusal = _write(retrier, f"{action} {name}", partial(client.set_state, name, action),
                     partial(_state_held, client, name, target), out)
    if refusal is not None and action == "stop" and _lacks(client, name, refusal):
        out(f"stop {name}: the worker has no PUT {_path(name)}/stop (answered {refusal.status}): pausing it "
            "instead")
        action, target = "pause", "PAUSED"
        refusal = _write(retrier, f"pause {name}", partial(client.set_state, name, "pause"),
                         partial(_state_held, client, name, "PAUSED"), out)
    if refusal is None:
        out(f"{PAST[action]} {name}")
        return target
    _check(refusal, f"{action} {name}", applier.result)
    return state


# --- offsets as code (KIP-875): stop, reset or alter, resume to the declared state, record the request ----------

RESUME = {"RUNNING": "resume", "PAUSED": "pause"}  # from STOPPED back to the declared state (stopped stays)


def _offsets(applier: Applier, decl: Declared, state: str | None) -> str | None:
    """Run the connector's declared offsets action unless its request is among those already done (the ConfigMap
    record), then record it. Refused, with one line and nothing done, on Kafka < 3.6 or without a record. Returns
    the connector's state afterwards (STOPPED once it was stopped for the action): the caller then sets the declared
    state."""
    action = decl.offsets
    assert action is not None
    name, out = decl.name, applier.out
    what = f"offsets {name} (request {action.request!r})"
    if applier.older_than((3, 6)):
        assert applier.version is not None
        applier.refuse(f"{what}: {versions.describe(applier.version)} cannot {action.action} a connector's offsets "
                       "(KIP-875, Kafka 3.6+)")
        return state
    if applier.requests is None:
        applier.refuse(f"{what}: no ConfigMap to record it in (--requests-configmap): not done, as it could "
                       "not be recorded")
        return state
    try:
        done = applier.requests.done(name)
    except RecordError as exc:
        applier.refuse(f"{what}: not done: {exc}")
        return state
    if action.request in done:
        out(f"{what}: done already")
        return state
    if applier.dry_run:
        out(f"would {action.action} the offsets of {name} (request {action.request!r})")
        return state
    if state is None:
        applier.refuse(f"{what}: not done: the connector's state is unknown")
        return state
    stopped, changed = _offsets_action(applier, decl, state, what)
    if changed:
        try:
            applier.requests.record(name, action.request)
        except RecordError as exc:
            applier.refuse(f"{what}: done but NOT recorded ({exc}): the next apply does it again unless the "
                           "request is removed")
        else:
            out(f"{what}: recorded in {applier.requests.where}")
    return "STOPPED" if stopped else state


def _offsets_action(applier: Applier, decl: Declared, state: str, what: str) -> tuple[bool, bool]:
    """Stop the connector, wait until it is STOPPED with no task left, then reset or alter its offsets. Returns
    (whether it is stopped, whether the worker says the offsets were changed); the caller then sets the declared
    state either way."""
    client, out, retrier, name = applier.client, applier.out, applier.retrier, decl.name
    action = decl.offsets
    assert action is not None
    if state != "STOPPED":
        applier.result.writes += 1
        refusal = _write(retrier, f"stop {name}", partial(client.set_state, name, "stop"),
                         partial(_state_held, client, name, "STOPPED"), out)
        if refusal is not None:
            _check(refusal, f"{what}: stop {name}", applier.result)
            return False, False
        out(f"stopped {name} (for its offsets)")
    if not _wait_stopped(applier, name):
        applier.refuse(f"{what}: {name} still had tasks when --wait ran out; its offsets were not changed")
        return True, False
    applier.result.writes += 1
    if action.action == "reset":
        send = partial(client.reset_offsets, name)
    else:
        send = partial(client.alter_offsets, name, [dict(item) for item in action.offsets])
    try:
        reply = retrier.call(f"{action.action} offsets of {name}", send, _offsets_not_yet)
    except ConnectError as exc:
        applier.refuse(f"{what}: no answer ({exc}); the offsets may or may not have changed")
        return True, False
    if not reply.ok:
        _check(reply, f"{what}: {action.action} offsets of {name}", applier.result)
        return True, False
    message = reply.body.get("message") if isinstance(reply.body, dict) else None
    out(f"{action.action} offsets of {name}: {message or reply.status}")
    return True, True


# Connect's answers to an offsets call that mean "not yet" rather than "no" (ConnectorsResource / DistributedHerder /
# Worker, Kafka 3.6+): the connector's STOPPED target state not yet seen by the leader (400), a sink's consumer group
# still holding members of the tasks being shut down (500, "can be safely retried").
OFFSETS_NOT_YET = ("Connectors must be in the STOPPED state", "this operation can be safely retried")


def _offsets_not_yet(reply: Reply) -> bool:
    if reply.retry_later:
        return True
    message = reply.body.get("message") if isinstance(reply.body, dict) else None
    return reply.status in (400, 500) and isinstance(message, str) and any(m in message for m in OFFSETS_NOT_YET)


def _wait_stopped(applier: Applier, name: str) -> bool:
    """Wait (until the retrier's deadline) until the connector is STOPPED with no task: its tasks shut down."""
    retrier = applier.retrier
    while True:
        try:
            reply = applier.client.request("GET", f"{_path(name)}/status")
        except ConnectError:
            reply = Reply(0, None)
        body = reply.body if reply.status == 200 and isinstance(reply.body, dict) else {}
        connector = body.get("connector")
        if isinstance(connector, dict) and connector.get("state") == "STOPPED" and body.get("tasks") == []:
            return True
        if retrier.clock() >= retrier.deadline:
            return False
        retrier.sleep(min(1.0, max(0.1, retrier.deadline - retrier.clock())))


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
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
        requests: RequestsRecord | None = None) -> int:
    """``wait`` bounds the whole run: waiting for the worker, for the plugins, and the retries of 409s."""
    retrier = Retrier(clock() + wait, out, sleep, clock)
    not_ready = wait_ready(client, wait, out, sleep, clock)
    if not_ready is not None:
        out(f"error: the worker at {client.settings.safe_url} was not ready within {wait:g}s: {not_ready}")
        return 1
    try:
        result = apply(client, declared, prune=prune, prune_selector=prune_selector, dry_run=dry_run, out=out,
                       retrier=retrier, requests=requests)
    except ConnectError as exc:
        out(f"error: {exc}")
        return 1
    out(f"applied {len(declared)} declared connector(s), {result.writes} write(s), "
        f"{len(result.refused)} refused")
    return result.exit_code
