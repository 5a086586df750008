"""Property-based tests: arbitrary and malformed Connect answers never crash the parser, the poller or the model.

The parser may only raise ParseError; the poller turns anything into an observation; the model always returns a
Report whose three verdicts are bools, with reasons exactly when a verdict is negative.
"""

from __future__ import annotations

import http.client
import io
import json
import re
from typing import Any

from connect_health import model
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.ladder import Rung
from connect_health.poller import Poller
from connect_health.snapshot import ParseError, Snapshot, parse_expanded
from connect_health.transport import Answer, Transport
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import OTHER, WORKER, health
from .fakeconnect import HEALTHY, FakeClock, fixture

VERDICTS = {"ok", "intended", "transient", "stuck", "restarting", "failed", "remote"}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
any_json = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=40)

# Connect-shaped answers where any part may be replaced by junk: reaches deep into the parser and model.
states = st.sampled_from(["RUNNING", "PAUSED", "STOPPED", "FAILED", "UNASSIGNED", "RESTARTING", "running", "",
                          "DESTROYED"]) | st.text(max_size=8)
workers = st.sampled_from([WORKER, OTHER, "", "10.0.0.7"]) | st.text(max_size=12)


def maybe_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | any_json


task = st.fixed_dictionaries({"id": maybe_junk(st.integers(-2, 5)), "state": maybe_junk(states),
                              "worker_id": maybe_junk(workers)},
                             optional={"trace": maybe_junk(st.text(max_size=200))})
status = st.fixed_dictionaries({
    "name": maybe_junk(st.text(max_size=10)),
    "connector": maybe_junk(st.fixed_dictionaries({"state": maybe_junk(states), "worker_id": maybe_junk(workers)},
                                                  optional={"trace": st.text(max_size=100)})),
    "tasks": maybe_junk(st.lists(maybe_junk(task), max_size=4)),
    "type": maybe_junk(st.sampled_from(["source", "sink", "unknown"])),
})
info = st.fixed_dictionaries({"config": maybe_junk(st.dictionaries(st.text(max_size=8), any_json, max_size=4))})
entry = st.fixed_dictionaries({}, optional={"status": maybe_junk(status), "info": maybe_junk(info)})
connect_like = st.dictionaries(st.text(max_size=12), maybe_junk(entry), max_size=6)

settings_variants = st.builds(
    health,
    scope=st.sampled_from(["worker", "cluster"]),
    grace=st.sampled_from([0.0, 1.0, 300.0]),
    restart_attempts=st.integers(0, 3),
    failure_threshold=st.none() | st.floats(0.1, 100),
    best_effort=st.none() | st.sampled_from([re.compile("a"), re.compile("^$")]),
    traces=st.sampled_from(["redacted", "none"]),
)


def assert_defined(report: model.Report) -> None:
    for verdict in (report.livez, report.readyz, report.startupz):
        assert type(verdict.ok) is bool
        assert verdict.ok == (not verdict.reasons)
        assert all(isinstance(r, str) for r in verdict.reasons + verdict.warnings)
    assert all(r.verdict in VERDICTS for r in report.rows)
    assert set(report.failed_connectors) <= {r.connector for r in report.rows}


def evaluate_any(snapshot: Snapshot, hs: Any, now: float, rung: Rung) -> model.Report:
    failing = model.failing_connectors(snapshot, hs)
    obs = model.Observation(
        now=now, started=True, reachable=True, snapshot=snapshot,
        transient_since=model.track_transient({}, snapshot, now - 500),
        rungs={name: rung for name in failing},
        declared_policies={name: "best-effort" for name in list(snapshot.connectors)[:1]},
    )
    return model.evaluate(obs, hs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=any_json | connect_like, hs=settings_variants, now=st.floats(0, 1e9),
       rung=st.builds(Rung, attempts=st.integers(0, 5), exhausted=st.booleans()))
@example(body=fixture("failed_task_local.json"), hs=health(), now=1.0, rung=Rung(exhausted=True))
@example(body=[], hs=health(), now=1.0, rung=Rung())
def test_parser_raises_only_parse_error_and_model_always_decides(body: Any, hs: Any, now: float, rung: Rung) -> None:
    try:
        snapshot = parse_expanded(body)
    except ParseError:
        assert not isinstance(body, dict)  # a JSON object is always accepted, with bad entries skipped
        return
    assert isinstance(snapshot, Snapshot)
    assert len(snapshot.connectors) + snapshot.skipped == (len(body) if isinstance(body, dict) else 0)
    for conn in snapshot.connectors.values():
        assert isinstance(conn.state, str) and conn.state and isinstance(conn.worker_id, str)
        assert all(isinstance(t.id, int) and not isinstance(t.id, bool) for t in conn.tasks)
        assert conn.config is None or all(isinstance(v, str) for v in conn.config.values())
    report = evaluate_any(snapshot, hs, now, rung)
    assert_defined(report)
    if not report.livez.ok:  # with a reachable, started worker only a critical failure past the ladder fails it
        assert any(r.verdict == "failed" and r.policy == "critical" and r.local for r in report.rows)


@settings(max_examples=100, deadline=None)
@given(started=st.booleans(), reachable=st.booleans(), down_for=st.none() | st.floats(0, 1e6),
       error=st.none() | st.text(max_size=30), hs=settings_variants)
def test_model_decides_without_a_snapshot(started: bool, reachable: bool, down_for: float | None,
                                          error: str | None, hs: Any) -> None:
    obs = model.Observation(now=1e6, started=started, reachable=reachable, error=error,
                            unreachable_since=None if down_for is None else 1e6 - down_for)
    report = model.evaluate(obs, hs)
    assert_defined(report)
    assert report.startupz.ok == started
    if not started:
        assert report.livez.ok and not report.readyz.ok  # the startup window never fails liveness


class _Socket:
    """What http.client.HTTPResponse reads a response from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))


class BytesTransport(Transport):
    """A transport that answers GET /connectors with given bytes, so the poller's real client path (HTTP parsing,
    bounded read, JSON decoding, status handling) sees them without a socket per example."""

    def __init__(self) -> None:
        super().__init__("http://connect.invalid:8083", timeout=1)
        self.status = 200
        self.body = b"{}"

    def send(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        status, data = (200, json.dumps(HEALTHY).encode()) if target.startswith("/health") else (self.status,
                                                                                                 self.body)
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        resp = http.client.HTTPResponse(_Socket(head.encode() + data))  # type: ignore[arg-type]
        resp.begin()
        return Answer(http.client.HTTPConnection("connect.invalid"), resp)


def make_bytes_poller() -> tuple[Poller, BytesTransport, ConnectClient]:
    client = ConnectClient(ConnectSettings(url="http://connect.invalid:8083"))
    adapter = BytesTransport()
    client.transport = adapter
    return Poller(client, health(restart_attempts=0), restart=False, clock=FakeClock()), adapter, client


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([200, 200, 200, 404, 409, 500]), body=st.binary(max_size=300)
       | any_json.map(lambda v: json.dumps(v).encode()) | connect_like.map(lambda v: json.dumps(v).encode()))
@example(status=200, body=b"\xff\xfe{")
@example(status=200, body=b"[" * 100_000)
@example(status=200, body=b'{"a": {"status": {"connector": {"state": "FAILED", "worker_id": "10.0.0.7:8083"}}}}')
def test_any_bytes_through_the_poller_become_a_view(status: int, body: bytes) -> None:
    poller, adapter, client = make_bytes_poller()
    try:
        adapter.status, adapter.body = status, body
        view = poller.poll_once()  # must not raise
    finally:
        client.close()
    obs = view.observation
    assert_defined(view.report)
    assert type(obs.reachable) is bool
    if obs.reachable:
        assert obs.error is None and (obs.snapshot is not None or status == 409)
    else:
        assert isinstance(obs.error, str) and obs.error and "\n" not in obs.error
    if status == 409:  # a rebalance: the last answer stands for a while, with a warning
        assert obs.reachable and any("answered 409" in note for note in obs.notes)
    elif status != 200:
        assert not obs.reachable and f"answered {status}" in (obs.error or "")
