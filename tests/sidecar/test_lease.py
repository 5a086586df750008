"""The reconcile Lease's election (lease.py): the pure decide/settle steps by table, and the HTTP part against a
stand-in for the Lease endpoints of the Kubernetes API (the only way to have one without a cluster; the e2e tests
run the real API server)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from connect_health.lease import Election, Elector, Record, decide, settle

from .standin_kube import StandInKubeApi, stand_in_kube

ME, OTHER = "pod-a", "pod-b"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[StandInKubeApi]:
    with stand_in_kube(tmp_path) as server:
        yield server
D = 15.0


def rec(holder: str | None, version: str = "1", renew: str = "t1", duration: float | None = D) -> Record:
    return Record(holder=holder, version=version, renew_time=renew, duration=duration)


SEEN_AT_0 = Election(seen=(OTHER, "t1", "1"), seen_at=0.0)

# (case, state before, the Lease as read, now, the action, seen_at after)
DECIDE = [
    ("no Lease yet: create it", Election(), None, 5.0, "create", 5.0),
    ("we hold it: renew", Election(), rec(ME), 5.0, "renew", 5.0),
    ("released (no holder): acquire at once", Election(), rec(None), 5.0, "acquire", 5.0),
    ("another holder, first seen now: follow", Election(), rec(OTHER), 5.0, "follow", 5.0),
    ("another holder, unchanged for less than its duration: follow", SEEN_AT_0, rec(OTHER), 14.9, "follow", 0.0),
    ("another holder, unchanged for its whole duration: acquire", SEEN_AT_0, rec(OTHER), 15.0, "acquire", 0.0),
    ("another holder renewed (new renewTime): timed again from now", SEEN_AT_0, rec(OTHER, "2", "t2"), 20.0,
     "follow", 20.0),
    ("its own (shorter) duration counts, not ours", SEEN_AT_0, rec(OTHER, duration=5), 5.0, "acquire", 0.0),
    ("a new resourceVersion alone is a change too", SEEN_AT_0, rec(OTHER, "9"), 30.0, "follow", 30.0),
]
# the same, for a pod whose worker cannot be corrected (starting, or not answering for a lease duration)
UNABLE = [
    ("unable, no Lease yet: never create it", Election(), None, 5.0, "follow", 5.0),
    ("unable, we hold it: hand it back", Election(), rec(ME), 5.0, "release", 5.0),
    ("unable, released: never take it", Election(), rec(None), 5.0, "follow", 5.0),
    ("unable, another holder's expired: never take it", SEEN_AT_0, rec(OTHER), 15.0, "follow", 0.0),
]


@pytest.mark.parametrize(("case", "state", "record", "now", "action", "seen_at", "eligible"),
                         [(*c, True) for c in DECIDE] + [(*c, False) for c in UNABLE],
                         ids=[c[0] for c in DECIDE + UNABLE])
def test_decide(case: str, state: Election, record: Record | None, now: float, action: str, seen_at: float,
                eligible: bool) -> None:
    after, got = decide(state, record, ME, now, D, eligible)
    assert (got, after.seen_at) == (action, seen_at), case
    if not eligible:
        assert not after.leads(now)


# (case, action, outcome, leader_until before, leader_until after) with the write sent at 100
SETTLE = [
    ("renewed: lead until two thirds of the duration after the write was sent", "renew", "ok", 0.0, 110.0),
    ("acquired: the same", "acquire", "ok", 0.0, 110.0),
    ("created: the same", "create", "ok", 0.0, 110.0),
    ("another pod wrote first (409): lead no more", "renew", "conflict", 105.0, 0.0),
    ("no answer: the lead lapses by itself", "renew", "error", 105.0, 105.0),
    ("following changes nothing", "follow", "ok", 0.0, 0.0),
    ("handed back: lead no more", "release", "ok", 105.0, 0.0),
]


@pytest.mark.parametrize(("case", "action", "outcome", "before", "after"), SETTLE, ids=[c[0] for c in SETTLE])
def test_settle(case: str, action: str, outcome: str, before: float, after: float) -> None:
    assert settle(Election(leader_until=before), action, outcome, 100.0, D).leader_until == after, case


def test_a_holder_stops_writing_before_anyone_may_take_over() -> None:
    """The renew deadline (2/3) is shorter than the wait of a follower (the whole duration since it saw the last
    change, which is no earlier than when the write was sent): the two never lead at once."""
    leader = settle(Election(), "renew", "ok", 100.0, D)
    follower, _ = decide(Election(), rec(ME, renew="t100"), OTHER, 100.0, D)
    first_takeover = next(t / 10 for t in range(1000, 1400) if decide(follower, rec(ME, renew="t100"), OTHER,
                                                                        t / 10, D)[1] == "acquire")
    assert not leader.leads(first_takeover) and first_takeover - leader.leader_until >= D / 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def pair(kube: StandInKubeApi, clock: Clock) -> tuple[Elector, Elector]:
    """pod-a and pod-b electing over the Lease "rc" of the stand-in, on one hand-moved clock."""
    def one(pod: str) -> Elector:
        return Elector(kube.lease_api("rc"), pod, D, clock=clock, wall=lambda: WALL)

    return one("pod-a"), one("pod-b")


def test_two_electors_one_leader_and_a_takeover_after_the_holder_stops(kube: StandInKubeApi) -> None:
    clock = Clock()
    a, b = pair(kube, clock)
    a.step()
    b.step()
    assert (a.leads(), b.leads()) == (True, False)
    lease = kube.leases["rc"]
    assert lease["spec"]["holderIdentity"] == "pod-a" and lease["spec"]["leaseDurationSeconds"] == 15
    for _ in range(3):  # a renews every 5 s: b keeps following
        clock.now += 5
        a.step()
        b.step()
        assert (a.leads(), b.leads()) == (True, False)
    # a stops renewing (its pod frozen): it stops leading at its renew deadline, b takes over a duration later
    clock.now += 10
    assert not a.leads()
    b.step()
    assert not b.leads()
    clock.now += 5
    b.step()
    assert b.leads() and kube.leases["rc"]["spec"]["holderIdentity"] == "pod-b"
    assert kube.leases["rc"]["spec"]["leaseTransitions"] == 1
    a.step()  # a comes back: it follows
    assert not a.leads() and b.leads()


def test_racing_acquirers_one_wins_by_resource_version(kube: StandInKubeApi) -> None:
    clock = Clock()
    a, b = pair(kube, clock)
    record = b.api.get()
    assert record is None
    assert a.api.write("create", None, "pod-a", D, WALL) == "ok"
    assert b.api.write("create", None, "pod-b", D, WALL) == "conflict"  # AlreadyExists
    stale = a.api.get()
    assert stale is not None
    assert a.api.write("renew", stale, "pod-a", D, WALL) == "ok"
    assert b.api.write("acquire", stale, "pod-b", D, WALL) == "conflict"  # an older resourceVersion
    assert kube.leases["rc"]["spec"]["holderIdentity"] == "pod-a"


def test_a_refusing_api_server_is_one_line_and_no_lead(kube: StandInKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    kube.refuse = 403
    el = Elector(kube.lease_api("rc"), "pod-a", D, clock=Clock(), wall=lambda: WALL)
    el.step()
    el.step()
    assert not el.leads()
    assert el.error is not None and "403" in el.error and "Role" in el.error
    assert len([r for r in caplog.records if "lease rc" in r.getMessage()]) == 1  # once, not every round


def test_a_stopping_holder_hands_the_lease_back_so_the_next_takes_over_at_once(kube: StandInKubeApi) -> None:
    clock = Clock()
    a, b = pair(kube, clock)
    a.step()
    b.step()
    a.stop()  # SIGTERM: the pod goes away
    assert not a.leads() and kube.leases["rc"]["spec"]["holderIdentity"] == ""
    clock.now += 5  # b's next round, long before the 15 s a silent holder would cost
    b.step()
    assert b.leads()


def test_a_lease_with_odd_fields_is_read_as_far_as_it_makes_sense(kube: StandInKubeApi) -> None:
    """Someone edited the Lease by hand: wrong types are read as absent, never a crash of the election."""
    kube.leases["rc"] = {"metadata": {"name": "rc", "resourceVersion": "7"},
                         "spec": {"holderIdentity": 5, "leaseDurationSeconds": "x", "leaseTransitions": True}}
    record = kube.lease_api("rc").get()
    assert record == Record(holder=None, version="7")
    el = Elector(kube.lease_api("rc"), "pod-a", D, clock=Clock(), wall=lambda: WALL)
    el.step()  # no holder: taken
    assert el.leads() and kube.leases["rc"]["spec"]["holderIdentity"] == "pod-a"
