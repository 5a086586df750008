"""The server guard's policy alone (connect_health.admission): which held connections make room for a new one, and how
refusals are logged. Pure, by tables; test_flood.py proves the whole against a real ``serve`` process."""

from __future__ import annotations

import logging

import pytest
from connect_health.admission import HEARD, SERVED, UNHEARD, Admission, Tally, address_of
from connect_health.server import FD_RESERVE, MAX_CONNECTIONS, total_bound

# Each case: bounds, held connections as (address, name) oldest first, the names being served (not evictable),
# the new connection's address, and the names closed to admit it (None: refused).
CASES = [
    ("room left", (2, 10), [("a", "a1")], set(), "a", []),
    ("own address at its bound: its oldest goes", (2, 10), [("a", "a1"), ("b", "b1"), ("a", "a2")], set(), "a",
     ["a1"]),
    ("own address at its bound: its oldest waiting one goes", (2, 10), [("a", "a1"), ("a", "a2")], {"a1"}, "a",
     ["a2"]),
    ("own address at its bound, all being served: refused", (2, 10), [("a", "a1"), ("a", "a2")], {"a1", "a2"}, "a",
     None),
    ("total bound: the largest holder's oldest goes, not the newcomer's own", (3, 4),
     [("k", "k1"), ("a", "a1"), ("a", "a2"), ("b", "b1")], set(), "k", ["a1"]),
    ("total bound, a tie: the oldest of the largest holders goes", (3, 4),
     [("b", "b1"), ("a", "a1"), ("a", "a2"), ("b", "b2")], set(), "k", ["b1"]),
    ("total bound, one address each: the oldest goes (a probe, the newest, goes last)", (3, 3),
     [("x", "x1"), ("y", "y1"), ("k", "k1")], set(), "z", ["x1"]),
    ("total bound, the largest holder all served: the next largest", (3, 5),
     [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("b", "b2")], {"a1", "a2", "a3"}, "k", ["b1"]),
    ("total bound, nothing evictable: refused", (3, 2), [("a", "a1"), ("b", "b1")], {"a1", "b1"}, "k", None),
    ("both bounds at once: one from its own address makes room for both", (2, 3),
     [("a", "a1"), ("a", "a2"), ("b", "b1")], set(), "a", ["a1"]),
]


# Ranks: names starting with "h" sent part of a request (HEARD), "u" nothing yet (UNHEARD), "s" are being served.
RANKED = [
    ("a trickler goes before an older connection that sent nothing (a probe on its way)", (3, 10),
     [("a", "u1"), ("a", "h1"), ("a", "h2")], "a", ["h1"]),
    ("nothing heard anywhere: the oldest", (2, 10), [("a", "u1"), ("a", "u2")], "a", ["u1"]),
    ("served ones never", (2, 10), [("a", "s1"), ("a", "u1")], "a", ["u1"]),
    ("total bound: size first, then rank, then age", (5, 5),
     [("k", "u1"), ("a", "u2"), ("a", "h3"), ("b", "h4"), ("b", "u5")], "z", ["h3"]),
    ("total bound: a small holder's probe stays though the largest holder's ones sent nothing", (5, 4),
     [("k", "u1"), ("a", "u2"), ("a", "u3"), ("a", "s4")], "z", ["u2"]),
]


def rank(name: str) -> int:
    return {"s": SERVED, "u": UNHEARD, "h": HEARD}[name[0]]


@pytest.mark.parametrize(("bounds", "held", "new", "closed"), [c[1:] for c in RANKED], ids=[c[0] for c in RANKED])
def test_admission_by_rank(bounds: tuple[int, int], held: list[tuple[str, str]], new: str, closed: list[str]) -> None:
    admission: Admission[str] = Admission(*bounds)
    for address, name in held:
        admission.add(address, name)
    assert admission.admit(new, rank) == closed


@pytest.mark.parametrize(("bounds", "held", "serving", "new", "closed"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_admission(bounds: tuple[int, int], held: list[tuple[str, str]], serving: set[str], new: str,
                   closed: list[str] | None) -> None:
    admission: Admission[str] = Admission(*bounds)
    for address, name in held:
        admission.add(address, name)
    before = len(admission)
    assert admission.admit(new, lambda name: name not in serving) == closed
    assert len(admission) == before - len(closed or [])
    if closed is not None:
        admission.add(new, "new")
        assert admission.held(new) <= bounds[0] and len(admission) <= bounds[1]


def test_admission_forgets_closed_connections_once() -> None:
    admission: Admission[str] = Admission(2, 10)
    admission.add("a", "a1")
    admission.remove("a", "a1")
    admission.remove("a", "a1")
    admission.remove("b", "b9")
    assert len(admission) == 0 and admission.held("a") == 0


def test_make_room_takes_the_largest_holders_oldest() -> None:
    admission: Admission[str] = Admission(5, 10)
    for address, name in [("a", "a1"), ("b", "b1"), ("b", "b2")]:
        admission.add(address, name)
    assert admission.make_room(lambda name: True) == "b1"
    assert admission.make_room(lambda name: False) is None
    assert len(admission) == 2


@pytest.mark.parametrize(("open_files", "bound"), [(256, 256 - FD_RESERVE), (1_048_576, MAX_CONNECTIONS), (40, 8)])
def test_total_bound_stays_below_the_open_file_limit(open_files: int, bound: int) -> None:
    assert total_bound(open_files) == bound


@pytest.mark.parametrize(("addr", "address"), [(("10.0.0.9", 5555), "10.0.0.9"),
                                               (("::ffff:10.0.0.9", 5555, 0, 0), "10.0.0.9"),
                                               (("fd00::1", 5555, 0, 0), "fd00::1")])
def test_an_ipv4_client_on_the_dual_stack_socket_is_one_address(addr: tuple[object, ...], address: str) -> None:
    assert address_of(addr) == address


def test_tally_logs_at_most_one_line_per_interval_with_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    tally = Tally(logging.getLogger("test.tally"), every=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.tally"):
        tally.count("accept() failed (EMFILE)")  # the first one at once
        for _ in range(5000):
            tally.count("accept() failed (EMFILE)")
            tally.count("oldest waiting connection closed at the per-address bound 32")
        now[0] += 9.0
        tally.flush()
        assert len(caplog.records) == 1
        now[0] += 1.0
        tally.flush()
        now[0] += 30.0
        tally.flush()  # nothing new: nothing logged
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "accept() failed (EMFILE): 1" in lines[0]
    assert "accept() failed (EMFILE): 5000" in lines[1] and "per-address bound 32: 5000" in lines[1]
