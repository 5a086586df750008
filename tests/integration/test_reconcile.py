"""Drift correction (`serve --reconcile`, reconcile.py) against a REAL Connect worker (Kafka 4.x and 3.6).

The sidecar's pieces run in this process (Poller, Reconciler, Elector, KubeEvents: what `serve --reconcile
--reconcile-lease NAME --kubernetes-events` wires, app.build) because the Lease and the Events need a Kubernetes API
server: the one stand-in here is tests/sidecar/kubeapi.py, a small HTTP server answering the Lease endpoints with
resourceVersion checks and recording Events. Connect is the real worker; every write is counted in its request log.
The poller fetches configs every 30 s (poller.CONFIG_REFRESH); these tests lower that to 1 s so that a config changed
by hand is seen at once, and --reconcile-after to 0 (a drift is corrected at the second poll that sees it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import launcher
import pytest
from connect_health import poller as poller_mod
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings, HealthSettings
from connect_health.events import KubeEvents, PodRef
from connect_health.lease import Elector
from connect_health.poller import Poller
from connect_health.reconcile import Reconciler, Rules
from probing import metric, wait_for, writes
from sidecar.standin_kube import StandInKubeApi, stand_in_kube

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
LEASE = "rel-kafka-connect-reconcile"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[StandInKubeApi]:
    with stand_in_kube(tmp_path) as server:
        yield server


@dataclass
class Pod:
    """One pod's sidecar pieces: its poller and its reconciler (with its Lease elector and Events)."""

    name: str
    poller: Poller
    reconciler: Reconciler
    events: KubeEvents

    def status(self) -> dict[str, Any]:
        return dict(self.poller.view.reconcile or {})


@pytest.fixture
def pods(connect: str, kube: StandInKubeApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Path], Pod]]:
    monkeypatch.setattr(poller_mod, "CONFIG_REFRESH", 1.0)
    made: list[Pod] = []

    def start(name: str, connectors_file: Path) -> Pod:
        settings = ConnectSettings(url=connect, request_timeout=5.0)
        events = KubeEvents(kube.url, PodRef(name, kube.namespace), str(kube.token_file), None)
        elector = Elector(kube.lease_api(LEASE), name, 15.0)
        rec = Reconciler(ConnectClient(settings), str(connectors_file), events, Rules(after=0.0), elector=elector,
                         threaded=True)
        poller = Poller(ConnectClient(settings), HealthSettings(scope="cluster"),
                        connectors_file=str(connectors_file), observers=(rec,))
        rec.attach(poller)
        pod = Pod(name, poller, rec, events)
        made.append(pod)
        rec.start()
        poller.start(0.5)
        return pod

    yield start
    for pod in made:
        pod.poller.stop()
        pod.reconciler.stop()
        pod.poller.client.close()
        pod.events.close()


def declare(prefix: str, workdir: Path, worker: launcher.Worker) -> tuple[Path, dict[str, dict[str, str]]]:
    """Two declared connectors, created on the worker as declared; the file the sidecars mount."""
    src = workdir / "in.txt"
    src.write_text("one\ntwo\n")
    configs = {
        f"{prefix}-src": {"connector.class": SOURCE, "tasks.max": "1", "file": str(src), "topic": f"{prefix}-lines"},
        f"{prefix}-sink": {"connector.class": SINK, "tasks.max": "1", "topics": f"{prefix}-lines",
                           "file": str(workdir / "out.txt")},
    }
    for name, config in configs.items():
        worker.put_connector(name, config, timeout=60)
        worker.wait_connector_state(name)
    path = workdir / "connectors.json"
    path.write_text(json.dumps({name: {"config": config} for name, config in configs.items()}))
    return path, configs


def config_of(worker: launcher.Worker, name: str) -> dict[str, str] | None:
    status, body = worker.request("GET", f"/connectors/{name}/config")
    return {k: v for k, v in body.items() if k != "name"} if status == 200 else None


def test_a_config_changed_and_a_connector_deleted_by_hand_are_restored(
        pods: Callable[[str, Path], Pod], worker: launcher.Worker, workdir: Path, prefix: str,
        kube: StandInKubeApi) -> None:
    path, configs = declare(prefix, workdir, worker)
    pod = pods("pod-a", path)
    wait_for(lambda: pod.status().get("leader") and pod.poller.view.polls >= 3 and pod.poller.view.drift == (), 30,
             "the sidecar to hold the lease and see no drift")
    before = len(writes(worker, prefix))

    # By hand, behind the declaration's back: change the sink's file, delete the source.
    changed = dict(configs[f"{prefix}-sink"], file=str(workdir / "by-hand.txt"))
    worker.put_connector(f"{prefix}-sink", changed)
    worker.delete_connector(f"{prefix}-src")
    t0 = time.monotonic()

    wait_for(lambda: config_of(worker, f"{prefix}-sink") == configs[f"{prefix}-sink"]
             and config_of(worker, f"{prefix}-src") == configs[f"{prefix}-src"], 60,
             "the sidecar to restore the sink's config and the deleted source")
    print(f"restored {time.monotonic() - t0:.1f}s after the hand changes (poll 0.5 s, configs every 1 s, "
          "--reconcile-after 0)")
    worker.wait_connector_state(f"{prefix}-src")
    wait_for(lambda: len(kube.events) >= 2, 10, "two Events")
    reasons = {(e["reason"], e["involvedObject"]["name"]) for e in kube.events}
    assert reasons == {("ConnectorReconciled", "pod-a")}, kube.events
    messages = sorted(e["message"] for e in kube.events)
    print("Events:", *messages, sep="\n  ")
    assert any(f"connector {prefix}-sink " in m and "config differs" in m and f"updated {prefix}-sink" in m
               for m in messages), messages
    assert any(f"connector {prefix}-src " in m and "missing" in m and f"created {prefix}-src" in m
               for m in messages), messages
    wait_for(lambda: pod.status()["corrections"] == {f"{prefix}-sink": 1, f"{prefix}-src": 1}, 10,
             "the corrections counted")
    # exactly the two hand writes and the two restoring writes, nothing else (no state calls: both RUNNING)
    made = writes(worker, prefix)[before:]
    print("writes on the worker:", *made, sep="\n  ")
    assert len(made) == 4, made
    wait_for(lambda: pod.poller.view.drift == (), 30, "no drift left")


def test_with_two_sidecars_only_the_lease_holder_writes(
        pods: Callable[[str, Path], Pod], worker: launcher.Worker, workdir: Path, prefix: str,
        kube: StandInKubeApi) -> None:
    path, configs = declare(prefix, workdir, worker)
    a = pods("pod-a", path)
    wait_for(lambda: a.status().get("leader"), 30, "pod-a to hold the lease")
    b = pods("pod-b", path)
    wait_for(lambda: b.poller.view.polls >= 3 and b.status().get("waiting") == "another pod holds the lease", 30,
             "pod-b to follow")
    before = len(writes(worker, prefix))

    assert worker.request("PUT", f"/connectors/{prefix}-src/pause")[0] == 202
    wait_for(lambda: a.status()["corrections"] == {f"{prefix}-src": 1}, 30, "pod-a's correction counted")
    worker.wait_connector_state(f"{prefix}-src", "RUNNING", timeout=60)
    # both saw the drift; pod-b too, for several polls, but never wrote
    b_seen = [c for c in b.status()["connectors"] if c["connector"] == f"{prefix}-src"]
    made = writes(worker, prefix)[before:]
    print("writes on the worker:", *made, sep="\n  ")
    print("pod-b's view of the connector:", b_seen)
    assert len([w for w in made if "/resume" in w]) == 1, made
    assert len(made) == 2, made  # the hand pause, one resume
    assert b.status()["corrections"] == {} and b.status()["leader"] is False
    assert {e["involvedObject"]["name"] for e in kube.events} == {"pod-a"}
    assert set(kube.writers()) == {"pod-a"}, kube.log  # pod-b never wrote the Lease either (it was held)


def test_serve_reconcile_alone_restores_a_deleted_connector(sidecar: Callable[..., launcher.Sidecar],
                                                            worker: launcher.Worker, workdir: Path,
                                                            prefix: str) -> None:
    """`connect-health serve --reconcile` as a process, without a Lease (one worker): the wiring of serve itself."""
    path, configs = declare(prefix, workdir, worker)
    sc = sidecar("--connectors-file", str(path), "--reconcile", "--reconcile-after", "0")
    wait_for(lambda: sc.get("/status")[1]["polls"] >= 3, 30, "three polls")
    assert sc.get("/status")[1]["reconcile"]["leader"] is True
    worker.delete_connector(f"{prefix}-src")
    wait_for(lambda: config_of(worker, f"{prefix}-src") == configs[f"{prefix}-src"], 60,
             "the sidecar to create the deleted source again")
    wait_for(lambda: metric(sc, "connect_health_reconcile_corrections_total", connector=f"{prefix}-src") == 1, 20,
             "the correction counted in /metrics")
    log = sc.log.read_text()
    lines = [line for line in log.splitlines() if "reconciled connector" in line]
    print(*lines, sep="\n")
    assert len(lines) == 1 and f"created {prefix}-src" in lines[0], lines
