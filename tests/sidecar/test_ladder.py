"""The restart ladder: ladder.plan decides who is restarted when, ladder.record accounts for the answer."""

from __future__ import annotations

import pytest
from connect_health.ladder import Rung, plan, record

from .conftest import health

S = health(restart_attempts=3, restart_backoff=30.0, restart_reset=300.0)


def step(rungs: dict[str, Rung], now: float, failing: tuple[str, ...] = ("x",), present: tuple[str, ...] = ("x",),
         outcome: str = "requested", settings: object = S) -> tuple[dict[str, Rung], list[str]]:
    """One poll: plan, then record ``outcome`` for every restart the plan asked for."""
    rungs, todo = plan(rungs, failing, present, now, settings)  # type: ignore[arg-type]
    for name in todo:
        rungs[name] = record(rungs[name], outcome, now, settings)  # type: ignore[arg-type]
    return rungs, todo


def test_backoff_doubles_and_exhaustion_comes_only_after_the_last_wait() -> None:
    rungs: dict[str, Rung] = {}
    rungs, todo = step(rungs, 0)
    assert todo == ["x"] and rungs["x"].attempts == 1 and rungs["x"].next_at == 30

    timeline = [  # (time, restarted?, attempts after, exhausted after)
        (29.9, False, 1, False),
        (30.0, True, 2, False),  # waited 30 s
        (89.9, False, 2, False),
        (90.0, True, 3, False),  # waited 60 s
        (209.9, False, 3, False),  # the third wait (120 s) is still running: not exhausted yet
        (210.0, False, 3, True),  # the last wait is over and the failure survived
        (5000.0, False, 3, True),  # no more restarts once exhausted
    ]
    for now, restarted, attempts, exhausted in timeline:
        rungs, todo = step(rungs, now)
        assert (todo == ["x"], rungs["x"].attempts, rungs["x"].exhausted) == (restarted, attempts, exhausted), now


@pytest.mark.parametrize(("attempts", "backoff", "exhausted_at"), [(1, 10.0, 10.0), (2, 5.0, 15.0), (4, 1.0, 15.0)])
def test_exhaustion_time_is_the_sum_of_the_doubling_waits(attempts: int, backoff: float, exhausted_at: float) -> None:
    settings = health(restart_attempts=attempts, restart_backoff=backoff)
    rungs: dict[str, Rung] = {}
    now = 0.0
    sent = 0
    while now < exhausted_at + 5:
        rungs, todo = step(rungs, now, settings=settings)
        sent += len(todo)
        assert rungs["x"].exhausted == (now >= exhausted_at), now
        now += 0.5
    assert sent == attempts


def test_a_409_conflict_is_retried_after_the_backoff_and_counts_only_when_it_does_not_end() -> None:
    rungs, todo = step({}, 0, outcome="conflict")
    assert todo == ["x"] and rungs["x"].attempts == 0 and rungs["x"].last_outcome == "conflict"
    assert step(rungs, 29, outcome="conflict")[1] == []  # retried after --restart-backoff, not at every poll
    for now in (30, 60):  # a rebalance: the first FREE_CONFLICTS 409s in a row are not counted
        rungs, todo = step(rungs, now, outcome="conflict")
        assert todo == ["x"] and rungs["x"].attempts == 0 and not rungs["x"].exhausted
    rungs, todo = step(rungs, 90, outcome="conflict")  # a 409 that never ends counts from now on
    assert todo == ["x"] and rungs["x"].attempts == 1 and rungs["x"].next_at == 120
    rungs, todo = step(rungs, 120, outcome="requested")
    assert rungs["x"].attempts == 2 and rungs["x"].conflicts == 0


def test_errors_and_404s_count_as_attempts_and_a_deleted_connector_is_forgotten() -> None:
    rung = record(Rung(), "error", 0, S)
    assert rung.attempts == 1 and rung.next_at == 30
    # A 404 to the restart of a connector the poll listed (a name Connect cannot route, such as "..") is an
    # attempt: were it not, that connector would be restarted every poll forever and never fail liveness.
    missing = record(Rung(), "not-found", 0, S)
    assert missing.attempts == 1 and missing.last_outcome == "not-found"
    # A connector really deleted is gone from the next poll's listing, and so is its rung.
    rungs, _ = plan({"x": missing}, failing=(), present=(), now=40, settings=S)
    assert rungs == {}


def test_attempts_reset_after_restart_reset_seconds_healthy() -> None:
    rungs, _ = step({}, 0)
    rungs, _ = step(rungs, 30)
    assert rungs["x"].attempts == 2
    rungs, todo = step(rungs, 40, failing=())  # recovered at t=40
    assert todo == [] and rungs["x"].healthy_since == 40 and rungs["x"].attempts == 2
    rungs, _ = step(rungs, 339.9, failing=())
    assert rungs["x"].attempts == 2  # not yet 300 s healthy
    rungs, _ = step(rungs, 340, failing=())
    assert rungs["x"].attempts == 0 and rungs["x"].next_at == 0
    rungs, todo = step(rungs, 341)  # fails again: a fresh ladder, restarted at once
    assert todo == ["x"] and rungs["x"].attempts == 1


def test_a_relapse_before_the_reset_keeps_counting() -> None:
    rungs, _ = step({}, 0)
    rungs, _ = step(rungs, 10, failing=())
    rungs, todo = step(rungs, 20)  # failed again after 10 s: still in the first wait, no restart
    assert todo == [] and rungs["x"].attempts == 1 and rungs["x"].healthy_since is None
    rungs, todo = step(rungs, 30)
    assert todo == ["x"] and rungs["x"].attempts == 2


def test_recovery_clears_exhaustion_at_once() -> None:
    rungs = {"x": Rung(attempts=3, next_at=100, exhausted=True)}
    rungs, todo = step(rungs, 200, failing=())
    assert todo == [] and not rungs["x"].exhausted and rungs["x"].attempts == 3


def test_zero_attempts_exhausts_at_once_and_never_restarts() -> None:
    settings = health(restart_attempts=0)
    rungs, todo = step({}, 0, settings=settings)
    assert todo == [] and rungs["x"].exhausted and rungs["x"].attempts == 0


def test_connectors_are_independent_and_deleted_ones_are_forgotten() -> None:
    rungs, todo = step({}, 0, failing=("a",), present=("a", "b"))
    assert todo == ["a"] and rungs["b"].attempts == 0
    rungs, todo = step(rungs, 5, failing=("b",), present=("a", "b"))
    assert todo == ["b"] and rungs["a"].attempts == 1 and rungs["b"].attempts == 1
    rungs, _ = step(rungs, 6, failing=(), present=("b",))
    assert set(rungs) == {"b"}


def test_plan_does_not_mutate_its_input() -> None:
    before = {"x": Rung(attempts=1, next_at=30)}
    snapshot = dict(before)
    plan(before, ["x"], ["x"], 100, S)
    assert before == snapshot


def test_a_declared_per_connector_limit_overrides_restart_attempts() -> None:
    limits = {"cdc": 0, "short": 1}
    rungs, todo = plan({}, ("cdc", "short", "x"), ("cdc", "short", "x"), 0, S, limits)
    assert sorted(todo) == ["short", "x"]  # cdc's ladder is off: never restarted
    assert rungs["cdc"].exhausted and not rungs["short"].exhausted and not rungs["x"].exhausted
    for name in todo:
        rungs[name] = record(rungs[name], "requested", 0, S)
    rungs, todo = plan(rungs, ("cdc", "short", "x"), ("cdc", "short", "x"), 30, S, limits)
    assert todo == ["x"]  # short had its one attempt; x (default limit 3) gets its second
    assert rungs["short"].exhausted and not rungs["x"].exhausted
