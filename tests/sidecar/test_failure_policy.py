"""The failure classes' policy in the pure model (issue 21), table-driven over real-shaped Connect answers:
transient and unknown -> today's ladder then liveness; credentials, configuration, data -> one restart, a readiness
warning "needs-action", never liveness; resource -> one restart, then liveness (a fresh JVM)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from connect_health import failures, ladder, model
from connect_health.ladder import Rung
from connect_health.snapshot import parse_expanded
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import health
from .fakeconnect import fixture
from .test_failures import CASES as TRACES

NOW = 10_000.0


def with_trace(trace: str) -> Any:
    """failed_task_local.json (jdbc-sink task 0 FAILED on this worker) with another trace."""
    body = copy.deepcopy(fixture("failed_task_local.json"))
    body["jdbc-sink"]["status"]["tasks"][0]["trace"] = trace
    return body


def judge(body: Any, rung: Rung, **overrides: Any) -> model.Report:
    obs = model.Observation(now=NOW, started=True, reachable=True, snapshot=parse_expanded(body),
                            rungs={"jdbc-sink": rung})
    return model.evaluate(obs, health(**overrides))


EXHAUSTED_ONE = Rung(attempts=1, next_at=NOW - 1, exhausted=True)
EXHAUSTED = Rung(attempts=3, next_at=NOW - 1, exhausted=True)
POLICY = {"transient": "liveness", "unknown": "liveness", "resource": "liveness",
          "credentials": "needs-action", "configuration": "needs-action", "data": "needs-action"}


@pytest.mark.parametrize("text,cls", [c[1:] for c in TRACES], ids=[c[0] for c in TRACES])
def test_policy_past_the_ladder(text: str, cls: str) -> None:
    report = judge(with_trace(text), EXHAUSTED_ONE if cls in failures.ONE_REST_RESTART else EXHAUSTED)
    row = next(r for r in report.rows if (r.connector, r.task) == ("jdbc-sink", 0))
    assert row.cls == cls and row.hint and row.verdict == "failed"
    assert report.classes == {"jdbc-sink": cls}
    assert "jdbc-sink" in report.failed_connectors
    if POLICY[cls] == "liveness":
        assert not report.livez.ok and report.live_failed == ("jdbc-sink",) and report.needs_action == ()
    else:
        assert report.livez.ok and report.readyz.ok and report.live_failed == ()
        assert report.needs_action == ("jdbc-sink",)
        warning = next(w for w in report.readyz.warnings if w.startswith("needs-action: "))
        assert f"a {cls} failure" in warning and row.hint in warning


def test_needs_action_for_a_credentials_fixture_and_the_hint_on_the_warning() -> None:
    report = judge(fixture("failed_task_credentials.json"), EXHAUSTED_ONE)
    assert report.livez.ok and report.needs_action == ("jdbc-sink",)
    assert any("user/password" in w for w in report.readyz.warnings)


@pytest.mark.parametrize("cls,limit", [("transient", 3), ("unknown", 3), ("resource", 1), ("credentials", 1),
                                       ("configuration", 1), ("data", 1)])
def test_restart_attempts_per_class(cls: str, limit: int) -> None:
    assert model.class_limits({}, {"c": cls}, health(restart_attempts=3)).get("c", 3) == limit
    assert model.class_limits({"c": 5}, {"c": cls}, health()).get("c") == (1 if limit == 1 else 5)
    assert model.class_limits({"c": 0}, {"c": cls}, health()) == {"c": 0}  # a disabled ladder stays disabled


def test_the_ladder_sends_one_restart_for_a_needs_action_failure() -> None:
    hs = health(restart_attempts=3, restart_backoff=10)
    snapshot = parse_expanded(fixture("failed_task_credentials.json"))
    limits = model.class_limits({}, model.connector_classes(snapshot, hs), hs)
    rungs, due = ladder.plan({}, ["jdbc-sink"], snapshot.connectors, NOW, hs, limits)
    assert due == ["jdbc-sink"]
    rungs["jdbc-sink"] = ladder.record(rungs["jdbc-sink"], "requested", NOW, hs)
    sent = 1
    for t in range(1, 100):
        rungs, due = ladder.plan(rungs, ["jdbc-sink"], snapshot.connectors, NOW + 10 * t, hs, limits)
        sent += len(due)
    assert sent == 1 and rungs["jdbc-sink"].exhausted


# The guarantee: a failure that failed liveness before the classes (a transient or unrecognised failure past the
# ladder) still does, whatever its message says around the transient cause.
TRANSIENT_ROOTS = [t for _, t, c in TRACES if c in ("transient", "unknown")]


@settings(max_examples=60, deadline=None)
@given(root=st.sampled_from(TRANSIENT_ROOTS), words=st.text(alphabet="abcdefghij XYZ:", max_size=40))
def test_a_transient_failure_past_the_ladder_still_fails_liveness(root: str, words: str) -> None:
    wrapped = f"org.apache.kafka.connect.errors.ConnectException: {words}\n\tat a.B.c(B.java:1)\nCaused by: " + root
    cls = failures.classify(wrapped).cls
    assert cls in ("transient", "unknown")
    report = judge(with_trace(wrapped), EXHAUSTED)
    assert not report.livez.ok and report.live_failed == ("jdbc-sink",)


def test_one_transient_task_keeps_the_connector_on_the_ladder() -> None:
    body = with_trace(TRACES[0][1])  # task 0: connection refused
    body["jdbc-sink"]["status"]["connector"] = {"state": "FAILED", "worker_id": "10.0.0.7:8083",
                                                "trace": "org.apache.kafka.common.config.ConfigException: bad"}
    report = judge(json.loads(json.dumps(body)), EXHAUSTED)
    assert report.classes["jdbc-sink"] == "transient" and not report.livez.ok
