"""Drift correction's decisions (reconcile.py): which drifting connectors are corrected when, by table; the gate
(never while the worker starts, does not answer, rebalances, or another pod holds the lease); and the Reconciler over
real Poller polls of the fake Connect worker of these unit tests (fakeconnect.py), its writes counted there."""

from __future__ import annotations

import dataclasses

import pytest
from connect_health import model
from connect_health.config import HealthSettings
from connect_health.poller import View
from connect_health.reconcile import NOT_LEADER, Rules, Track, gate, plan, record, wait_for

R = Rules(after=90.0)
CFG = ("x", "config", "connector x config differs from the declaration (keys: file)")


def seen(since: float, polls: int = 1, **kw: object) -> Track:
    return Track(since=since, polls=polls, details=(CFG[2],), **kw)  # type: ignore[arg-type]


# (case, tracks before, drift this poll, now, blocked, busy, due)
PLAN = [
    ("first sight: wait", {}, [CFG], 0.0, None, (), []),
    ("second poll, before --reconcile-after: wait", {"x": seen(0.0)}, [CFG], 50.0, None, (), []),
    ("seen twice and lasted --reconcile-after: due", {"x": seen(0.0)}, [CFG], 90.0, None, (), ["x"]),
    ("lasted long but seen by one poll only: wait", {}, [CFG], 500.0, None, (), []),
    ("gone again before it was due: nothing", {"x": seen(0.0)}, [], 95.0, None, (), []),
    ("another pod holds the lease: never due", {"x": seen(0.0)}, [CFG], 95.0, NOT_LEADER, (), []),
    ("being corrected already: not again", {"x": seen(0.0)}, [CFG], 95.0, None, ("x",), []),
    ("fought once: after + 60 s", {"x": seen(0.0, fights=1, corrected_at=-200.0)}, [CFG], 149.0, None, (), []),
    ("fought once, waited after + 60 s: due", {"x": seen(0.0, fights=1, corrected_at=-200.0)}, [CFG], 150.0, None,
     (), ["x"]),
    ("fought 3 times: after + 240 s", {"x": seen(0.0, fights=3, corrected_at=-900.0)}, [CFG], 329.0, None, (), []),
    ("corrected moments ago (status lag): not again yet", {"x": seen(0.0, corrected_at=85.0)}, [CFG], 95.0, None,
     (), []),
]


@pytest.mark.parametrize(("case", "tracks", "drift", "now", "blocked", "busy", "due"), PLAN, ids=[p[0] for p in PLAN])
def test_plan(case: str, tracks: dict[str, Track], drift: list[tuple[str, str, str]], now: float,
              blocked: str | None, busy: tuple[str, ...], due: list[str]) -> None:
    _, got = plan(tracks, drift, now, R, blocked=blocked, busy=frozenset(busy))
    assert got == due, case


def test_with_no_wait_the_second_poll_corrects_never_the_first() -> None:
    rules = Rules(after=0.0)
    tracks, due = plan({}, [CFG], 0.0, rules, blocked=None)
    assert due == []
    assert plan(tracks, [CFG], 0.5, rules, blocked=None)[1] == ["x"]


def test_a_view_of_a_worker_not_answering_changes_no_track() -> None:
    """Its drift is empty because nothing was seen, not because the connector is back as declared."""
    tracks = {"x": seen(0.0, polls=3)}
    after, due = plan(tracks, [], 100.0, R, blocked="the worker does not answer")
    assert after == tracks and due == []


def test_another_pod_leading_still_tracks_so_a_new_leader_acts_at_once() -> None:
    after, due = plan({}, [CFG], 0.0, R, blocked=NOT_LEADER)
    after, due = plan(after, [CFG], 100.0, R, blocked=NOT_LEADER)
    assert due == [] and after["x"].polls == 2
    assert plan(after, [CFG], 101.0, R, blocked=None)[1] == ["x"]


def test_at_most_per_poll_corrections_longest_drifting_first() -> None:
    rules = Rules(after=0.0, per_poll=2)
    tracks = {n: Track(since=float(i), polls=5) for i, n in enumerate(["c", "a", "d", "b"])}
    drift = [(n, "missing", f"{n} missing") for n in tracks]
    assert plan(tracks, drift, 10.0, rules, blocked=None)[1] == ["c", "a"]
    assert plan(tracks, drift, 10.0, rules, blocked=None, busy=frozenset({"c"}))[1] == ["a"]  # room for one


# (case, track before, now, wrote, error, fights after, corrections after)
RECORD = [
    ("first correction", Track(since=0.0, polls=2), 100.0, True, None, 0, 1),
    ("again within the fight window: a fight", Track(since=0.0, polls=2, corrected_at=-100.0, corrections=1),
     100.0, True, None, 1, 2),
    ("again long after: no fight", Track(since=0.0, polls=2, corrected_at=-1000.0, corrections=1, fights=2),
     100.0, True, None, 0, 2),
    ("nothing to write (already as declared): no correction", Track(since=0.0, polls=2), 100.0, False, None, 0, 0),
    ("refused: backs off like a fight", Track(since=0.0, polls=2), 100.0, False, "400: invalid", 1, 0),
]


@pytest.mark.parametrize(("case", "track", "now", "wrote", "error", "fights", "corrections"), RECORD,
                         ids=[r[0] for r in RECORD])
def test_record(case: str, track: Track, now: float, wrote: bool, error: str | None, fights: int,
                corrections: int) -> None:
    after = record(track, now, R, wrote=wrote, error=error)
    assert (after.fights, after.corrections) == (fights, corrections), case
    assert after.polls <= 1  # the drift must be seen again from the start


def test_the_fight_backoff_doubles_up_to_an_hour() -> None:
    assert [wait_for(Track(fights=f), R) for f in (0, 1, 2, 3)] == [90.0, 150.0, 210.0, 330.0]
    assert wait_for(Track(fights=30), R) == 3600.0


def view(**obs: object) -> View:
    o = dataclasses.replace(model.Observation(now=0.0, started=True, reachable=True), **obs)  # type: ignore[arg-type]
    return View(report=model.evaluate(o, HealthSettings()), observation=o)


GATE = [
    ("worker answers, started, this pod leads", {}, False, True, None),
    ("worker not answering", {"reachable": False}, False, True, "the worker does not answer"),
    ("worker starting", {"started": False}, False, True, "the worker is starting"),
    ("the sidecar cannot judge", {"sidecar_error": "401"}, False, True, "the sidecar cannot judge the worker"),
    ("a rebalance: the View is from an older answer", {}, True, True, "the last answer is not fresh"),
    ("another pod leads", {}, False, False, NOT_LEADER),
]


@pytest.mark.parametrize(("case", "obs", "stale", "leads", "why"), GATE, ids=[g[0] for g in GATE])
def test_gate(case: str, obs: dict[str, object], stale: bool, leads: bool, why: str | None) -> None:
    v = dataclasses.replace(view(**obs), stale=stale)
    got = gate(v, leads)
    assert (got if got is None else got[:len(why or "")]) == why, case
