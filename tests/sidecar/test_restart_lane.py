"""The restart lane (lane.py): restarts never count against Connect's responsiveness (issue 18, item 1).

The fake worker stands in because a real one cannot be made to answer restarts slowly on demand while answering its
status calls fast; tests/integration/test_restart_storm.py does it on a real worker through the fault proxy.
"""

from __future__ import annotations

import time
from typing import Any

from connect_health.lane import Done

from .conftest import WORKER, MakePoller, health
from .fakeconnect import Answer, FakeClock, FakeConnect, Seen


def failing(names: list[str]) -> dict[str, Any]:
    """The expanded status answer of ``names``, each with its one task FAILED on this worker."""
    return {n: {"status": {"name": n, "connector": {"state": "RUNNING", "worker_id": WORKER},
                           "tasks": [{"id": 0, "state": "FAILED", "worker_id": WORKER, "trace": "boom"}],
                           "type": "sink"}} for n in names}


def restarted(fake: FakeConnect) -> list[str]:
    return [p.path.split("/")[2] for p in fake.requests("POST")]


def test_slow_restarts_are_not_a_slow_worker(fake: FakeConnect, make_poller: MakePoller) -> None:
    """20 connectors failing at once, each restart answered after 0.4 s, the poll's deadline 3 x 0.5 s: before the
    lane, the 20 restarts ran inside the poll (8 s) and /livez said "Connect answers too slowly"."""
    names = [f"sink-{i:02d}" for i in range(20)]
    fake.healthy(failing(names))

    def slow(seen: Seen) -> Answer:
        time.sleep(0.4)
        return Answer(202, {})

    for n in names:
        fake.route("POST", f"/connectors/{n}/restart", slow)
    poller = make_poller(health(restart_backoff=0.1), timeout=0.5, clock=time.monotonic)
    poller.start(interval=0.1)
    try:
        seen_views = []
        deadline = time.monotonic() + 30
        while len(set(restarted(fake))) < 20 and time.monotonic() < deadline:
            view = poller.view
            if view.polls:
                seen_views.append((view.observation.reachable, view.observation.error, view.report.readyz.reasons))
            time.sleep(0.05)
    finally:
        poller.stop()
    assert sorted(set(restarted(fake))) == names, "every failing connector got its restart"
    slow_verdicts = [v for v in seen_views if not v[0]]
    assert seen_views and not slow_verdicts, f"the worker was judged unresponsive: {slow_verdicts[:3]}"


def test_at_most_ten_restarts_per_poll_oldest_failure_first(fake: FakeConnect, make_poller: MakePoller,
                                                           clock: FakeClock) -> None:
    early = [f"z-early-{i}" for i in range(5)]  # fail first, named to sort last
    late = [f"a-late-{i:02d}" for i in range(20)]
    for n in early + late:
        fake.route("POST", f"/connectors/{n}/restart", Answer(202, {}))
    poller = make_poller(restart=False)  # nothing sent yet
    fake.healthy(failing(early))
    poller.poll_once()
    clock.advance(1)
    fake.healthy(failing(early + late))
    poller.poll_once()  # the late ones start failing now
    poller.restart_enabled = True
    clock.advance(1)
    poller.poll_once()
    first = restarted(fake)
    assert len(first) == 10
    assert first[:5] == early, "the oldest failures go first"
    clock.advance(1)
    poller.poll_once()
    clock.advance(1)
    poller.poll_once()
    assert sorted(restarted(fake)) == sorted(early + late), "the rest go at the next polls"
    assert len(restarted(fake)) == 25


def test_an_answer_from_the_previous_incarnation_is_not_an_attempt(fake: FakeConnect, make_poller: MakePoller,
                                                                   clock: FakeClock) -> None:
    fake.healthy(failing(["s"]))
    fake.route("POST", "/connectors/s/restart", Answer(202, {}))
    poller = make_poller(restart=False)
    poller.poll_once()
    old = poller.life.incarnation
    poller.lane._done.append(Done("s", "requested", clock(), old + 1))  # noqa: SLF001 - an answer for another
    poller.lane._pending.add("s")  # noqa: SLF001
    poller.restart_enabled = True
    clock.advance(1)
    view = poller.poll_once()
    assert view.observation.rungs["s"].attempts == 1  # this poll's own restart only
    assert view.restarts[("s", "requested")] == 2  # both were sent, and counted as sent
