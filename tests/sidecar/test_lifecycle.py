"""lifecycle.py by tables: which sequences of what the poller saw are a new Connect incarnation, and what the
pod-restart memory keeps. No HTTP, no clock: each step is (function, arguments) at a given time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from connect_health import lifecycle as lc
from connect_health.ladder import Rung

L = lc.Lifecycle

Step = Callable[[lc.Lifecycle], lc.Lifecycle]


def ok(now: float) -> Step:
    return lambda s: lc.polled(lc.answered(s, now), now, reachable=True, herder_stuck=False, started=True)


def refused() -> Step:
    return lambda s: lc.polled(lc.refused(s), 0.0, reachable=False, herder_stuck=False, error="refused")


def timeout(now: float) -> Step:
    # a timeout, a DNS failure, EMFILE: not an answer, not a refusal
    return lambda s: lc.polled(s, now, reachable=False, herder_stuck=False, error="timed out")


def starting(now: float) -> Step:
    return lambda s: lc.starting_again(lc.answered(s, now), now, "starting")


def root(now: float, version: str, commit: str = "c") -> Step:
    return lambda s: lc.root_seen(lc.answered(s, now), (version, commit), now)


def blame(*names: str) -> Step:
    return lambda s: lc.blame(s, names)


CASES: list[tuple[str, list[Step], int]] = [
    ("answers only", [ok(1), ok(2), ok(3)], 0),
    ("refused before any answer: the worker had not opened its port", [refused(), refused(), ok(3)], 0),
    ("refused after an answer, then an answer: a restart", [ok(1), refused(), ok(3)], 1),
    ("timeouts between answers are not a restart", [ok(1), timeout(2), timeout(3), ok(4)], 0),
    ("starting after startup completed: a restart", [ok(1), starting(2)], 1),
    ("starting before startup completed: the same worker starting", [starting(1), starting(2), ok(3)], 0),
    ("GET / with another commit: another worker", [root(1, "4.3.1"), ok(2), root(3, "4.3.1", "d")], 1),
    ("GET / with the same version and commit", [root(1, "4.3.1"), ok(2), root(3, "4.3.1")], 0),
    ("two restarts", [ok(1), refused(), ok(3), refused(), ok(5)], 2),
]


@pytest.mark.parametrize(("steps", "incarnations"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_incarnations(steps: list[Step], incarnations: int) -> None:
    state = L()
    for step in steps:
        state = step(state)
    assert state.incarnation == incarnations


def test_a_restart_spends_a_pod_restart_on_the_blamed_connectors_only() -> None:
    state = ok(1)(L())
    state = blame("sink-a")(state)
    state = refused()(state)
    state = ok(10)(state)
    assert state.incarnation == 1
    assert state.pod_restarts == {"sink-a": (10,)}
    assert state.blamed == () and state.started is True
    # The next restart while nothing is blamed spends nothing.
    state = ok(11)(refused()(state))
    assert state.pod_restarts == {"sink-a": (10,)}


def test_new_incarnation_resets_timers_and_startup_but_keeps_memory() -> None:
    state = L(started=True, answered=True, unreachable_since=5.0, stuck_since=6.0, rebalancing_since=7.0,
              blamed=("x",), pod_restarts={"y": (1.0,)}, restart_fixed=frozenset({"x", "y"}))
    after = lc.new_incarnation(state, 20.0, "why")
    assert (after.started, after.unreachable_since, after.stuck_since, after.rebalancing_since) == (
        False, None, None, None)
    assert after.pod_restarts == {"y": (1.0,), "x": (20.0,)}
    assert after.restart_fixed == frozenset({"y"})  # x's restart is new: not known to have fixed it
    assert after.incarnation_reason == "why" and "why" in after.startup_detail


TIMERS: list[tuple[str, dict[str, Any], tuple[float | None, float | None]]] = [
    ("reachable clears both", {"reachable": True, "herder_stuck": False}, (None, None)),
    # the herder budget runs across polls where nothing answered at all
    ("nothing answers: both keep their first time", {"reachable": False, "herder_stuck": False}, (3.0, 4.0)),
    ("herder stuck: unreachable starts over, stuck from its first", {"reachable": False, "herder_stuck": True},
     (None, 4.0)),
]


@pytest.mark.parametrize(("kwargs", "expected"), [t[1:] for t in TIMERS], ids=[t[0] for t in TIMERS])
def test_timers(kwargs: dict[str, Any], expected: tuple[float | None, float | None]) -> None:
    state = L(unreachable_since=3.0, stuck_since=4.0)
    after = lc.polled(state, 50.0, **kwargs)
    assert (after.unreachable_since, after.stuck_since) == expected
    fresh = lc.polled(L(), 50.0, **kwargs)
    assert (fresh.unreachable_since is None) == (kwargs["reachable"] or kwargs["herder_stuck"])


def test_startup_detail_never_says_complete_after_a_failed_call() -> None:
    state = lc.polled(L(), 1.0, reachable=False, herder_stuck=False, error="GET /connectors timed out")
    assert state.started is False and state.startup_detail == "GET /connectors timed out"
    state = lc.polled(state, 2.0, reachable=True, herder_stuck=False, started=True)
    assert state.started is True and state.startup_detail == "startup complete"


def test_note_fixed_forgets_old_restarts_and_marks_fixed() -> None:
    state = L(pod_restarts={"old": (0.0,), "new": (90.0,)})
    rungs = {"new": Rung(healthy_since=95.0)}
    after = lc.note_fixed(state, 100.0, rungs, window=50.0, reset=5.0)
    assert after.pod_restarts == {"new": (90.0,)}
    assert after.restart_fixed == frozenset({"new"})
    not_yet = lc.note_fixed(state, 97.0, rungs, window=50.0, reset=5.0)
    assert "new" not in not_yet.restart_fixed
