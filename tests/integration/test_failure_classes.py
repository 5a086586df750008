"""Failure classes on real failures (issue 21): each produced here on a real broker, worker and PostgreSQL, then
classified by a running `connect-health serve` from Connect's own traces (its /status JSON).

One stack for the module (Kafka KAFKA_VERSION with Debezium and a test-only plugin), one PostgreSQL, one sidecar, and
the six failures side by side, so the module costs one wait for the slowest of them:

| connector | failure | expected class |
|---|---|---|
| cls-password | pgjdbc connecting to PostgreSQL (scram-sha-256 for role `app`) with a wrong password | credentials |
| cls-publication | Debezium with `publication.autocreate.mode=disabled` and no such publication | configuration |
| cls-json | a FileStreamSink with JsonConverter, `schemas.enable=true`, reading plain text lines | data |
| cls-tasks | a connector generating tasks.max + 2 task configs (KIP-1004 fails it on Kafka 3.8+) | configuration |
| cls-broker | a FileStreamSource whose producer's `bootstrap.servers` (an override) is a closed port | transient |
| cls-oom | a task whose start() allocates more than the heap: the JVM throws OutOfMemoryError | resource |

The connectors come from launcher.failing; its test-only connector (java/FailingConnector.java) is compiled with the
JDK's javac at test time. Its `jdbc` mode stands in for a JDBC connector: Debezium 3.6.1 cannot show a wrong
password as a FAILED task (its PostgresConnectorTask.start() turns any failure to reach the database into a
RetriableException and retries inside a RUNNING task, see test_cdc.py; and its connector validation refuses a wrong
password with a 400 before anything runs), while the driver, the server and the message are the real ones. The
OutOfMemoryError is the JVM's own, for an allocation larger than the heap: the worker's heap is never actually
filled, so the other connectors keep running.

The sidecar runs a 2-attempt ladder with a 1 s backoff. Expected, from its /status, /livez and the worker's request
log: credentials, configuration, data -> exactly one REST restart, the connector named in a `needs-action` readiness
warning, never in /livez; transient -> both ladder attempts, then /livez fails naming it; resource -> one restart, then
/livez fails naming it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import launcher
import pytest
from launcher import failing
from probing import metric, wait_for

VERSION = launcher.KAFKA_VERSION  # KIP-1004 needs Kafka >= 3.8: the newest only
RESTART = r"/connectors/{name}/restart\?(?=.*includeTasks=true)(?=.*onlyFailed=true).*"
EXPECTED = {name: cls for name, (_, cls) in failing.EXPECTED.items()}
NEEDS_ACTION = {n for n, c in EXPECTED.items() if c in ("credentials", "configuration", "data")}
REST_RESTARTS = {n: 2 if c == "transient" else 1 for n, c in EXPECTED.items()}


@dataclass(frozen=True)
class Run:
    stack: launcher.Stack
    sidecar: launcher.Sidecar
    status: dict[str, Any]
    livez: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    t0 = time.monotonic()
    root = tmp_path_factory.mktemp("failure-classes")
    try:
        launcher.require_fetched(VERSION, debezium=True)
        plugins = failing.compile_plugin(root, VERSION)
    except launcher.StackError as e:
        pytest.fail(str(e), pytrace=False)
    pg = launcher.Postgres(root / "postgres").start()
    stack = launcher.Stack(root / "stack", VERSION, debezium=True, plugin_path=[plugins])
    sc = None
    try:
        stack.start()
        failing.require_password(pg)
        worker = stack.worker
        configs = failing.configs(pg, root, launcher.free_port())  # nothing listens on that port
        sc = launcher.Sidecar(root, stack.connect_url, ["--poll-interval", "0.5", "--request-timeout", "5",
                                                        "--restart-attempts", "2", "--restart-backoff", "1"],
                              name="sidecar-classes").start(timeout=60)
        for name, config in configs.items():
            worker.put_connector(name, config, timeout=60)
        wait_for(lambda: worker.connector_status("cls-publication") is not None, 60, "Debezium's connector")
        time.sleep(2)
        pg.sql("insert into items values (1, 'a change for the missing publication')")

        def classified() -> dict[str, Any] | None:
            code, doc = sc.get("/status?limit=100")
            by = {c["name"]: c for c in doc["connectors"]}
            done = all(by.get(n, {}).get("class") == c and by[n]["failed_past_ladder"] for n, c in EXPECTED.items())
            return doc if code == 200 and done else None

        try:
            doc = wait_for(classified, 240, "the sidecar to classify every failure, past its restarts")
        except launcher.StackError as e:
            _, now = sc.get("/status?limit=100")
            seen = {c["name"]: (c.get("class"), c["failed_past_ladder"],
                                [t.get("trace") for t in [c["connector"], *c["tasks"]] if t.get("trace")])
                    for c in now["connectors"]}
            raise AssertionError(f"{e}; seen: {seen}") from None
        livez = wait_for(lambda: (lambda r: r[1] if r[0] == 503 and all(
            n in " ".join(r[1]["reasons"]) for n in ("cls-broker", "cls-oom")) else None)(sc.get("/livez")), 60,
            "/livez to name the transient and the resource failures")
        time.sleep(5)  # longer than the ladder's waits: no further restart may come
        code, doc = sc.get("/status?limit=100")
        yield Run(stack, sc, doc, livez, time.monotonic() - t0)
    finally:
        if sc is not None:
            sc.stop()
        stack.stop()
        pg.stop()


def entry(run: Run, name: str) -> dict[str, Any]:
    return next(c for c in run.status["connectors"] if c["name"] == name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_real_failure_gets_its_class(run: Run, name: str) -> None:
    e = entry(run, name)
    assert e["class"] == EXPECTED[name], e
    assert e["needs_action"] is (name in NEEDS_ACTION), e
    failed = [u for u in [e["connector"], *e["tasks"]] if u["state"] == "FAILED"]
    assert failed and all(u["class"] == EXPECTED[name] and u["hint"] for u in failed), failed


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_restarts_sent_per_class(run: Run, name: str) -> None:
    # A 409 (the worker rebalancing while the connectors are created) is no attempt (ladder.record): accepted only.
    sent = [r for r in run.stack.worker.requests_matching("POST", RESTART.format(name=name)) if '" 202 ' in r]
    assert len(sent) == REST_RESTARTS[name], sent
    counted = metric(run.sidecar, "connect_health_restarts_total", connector=name,
                     task="" if name == "cls-tasks" else "0", kind="rest", **{"class": EXPECTED[name]},
                     outcome="requested")
    assert counted == REST_RESTARTS[name]


def test_needs_action_never_fails_liveness_the_others_do(run: Run) -> None:
    reasons = " ".join(run.livez["reasons"])
    assert "cls-broker" in reasons and "cls-oom" in reasons
    assert not any(n in reasons for n in NEEDS_ACTION), run.livez
    warnings = [w for w in run.status["probes"]["readyz"].get("warnings", []) if w.startswith("needs-action: ")]
    assert {n for n in NEEDS_ACTION if any(w.startswith(f"needs-action: {n} ") for w in warnings)} == NEEDS_ACTION


def test_hints_say_what_to_do(run: Run) -> None:
    def hint(name: str) -> str:
        e = entry(run, name)
        return str(next(u["hint"] for u in [e["connector"], *e["tasks"]] if u["state"] == "FAILED"))
    assert "tasks.max" in hint("cls-tasks")
    assert "CREATE PUBLICATION" in hint("cls-publication")
    assert "errors.tolerance=all" in hint("cls-json") and "errors.deadletterqueue.topic.name" in hint("cls-json")
    assert "user/password" in hint("cls-password")
    assert "memory" in hint("cls-oom")
    print(f"\nfailure classes module: {run.seconds:.0f}s (stack, PostgreSQL, sidecar, six failures)")
