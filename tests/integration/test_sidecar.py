"""connect-health serve against a REAL Kafka broker and Connect worker, on Kafka 4.x (GET /health) and 3.6 (none).

Each test runs its own sidecar process (the installed console script, waitress) with short ladder timings, and
creates uniquely named connectors that it deletes afterwards: the worker is shared by the session.
The failure used throughout is the one connect-rest.md names: a FileStreamSink whose file lies in a directory that
does not exist fails its task at start ("Couldn't find or create file") while every REST call answers 200.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import launcher
from probing import Sampler, connector_entry, metric, metric_total, wait_for

SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


def failing_sink(name: str, workdir: Path) -> dict[str, Any]:
    return {"connector.class": SINK, "tasks.max": "1", "topics": f"{name}-topic",
            "file": str(workdir / "missing-dir" / "out.txt")}


def test_healthy_source_all_probes_ok(sidecar: Callable[..., launcher.Sidecar], connectors: Any,
                                      worker: launcher.Worker, workdir: Path, connector_name: str,
                                      kafka_version: str) -> None:
    src = workdir / "in.txt"
    src.write_text("a\nb\n")
    connectors(connector_name, {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                "topic": f"{connector_name}-topic"})
    worker.wait_connector_state(connector_name)
    sc = sidecar()
    wait_for(lambda: connector_entry(sc, connector_name), 20, "the sidecar to list the connector")
    for path in ("/livez", "/health", "/readyz", "/startupz", "/ping"):
        status, body = sc.get(path)
        assert status == 200, (path, body)
        assert body["status"] == "ok"
    entry = connector_entry(sc, connector_name)
    assert entry is not None
    assert entry["connector"]["state"] == "RUNNING"
    assert entry["connector"]["on_this_worker"] is True
    assert entry["tasks"][0]["verdict"] == "ok"
    _, status_doc = sc.get("/status")
    expected_endpoint = "/health" if launcher.has_health_endpoint(kafka_version) else "/"
    assert status_doc["worker"]["health_endpoint"] == expected_endpoint
    # The first poll on a worker without GET /health makes one extra call to find that out; later ones do not.
    wait_for(lambda: sc.get("/status")[1]["polls"] >= 3, 20, "three polls")
    assert metric(sc, "connect_health_connector_state", connector=connector_name, state="RUNNING") == 1
    assert metric(sc, "connect_health_task_state", connector=connector_name, state="RUNNING", task="0") == 1
    assert metric(sc, "connect_health_worker_reachable") == 1
    # The poll is two REST calls (health, plus the expanded list), whatever the connector count; three on a worker
    # without GET /health (root, the herder probe, the expanded list).
    assert metric(sc, "connect_health_rest_calls_last_poll") == (2 if expected_endpoint == "/health" else 3)


def test_failed_sink_runs_ladder_then_fails_liveness(sidecar: Callable[..., launcher.Sidecar], connectors: Any,
                                                     worker: launcher.Worker, workdir: Path,
                                                     connector_name: str) -> None:
    sc = sidecar("--restart-attempts", "2", "--restart-backoff", "1")
    connectors(connector_name, failing_sink(connector_name, workdir))
    status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(sc.get("/livez")), 60,
                            "/livez to turn 503")
    assert body["status"] == "unhealthy"
    assert any(connector_name in reason for reason in body["reasons"]), body
    # The ladder sent the KIP-745 restarts to the real worker before giving up.
    restarts = worker.requests_matching(
        "POST", rf"/connectors/{connector_name}/restart\?(?=.*includeTasks=true)(?=.*onlyFailed=true).*")
    assert len(restarts) == 2, restarts
    entry = connector_entry(sc, connector_name)
    assert entry is not None and entry["failed_past_ladder"] is True
    assert entry["tasks"][0]["state"] == "FAILED"
    assert "Couldn't find or create file" in (entry["tasks"][0]["trace"] or "")
    assert metric_total(sc, "connect_health_connector_failed", connector=connector_name, policy="critical") == 1
    assert metric_total(sc, "connect_health_restarts_total", connector=connector_name, outcome="requested") == 2
    assert metric(sc, "connect_health_probe_healthy", probe="livez") == 0
    assert sc.get("/readyz")[0] == 503


def test_best_effort_failure_never_fails_liveness(sidecar: Callable[..., launcher.Sidecar], connectors: Any,
                                                  workdir: Path, connector_name: str) -> None:
    sc = sidecar("--restart-attempts", "1", "--restart-backoff", "1", "--best-effort", f"^{connector_name}$")
    with Sampler(sc) as sampler:
        connectors(connector_name, failing_sink(connector_name, workdir))
        entry = wait_for(lambda: (lambda e: e if e and e["failed_past_ladder"] else None)(
            connector_entry(sc, connector_name)), 60, "the connector to fail past the ladder")
    assert sampler.seen and set(sampler.seen) == {200}, sampler.seen
    assert entry["policy"] == "best-effort"
    assert entry["tasks"][0]["verdict"] == "failed"
    ready = sc.get("/readyz")[1]
    assert any(connector_name in w for w in ready.get("warnings", [])), ready
    assert metric_total(sc, "connect_health_connector_failed", connector=connector_name, policy="best-effort") == 1


def test_cause_fixed_before_ladder_runs_out_recovers(sidecar: Callable[..., launcher.Sidecar], connectors: Any,
                                                     worker: launcher.Worker, workdir: Path,
                                                     connector_name: str) -> None:
    sc = sidecar("--restart-attempts", "3", "--restart-backoff", "3")
    config = failing_sink(connector_name, workdir)
    with Sampler(sc) as sampler:
        connectors(connector_name, config)
        worker.wait_for_request("POST", rf"/connectors/{connector_name}/restart\?.*", count=1, timeout=60)
        Path(config["file"]).parent.mkdir()  # the cause goes away; the next rung of the ladder heals it
        worker.wait_connector_state(connector_name, "RUNNING", timeout=60)
        wait_for(lambda: (lambda e: e if e and e["tasks"] and e["tasks"][0]["verdict"] == "ok" else None)(
            connector_entry(sc, connector_name)), 20, "the sidecar to see the task running")
    assert sampler.seen and set(sampler.seen) == {200}, sampler.seen
    assert (metric_total(sc, "connect_health_restarts_total", connector=connector_name, outcome="requested") or 0) >= 1
    # healed: no FAILED unit here any more, so no connector_failed series (only failing connectors have one)
    assert metric_total(sc, "connect_health_connector_failed", connector=connector_name, policy="critical") is None
    assert metric(sc, "connect_health_task_state", connector=connector_name, task="0", state="RUNNING") == 1


def test_frozen_worker_fails_liveness_then_recovers(stack_factory: Callable[..., launcher.Stack],
                                                    kafka_version: str, workdir: Path) -> None:
    own = stack_factory(kafka_version, debezium=False)
    sc = launcher.Sidecar(workdir, own.connect_url, ["--poll-interval", "0.5", "--request-timeout", "1",
                                                       "--unresponsive-after", "4"]).start()
    try:
        wait_for(lambda: sc.get("/startupz")[0] == 200, 30, "startup to be seen")
        assert sc.get("/livez")[0] == 200
        own.worker.pause()
        try:
            t0 = time.monotonic()
            status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(sc.get("/livez")), 30,
                                    "/livez to turn 503 on a frozen worker")
            took = time.monotonic() - t0
            assert any("unresponsive" in r for r in body["reasons"]), body
            assert took >= 3.0, f"liveness failed after {took:.1f}s, before the 4 s budget"
            # While Connect hangs, probes still answer from the cached view (a hung handler would time out).
            assert sc.get("/ping", timeout=2)[0] == 200
            assert sc.get("/readyz", timeout=2)[0] == 503
        finally:
            own.worker.resume()
        wait_for(lambda: sc.get("/livez")[0] == 200, 60, "/livez to recover after SIGCONT")
    finally:
        sc.stop()
