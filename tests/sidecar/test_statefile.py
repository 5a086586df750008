"""--state-file: the memory of restarts outlives the sidecar's own process (issue 18, item 4), and Events tell the
kill cycle as it happened (item 9).

With sharedFate the kubelet restarts the sidecar together with Connect; each "restart" below is a new Poller over
the same file, as the new sidecar process would be, against the fake worker of these unit tests.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from connect_health import statefile
from connect_health.events import EventObserver
from connect_health.ladder import Rung
from connect_health.lifecycle import Lifecycle
from connect_health.poller import Poller

from .conftest import WORKER, MakePoller, health
from .fakeconnect import Answer, FakeClock, FakeConnect, fixture

FAILED_HERE = "failed_task_local.json"


def test_document_and_memory_round_trip_across_clocks() -> None:
    life = Lifecycle(pod_restarts={"a": (100.0, 150.0)}, restart_fixed=frozenset({"b"}), blamed=("c",))
    rungs = {"d": Rung(attempts=2, next_at=190.0), "e": Rung()}
    doc = statefile.document(WORKER, life, rungs, {"a": ((1_000_000.0, "rest", "x", "data"),)}, mono=200.0, wall=1e6,
                             counts={("a", "0", "rest", "data", "requested"): 2})
    assert "e" not in doc["ladder"]  # nothing to remember of a ladder never climbed
    json.dumps(doc)
    # read by a process whose monotonic clock started again: the same instants, on the new clock
    mem = statefile.memory(json.loads(json.dumps(doc)), WORKER, mono=5.0, wall=1e6 + 10)
    assert list(mem.pod_restarts) == ["a"] and mem.pod_restarts["a"] == pytest.approx((-105.0, -55.0))
    assert mem.restart_fixed == frozenset({"b"}) and mem.killed_for == ("c",)
    assert mem.rungs["d"].attempts == 2 and mem.rungs["d"].next_at == pytest.approx(-15.0)
    assert mem.last_restarts == {"a": ((1_000_000.0, "rest", "x", "data"),)}
    assert mem.restart_counts == {("a", "0", "rest", "data", "requested"): 2}


@pytest.mark.parametrize(("content", "why"), [
    (b"{not json", "Expecting"),
    (b'{"kind": "something-else"}', "not a connect-health state file"),
    (b'{"kind": "connect-health-state", "version": 99}', "version 99"),
    (json.dumps({"kind": "connect-health-state", "version": 1, "worker": "10.9.9.9:8083"}).encode(),
     "of worker '10.9.9.9:8083'"),
    (json.dumps({"kind": "connect-health-state", "version": 1, "worker": WORKER, "pod_restarts": {"a": ["x"]},
                 "ladder": {}, "last_restarts": {}}).encode(), "not a time"),
])
def test_a_foreign_or_broken_file_is_ignored_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              content: bytes, why: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        mem = statefile.read(str(path), WORKER, mono=0.0, wall=0.0)
    assert mem == statefile.Memory()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and why in warnings[0], warnings


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.write(str(path), {"a": 1})
    statefile.write(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def sidecar_process(make_poller: MakePoller, path: Path, said: list[tuple[str, str, str]] | None = None) -> Poller:
    """A new sidecar process: a new Poller over the same state file (restart_attempts 0: a failure counts now)."""
    observers = (EventObserver(lambda *e: said.append(e)),) if said is not None else ()
    return make_poller(health(restart_attempts=0), state_file=str(path), observers=observers)


def test_shared_fate_a_poison_connector_costs_one_pod_restart_not_a_crash_loop(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, tmp_path: Path) -> None:
    """sharedFate: liveness fails for jdbc-sink, the kubelet kills both containers. Before the state file, the new
    sidecar remembered nothing and failed liveness again: 10 pod restarts in 48 s in the review's run."""
    path = tmp_path / "state.json"
    fake.healthy(fixture(FAILED_HERE))
    kills = 0
    for _ in range(5):  # five sidecar processes in a row, each killed when its liveness fails
        poller = sidecar_process(make_poller, path)
        clock.advance(30)
        view = poller.poll_once()
        if not view.report.livez.ok:
            kills += 1
    assert kills == 1, "a pod restart that did not fix the connector is not repeated"
    assert "jdbc-sink" in view.report.failed_connectors  # still reported failed: a readiness warning says why
    assert any("pod restart" in w for w in view.report.readyz.warnings), view.report.readyz
    doc = json.loads(path.read_text())
    assert len(doc["pod_restarts"]["jdbc-sink"]) == 1
    assert [e[1] for e in doc["last_restarts"]["jdbc-sink"]] == ["pod"]


def test_without_a_state_file_each_new_process_forgets(fake: FakeConnect, make_poller: MakePoller,
                                                       clock: FakeClock) -> None:
    """The same sequence without --state-file: each new process kills again (why the chart mounts an emptyDir)."""
    fake.healthy(fixture(FAILED_HERE))
    kills = 0
    for _ in range(3):
        poller = make_poller(health(restart_attempts=0))
        clock.advance(30)
        kills += not poller.poll_once().report.livez.ok
    assert kills == 3


def test_ladder_attempts_carry_over_a_sidecar_restart(fake: FakeConnect, make_poller: MakePoller, clock: FakeClock,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    fake.healthy(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    first = make_poller(health(restart_attempts=3, restart_backoff=10), state_file=str(path))
    first.poll_once()
    clock.advance(10)
    assert first.poll_once().observation.rungs["jdbc-sink"].attempts == 2
    second = make_poller(health(restart_attempts=3, restart_backoff=10), state_file=str(path))
    clock.advance(20)
    view = second.poll_once()
    assert view.observation.rungs["jdbc-sink"].attempts == 3, "the new process went on with the same ladder"
    assert len(view.last_restarts["jdbc-sink"]) == 3
    assert [p.path for p in fake.requests("POST")].count("/connectors/jdbc-sink/restart") == 3


def test_an_unwritable_state_file_is_one_warning_and_the_poll_goes_on(
        fake: FakeConnect, make_poller: MakePoller, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake.healthy(fixture(FAILED_HERE))
    folder = tmp_path / "gone"
    folder.mkdir()
    poller = make_poller(health(restart_attempts=0), state_file=str(folder / "state.json"))
    folder.rmdir()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            view = poller.poll_once()
    assert not view.report.livez.ok  # still judging
    assert sum("not written" in r.getMessage() for r in caplog.records) == 1


def test_events_tell_the_kill_cycle_as_it_happened(fake: FakeConnect, make_poller: MakePoller, clock: FakeClock,
                                                   tmp_path: Path) -> None:
    """LivenessFailing, then nothing while Connect is gone (before: a Normal LivenessRecovered at the very moment
    it was killed), ConnectRestarted once the new worker answers, LivenessRecovered once /livez is 200 about it."""
    said: list[tuple[str, str, str]] = []
    fake.healthy(fixture("healthy.json"))
    poller = make_poller(health(restart_attempts=0), observers=(EventObserver(lambda *e: said.append(e)),))
    poller.poll_once()  # the baseline
    fake.connectors(fixture(FAILED_HERE))
    clock.advance(5)
    assert not poller.poll_once().report.livez.ok
    port = fake.port
    fake.stop()
    clock.advance(5)
    assert poller.poll_once().observation.down
    assert [r for _, r, _ in said] == ["LivenessFailing"], said
    new = FakeConnect(port=port).start()
    try:
        new.healthy(fixture("healthy.json"))
        clock.advance(5)
        view = poller.poll_once()
        assert view.report.livez.ok
    finally:
        new.stop()
    assert [(t, r) for t, r, _ in said] == [("Warning", "LivenessFailing"), ("Normal", "ConnectRestarted"),
                                            ("Normal", "LivenessRecovered")], said
    assert "refused connections" in said[1][2]


def test_restart_counts_per_unit_kind_and_class_survive_the_sidecars_restarts(
        fake: FakeConnect, make_poller: MakePoller, clock: FakeClock, tmp_path: Path) -> None:
    """connect_health_restarts_total{connector, task, kind, class} (issue 21) goes on counting in a new process: the
    REST restarts of the first, then the pod restart that killed it (blamed when it ended), with their class."""
    path = tmp_path / "state.json"
    fake.healthy(fixture(FAILED_HERE))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    first = make_poller(health(restart_attempts=1, restart_backoff=10), state_file=str(path))
    first.poll_once()
    clock.advance(10)
    view = first.poll_once()
    assert not view.report.livez.ok  # blamed: the kubelet kills both containers now
    assert view.restart_units == {("jdbc-sink", "0", "rest", "transient", "requested"): 1}
    second = make_poller(health(restart_attempts=1, restart_backoff=10), state_file=str(path))
    clock.advance(30)
    view = second.poll_once()
    assert view.restart_units[("jdbc-sink", "0", "rest", "transient", "requested")] >= 1
    assert view.restart_units[("jdbc-sink", "", "pod", "transient", "restarted")] == 1
    assert [e[1:] for e in view.last_restarts["jdbc-sink"]][:2] == [
        ("rest", "its failed units restarted over REST", "transient"),
        ("pod", "the pod's containers restarted while liveness failed for it", "transient")]


def test_last_restarts_written_before_the_classes_still_read() -> None:
    doc = statefile.document(WORKER, Lifecycle(), {}, {}, mono=0.0, wall=1e6)
    doc["last_restarts"] = {"a": [[1e6, "rest", "x"]]}
    doc.pop("restart_counts")
    mem = statefile.memory(doc, WORKER, mono=0.0, wall=1e6)
    assert mem.last_restarts == {"a": ((1e6, "rest", "x", "unknown"),)} and mem.restart_counts == {}
