"""The worker alive but its herder busy or stuck: a REAL broker stopped under a REAL worker, a real worker's startup,
and a real herder thread held by a connector.

The herder call is GET /health on Kafka >= 3.9 and, on 3.6 (no GET /health; its GET /connectors?expand=status reads
the backing stores and answers while the herder is deadlocked), GET /connectors/connect-health-herder-probe, which
DistributedHerder.connectorInfo answers on the herder's own thread.

- A broker outage keeps the herder waiting while GET / answers: readiness fails, liveness must not (restarting Connect
  cannot bring a broker back), however far past --unresponsive-after.
- "No GET /health" is decided from the version GET / reports, not from a 404 a starting worker may answer before its
  REST resources are registered: a sidecar polling through a worker's whole startup uses /health on 4.x, / on 3.6.
- A herder really stuck: a test-only connector whose taskConfigs() blocks the herder thread until a file is deleted
  (java/BlockingConnector.java, compiled here with the JDK's javac against the fetched connect-api jar; never
  committed as a .class or .jar). The sidecar names the stuck herder, fails liveness after --herder-stuck-after and
  recovers once it is released, on 4.3.1 and on 3.6.2. It runs on the worker the startup test just started.
"""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import launcher
import pytest
from launcher.fetch import kafka_libs
from probing import wait_for

JAVA_SRC = Path(__file__).resolve().parent / "java" / "BlockingConnector.java"
BLOCKING_CLASS = "connecthealth.testplugins.BlockingConnector"


@pytest.fixture(scope="session")
def blocking_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BlockingConnector as a plugin jar for a worker's plugin.path, with the ServiceLoader manifest the workers'
    plugin.discovery=service_load needs. Compiled once, against the oldest supported Kafka's connect-api and
    kafka-clients jars: like a real plugin, built against one API and run on every newer worker."""
    version = launcher.KAFKA_LEGACY_VERSION
    java = Path(launcher.require_java(version)).resolve()
    javac = java.parent / "javac"
    if not javac.exists():
        pytest.fail(f"no javac next to {java}: install a JDK, not only a JRE (apt-get install -y "
                    "openjdk-17-jdk-headless)", pytrace=False)
    libs = kafka_libs(version)
    classpath = [*sorted(libs.glob("connect-api-*.jar")), *sorted(libs.glob("kafka-clients-*.jar"))]
    if len(classpath) < 2:
        pytest.fail(f"connect-api or kafka-clients jar missing in {libs}: run `make kafka`", pytrace=False)
    out = tmp_path_factory.mktemp("blocking-plugin")
    classes = out / "classes"
    done = subprocess.run([str(javac), "-nowarn", "-d", str(classes), "-cp", os.pathsep.join(map(str, classpath)),
                           str(JAVA_SRC)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"javac failed on {JAVA_SRC.name}:\n{done.stdout}{done.stderr}", pytrace=False)
    jar = out / "blocking-connector.jar"
    with zipfile.ZipFile(jar, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
        z.writestr("META-INF/services/org.apache.kafka.connect.source.SourceConnector", BLOCKING_CLASS + "\n")
    return jar


def test_broker_stopped_fails_readiness_never_liveness(stack_factory: Callable[..., launcher.Stack],
                                                       kafka_version: str, workdir: Path) -> None:
    own = stack_factory(kafka_version, debezium=False)
    sc = launcher.Sidecar(workdir, own.connect_url, ["--poll-interval", "0.5", "--request-timeout", "2",
                                                       "--unresponsive-after", "4"]).start()
    try:
        wait_for(lambda: sc.get("/startupz")[0] == 200, 60, "startup to be seen")
        own.broker.stop()
        livez: list[tuple[int, object]] = []
        ready_503: list[float] = []
        t0 = time.monotonic()
        # 5 x --unresponsive-after at least, and until readiness has failed for 2 x that (cap 45 s).
        while (elapsed := time.monotonic() - t0) < 45 and (
                elapsed < 20 or not ready_503 or time.monotonic() - ready_503[0] < 8):
            livez.append(sc.get("/livez"))
            if sc.get("/readyz")[0] == 503:
                ready_503.append(time.monotonic())
            time.sleep(0.5)
        bad = [r for r in livez if r[0] != 200]
        assert not bad, f"/livez failed during a broker outage: {bad[:3]}"
        # Kafka 3.6 too: its GET /connectors answers from the backing stores while the broker is down, but the
        # herder probe waits on the herder thread, which waits for the broker.
        assert ready_503, "/readyz never turned 503 with the broker stopped"
        status, body = sc.get("/readyz")
        assert status == 503, body
        assert any("herder" in r for r in body["reasons"]), body
    finally:
        sc.stop()


def test_a_workers_startup_then_its_herder_stuck_and_released(stack_factory: Callable[..., launcher.Stack],
                                                               kafka_version: str, blocking_plugin: Path,
                                                               workdir: Path) -> None:
    own = stack_factory(kafka_version, debezium=False, start=False, plugin_path=[blocking_plugin])
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
    # The same worker, started: now hold its herder (a fresh worker per scenario would double this test's time).
    stuck_herder_seen_and_recovered(own, workdir)


def stuck_herder_seen_and_recovered(own: launcher.Stack, workdir: Path) -> None:
    """A connector whose taskConfigs() blocks holds the herder thread: herder-bound calls wait while GET / and
    GET /connectors?expand=status (read from the backing stores) answer as usual. The sidecar must name the stuck
    herder on readiness, fail liveness after --herder-stuck-after, and recover once the herder is released."""
    sc = launcher.Sidecar(workdir, own.connect_url, ["--poll-interval", "0.5", "--request-timeout", "2",
                                                       "--herder-stuck-after", "4", "--unresponsive-after", "300"],
                          name="sidecar-herder").start()
    block, entered = workdir / "block", workdir / "entered"
    block.touch()
    try:
        wait_for(lambda: sc.get("/readyz")[0] == 200, 60, "the sidecar to see the worker started and ready")
        own.worker.put_connector("blocker", {"connector.class": BLOCKING_CLASS, "tasks.max": "1",
                                             "block.file": str(block), "entered.file": str(entered),
                                             "block.max.ms": "180000"})
        wait_for(entered.exists, 60, "the herder to call BlockingConnector.taskConfigs()")

        # The herder is stuck (not the sidecar's say-so): a config write, which only the herder thread performs,
        # gets no answer; the calls that do not go through it answer as usual.
        other = {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "tasks.max": "1",
                 "file": str(workdir / "in.txt"), "topic": "herder-other"}
        with pytest.raises(TimeoutError):
            own.worker.request("PUT", "/connectors/other/config", other, timeout=5)
        assert own.worker.request("GET", "/", timeout=5)[0] == 200
        status, listing = own.worker.request("GET", "/connectors?expand=status", timeout=5)
        assert status == 200 and "blocker" in listing, listing

        wait_for(lambda: any("herder" in r for r in sc.get("/readyz")[1]["reasons"]), 30,
                 "/readyz to name the stuck herder")
        livez = wait_for(lambda: (r := sc.get("/livez"))[0] == 503 and r, 30, "/livez to fail on the stuck herder")
        assert any("herder stuck" in r for r in livez[1]["reasons"]), livez
        assert not any("unresponsive" in r for r in livez[1]["reasons"]), livez

        block.unlink()
        wait_for(lambda: sc.get("/livez")[0] == 200 and sc.get("/readyz")[0] == 200, 60,
                 "/livez and /readyz to recover once the herder is released")
        own.worker.wait_connector_state("blocker", "RUNNING", tasks=0)
    finally:
        block.unlink(missing_ok=True)  # never leave the worker's herder held (BlockingConnector gives up after 180 s)
        sc.stop()
