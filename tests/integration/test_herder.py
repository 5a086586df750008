"""The worker alive but its herder busy: a REAL broker stopped under a REAL worker, and a real worker's startup.

- A broker outage keeps the herder waiting (GET /health times out or answers 500) while GET / answers: readiness
  fails, liveness must not (restarting Connect cannot bring a broker back), however far past --unresponsive-after.
- "No GET /health" is decided from the version GET / reports, not from a 404 a starting worker may answer before its
  REST resources are registered: a sidecar polling through a worker's whole startup uses /health on 4.x, / on 3.6.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import launcher
from probing import wait_for


def test_broker_stopped_fails_readiness_never_liveness(stack_factory: Callable[..., launcher.Stack],
                                                       kafka_version: str, workdir: Path) -> None:
    own = stack_factory(kafka_version, debezium=False)
    sc = launcher.Sidecar(workdir, own.connect_url, ["--poll-interval", "0.5", "--request-timeout", "2",
                                                       "--unresponsive-after", "4"]).start()
    try:
        wait_for(lambda: sc.get("/startupz")[0] == 200, 60, "startup to be seen")
        own.broker.stop()
        herder = launcher.has_health_endpoint(kafka_version)
        livez: list[tuple[int, object]] = []
        ready_503: list[float] = []
        t0 = time.monotonic()
        # 5 x --unresponsive-after at least; with GET /health, until readiness has failed for 2 x that (cap 45 s).
        while (elapsed := time.monotonic() - t0) < 45 and (
                elapsed < 20 or (herder and (not ready_503 or time.monotonic() - ready_503[0] < 8))):
            livez.append(sc.get("/livez"))
            if sc.get("/readyz")[0] == 503:
                ready_503.append(time.monotonic())
            time.sleep(0.5)
        bad = [r for r in livez if r[0] != 200]
        assert not bad, f"/livez failed during a broker outage: {bad[:3]}"
        if herder:
            assert ready_503, "/readyz never turned 503 with the broker stopped"
            status, body = sc.get("/readyz")
            assert status == 503, body
            assert any("herder" in r for r in body["reasons"]), body
        # Kafka 3.6 has no GET /health and its GET /connectors answers from the herder's memory while the broker
        # is down: nothing in its REST API shows the outage, so readiness stays as it was.
    finally:
        sc.stop()


def test_health_endpoint_chosen_by_version_through_a_workers_startup(stack_factory: Callable[..., launcher.Stack],
                                                                     kafka_version: str, workdir: Path) -> None:
    own = stack_factory(kafka_version, debezium=False, start=False)
    own.broker.start()
    # Polling every 0.1 s from before the worker exists: the sidecar sees the refused port, then the REST server's
    # first answers (a 404 for /health can come before the resources are registered), then the started worker.
    sc = launcher.Sidecar(workdir, own.connect_url, ["--poll-interval", "0.1", "--request-timeout", "2"]).start()
    try:
        own.worker.start()
        wait_for(lambda: sc.get("/startupz")[0] == 200, 60, "startup to be seen")
        expected = "/health" if launcher.has_health_endpoint(kafka_version) else "/"
        assert sc.get("/status")[1]["worker"]["health_endpoint"] == expected
        assert sc.get("/readyz")[0] == 200
    finally:
        sc.stop()
