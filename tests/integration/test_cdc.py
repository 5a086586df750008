"""Change data capture, for real: PostgreSQL -> Debezium -> Kafka, watched by connect-health, on Kafka 4.x and 3.6.

PostgreSQL is Debian's server started by the `postgres` fixture (127.0.0.1, a fresh data dir, wal_level=logical).
The Debezium PostgreSQL connector (pinned in ci/versions.env, on the session worker's plugin.path) captures one
table through pgoutput into `<prefix>.public.items`, with `errors.max.retries=0` so that losing the database fails
its running task instead of retrying forever. What reached the topic is read back independently of Debezium: a
FileStreamSink on that topic with the StringConverter writes each record's value, Debezium's JSON envelope exactly
as it is stored in Kafka, as one line of a file.

What Debezium 3.6.1 does when its task is restarted while the database is still down shapes part 2. Its
PostgresConnectorTask.start() wraps any failure to reach the database ("Couldn't obtain encoding for database") in a
RetriableException, whatever errors.max.retries says. BaseSourceTask then keeps the task alive and tries start()
again from poll() every `retriable.restart.connector.wait.ms`, indefinitely. Connect treats a RetriableException
from poll() as "retry", so the REST API reports the restarted task RUNNING for the whole outage. The sidecar sees
only what Connect reports, so its first restart is also its last: the ladder never runs out, and /livez stays 200
while the database stays down. Issue 5 asks for "the sidecar runs its ladder and, as long as the database stays down,
/livez turns 503", which is impossible with this Debezium. The test therefore proves the two halves that are real,
and pins the gap so that a change on either side shows up here:

- `test_rows_reach_topic_then_db_down`: rows (snapshot and streamed) all arrive in the topic. PostgreSQL stops and
  the task FAILS. With nothing restarting it, the task stays FAILED and /livez is 503 naming the connector for as
  long as the database is down: a sidecar whose ladder is on, with the Debezium connector declared with
  `restartAttempts: 0` in its connectors file, the per-connector way out of this gap. Then a sidecar with a ladder
  (2 attempts, 1 s backoff) sends its KIP-745 restart to the real worker. Connect reports the task RUNNING although
  PostgreSQL is still down (Debezium's internal retries are in the worker log), and both sidecars answer 200: the
  outage becomes invisible over REST.
- `test_db_back_within_ladder_recovers_without_losing_rows`: PostgreSQL stops and comes back (same data, same port,
  same replication slot) well within a longer ladder (5 attempts, 2 s backoff: a 2+4+8+16+32 s window). The slot is
  active again, the task is RUNNING, /livez never left 200 (sampled all along), and every row is in the topic:
  the rows inserted just before the stop and those inserted before the task had reconnected.

Delivery is at least once (a restarted task replays from its last committed offset), so duplicates are allowed and a
missing row is not. Connectors are deleted at teardown because the worker is shared. Each test has its own
PostgreSQL, and so its own replication slot and publication. Waits are bounded and generous, because other stacks
may share the machine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import launcher
from probing import Sampler, connector_entry, metric_total, wait_for

SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"
TABLE = "items"
RESTART_PATH = r"/connectors/{name}/restart\?(?=.*includeTasks=true)(?=.*onlyFailed=true).*"

# Bounds, not expectations: a Debezium task starts (and snapshots) in seconds, but this machine may be busy.
START_TIMEOUT = 180.0
ARRIVAL_TIMEOUT = 180.0
FAIL_TIMEOUT = 120.0
RETRY_WAIT_MS = 3000
# What Debezium logs (once, as the top of the stack trace) each time a task fails to start with the database down.
START_FAILED = "RetriableException: Couldn't obtain encoding for database"


# ------------------------------------------------------------------------------------------------ fixtures

# ------------------------------------------------------------------------------------------------- helpers

class Topic:
    """What reached a Kafka topic, as written by a FileStreamSink (StringConverter: one record value a line)."""

    def __init__(self, path: Path, topic: str) -> None:
        self.path = path
        self.topic = topic

    def records(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if isinstance(value, dict):
                out.append(value)
        return out

    def ops_by_id(self) -> dict[int, set[str]]:
        """id of each captured row -> the Debezium operations seen for it ('r' snapshot read, 'c' insert)."""
        out: dict[int, set[str]] = {}
        for rec in self.records():
            after = rec.get("after")
            if isinstance(after, dict) and isinstance(after.get("id"), int):
                out.setdefault(after["id"], set()).add(str(rec.get("op")))
        return out

    def wait_for_ids(self, ids: Iterable[int], timeout: float = ARRIVAL_TIMEOUT) -> dict[int, set[str]]:
        wanted = set(ids)
        last: dict[int, set[str]] = {}

        def arrived() -> dict[int, set[str]] | None:
            nonlocal last
            last = self.ops_by_id()
            return last if wanted <= last.keys() else None

        try:
            result: dict[int, set[str]] = wait_for(arrived, timeout, f"rows {sorted(wanted)} in topic {self.topic}")
        except launcher.StackError as e:
            raise AssertionError(f"{e}; missing: {sorted(wanted - last.keys())}") from None
        return result


def insert(pg: launcher.Postgres, ids: Iterable[int]) -> None:
    values = ", ".join(f"({i}, 'row {i}')" for i in ids)
    pg.sql(f"insert into {TABLE} (id, name) values {values}")


def task_state(worker: launcher.Worker, name: str) -> str | None:
    status = worker.connector_status(name)
    tasks = (status or {}).get("tasks") or []
    return tasks[0].get("state") if tasks else None


def sidecar_sees_running(sc: launcher.Sidecar, name: str) -> dict[str, Any] | None:
    entry = connector_entry(sc, name)
    if entry and entry["connector"]["state"] == "RUNNING" and entry["tasks"] \
            and all(t["state"] == "RUNNING" and t["verdict"] == "ok" for t in entry["tasks"]):
        return entry
    return None


@dataclass(frozen=True)
class Capture:
    name: str  # the Debezium connector
    slot: str  # its replication slot
    topic: Topic
    config: dict[str, str]  # as created on the worker


def capture(pg: launcher.Postgres, worker: launcher.Worker, connectors: Callable[[str, dict[str, Any]], None],
            workdir: Path, name: str) -> Capture:
    """The Debezium connector `name` on pg's table, and a FileStreamSink copying its topic to a file; both RUNNING."""
    prefix = f"cdc{uuid.uuid4().hex[:10]}"  # topics live in the session's broker: unique per test
    topic = Topic(workdir / f"{prefix}.jsonl", f"{prefix}.public.{TABLE}")
    config = pg.debezium_config(prefix, f"public.{TABLE}", **{
        # Losing the database fails the running task (the sidecar's business) instead of retrying forever.
        "errors.max.retries": "0",
        # How often a task restarted while the database is down tries to start again (default 10 s; see above).
        "retriable.restart.connector.wait.ms": str(RETRY_WAIT_MS),
    })
    connectors(name, config)
    worker.wait_connector_state(name, "RUNNING", timeout=START_TIMEOUT)
    sink = f"{name}-topic-copy"
    connectors(sink, {"connector.class": SINK, "tasks.max": "1", "topics": topic.topic, "file": str(topic.path),
                      "key.converter": STRING_CONVERTER, "value.converter": STRING_CONVERTER})
    worker.wait_connector_state(sink, "RUNNING", timeout=START_TIMEOUT)
    return Capture(name=name, slot=config["slot.name"], topic=topic, config=dict(config))


def seeded_capture(pg: launcher.Postgres, worker: launcher.Worker,
                   connectors: Callable[[str, dict[str, Any]], None], workdir: Path, name: str) -> Capture:
    """The table with rows 1-5 before the connector exists (its snapshot) and rows 6-10 inserted after (streamed)."""
    pg.sql(f"create table {TABLE} (id int primary key, name text not null)")
    insert(pg, range(1, 6))
    cdc = capture(pg, worker, connectors, workdir, name)
    insert(pg, range(6, 11))
    return cdc


def log_size(worker: launcher.Worker) -> int:
    try:
        return worker.log.stat().st_size
    except OSError:
        return 0


def log_since(worker: launcher.Worker, offset: int) -> str:
    with open(worker.log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def slot_active(pg: launcher.Postgres, slot: str) -> bool:
    return pg.sql(f"select active from pg_replication_slots where slot_name = '{slot}'", timeout=10) == "t"


# --------------------------------------------------------------------------------------------------- tests

def test_rows_reach_topic_then_db_down(
        postgres: launcher.Postgres, worker: launcher.Worker, connectors: Any,
        sidecar: Callable[..., launcher.Sidecar], workdir: Path, connector_name: str) -> None:
    # Part 1: rows that exist before the connector (its initial snapshot) and rows inserted afterwards (streamed
    # from the WAL through the replication slot) all arrive in the topic.
    cdc = seeded_capture(postgres, worker, connectors, workdir, connector_name)
    for i in range(11, 21):
        insert(postgres, [i])  # one transaction each
    ops = cdc.topic.wait_for_ids(range(1, 21))
    assert all(ops[i] == {"r"} for i in range(1, 6)), ops
    assert all("c" in ops[i] for i in range(6, 21)), ops

    # Part 2a: the database goes away and stays away. The sidecar runs a restart ladder, but the Debezium connector
    # is declared with `restartAttempts: 0` (what the README advises for Debezium, see above): nothing restarts its
    # task (Connect never does by itself), it stays FAILED, and liveness says so, naming the connector, for as long
    # as the database is down.
    restart_rx = RESTART_PATH.format(name=cdc.name)
    declared = workdir / "declared.json"
    declared.write_text(json.dumps({cdc.name: {"config": cdc.config, "restartAttempts": 0}}))
    watcher = sidecar("--restart-attempts", "3", "--restart-backoff", "1", "--connectors-file", str(declared))
    wait_for(lambda: sidecar_sees_running(watcher, cdc.name), 60, "the sidecar to see the connector running")
    assert watcher.get("/livez")[0] == 200
    postgres.stop()

    def livez_503() -> dict[str, Any] | None:
        status, body = watcher.get("/livez")
        return body if status == 503 else None

    body = wait_for(livez_503, FAIL_TIMEOUT, "/livez to turn 503 with PostgreSQL down")
    assert body["status"] == "unhealthy"
    assert any(cdc.name in reason and "FAILED" in reason for reason in body["reasons"]), body
    assert task_state(worker, cdc.name) == "FAILED"
    for _ in range(6):
        time.sleep(0.5)
        status, body = watcher.get("/livez")
        assert status == 503 and any(cdc.name in r for r in body["reasons"]), (status, body)
    assert task_state(worker, cdc.name) == "FAILED"
    assert worker.requests_matching("POST", restart_rx) == []
    assert "restart ladder disabled" in " ".join(watcher.get("/livez")[1]["reasons"])

    # Part 2b: a sidecar with a ladder restarts the failed task over KIP-745 while the database is still down.
    # Debezium's restarted task does not fail again: it retries its start inside the task, and Connect reports it
    # RUNNING. The ladder stops after its first rung, and the outage disappears from the REST API and from /livez.
    mark = log_size(worker)
    laddered = sidecar("--restart-attempts", "2", "--restart-backoff", "1")
    restarts = worker.wait_for_request("POST", restart_rx, count=1, timeout=60)
    assert '" 202 ' in restarts[0], restarts
    wait_for(lambda: task_state(worker, cdc.name) == "RUNNING", 60,
             "Connect to report the restarted task RUNNING (PostgreSQL still down)")
    wait_for(lambda: watcher.get("/livez")[0] == 200 and laddered.get("/livez")[0] == 200, 30,
             "both sidecars to see the task RUNNING")
    with Sampler(laddered) as seen_laddered, Sampler(watcher) as seen_watcher:
        # Longer than the whole ladder (1 + 2 s) and than a few of Debezium's in-task retries (RETRY_WAIT_MS).
        wait_for(lambda: log_since(worker, mark).count(START_FAILED) >= 3, 60,
                 "the restarted task to fail its start three times, retrying inside the task each time")
    assert not launcher.is_listening(postgres.port), "PostgreSQL must still be down"
    assert task_state(worker, cdc.name) == "RUNNING"
    assert seen_laddered.seen and seen_laddered.not_ok() == [], seen_laddered.seen
    assert seen_watcher.seen and seen_watcher.not_ok() == [], seen_watcher.seen
    assert len(worker.requests_matching("POST", restart_rx)) == 1
    entry = connector_entry(laddered, cdc.name)
    assert entry is not None and entry["failed_past_ladder"] is False and entry["restart_attempts"] == 1, entry
    assert entry["tasks"][0]["state"] == "RUNNING" and entry["tasks"][0]["verdict"] == "ok", entry
    assert metric_total(laddered, "connect_health_restarts_total", connector=cdc.name, outcome="requested") == 1


def test_db_back_within_ladder_recovers_without_losing_rows(
        postgres: launcher.Postgres, worker: launcher.Worker, connectors: Any,
        sidecar: Callable[..., launcher.Sidecar], workdir: Path, connector_name: str) -> None:
    cdc = seeded_capture(postgres, worker, connectors, workdir, connector_name)
    cdc.topic.wait_for_ids(range(1, 11))
    port = postgres.port
    restart_rx = RESTART_PATH.format(name=cdc.name)

    # A window of 2+4+8+16+32 s after the first restart: the database is back long before it closes.
    sc = sidecar("--restart-attempts", "5", "--restart-backoff", "2")
    wait_for(lambda: sidecar_sees_running(sc, cdc.name), 60, "the sidecar to see the connector running")
    with Sampler(sc) as sampler:
        # Rows committed right before the stop: they may or may not have been streamed when the server goes.
        insert(postgres, range(11, 21))
        postgres.stop()
        # The task fails, and the sidecar's first rung restarts it while the database is still down.
        wait_for(lambda: worker.requests_matching("POST", restart_rx), FAIL_TIMEOUT,
                 "the sidecar's first restart of the failed task")
        postgres.start()  # same data dir and port: the replication slot and its position survived
        assert postgres.port == port
        # Rows committed before the task has reconnected to the database.
        insert(postgres, range(21, 31))
        wait_for(lambda: slot_active(postgres, cdc.slot), START_TIMEOUT,
                 f"the task to stream from replication slot {cdc.slot} again")
        wait_for(lambda: task_state(worker, cdc.name) == "RUNNING", START_TIMEOUT, "the task to be RUNNING")
        entry = wait_for(lambda: sidecar_sees_running(sc, cdc.name), 60, "the sidecar to see the task running")
        insert(postgres, range(31, 41))
        ops = cdc.topic.wait_for_ids(range(1, 41))
        time.sleep(1.0)  # a few more /livez samples after the recovery
    assert sampler.seen and sampler.not_ok() == [], sampler.not_ok()
    assert all("c" in ops[i] for i in range(11, 41)), ops
    restarts = worker.requests_matching("POST", restart_rx)
    assert 1 <= len(restarts) <= 5, restarts
    assert all('" 202 ' in line for line in restarts), restarts
    assert entry["failed_past_ladder"] is False and entry["restart_attempts"] >= 1, entry
    # healed: only connectors failing on this worker have a connector_failed series (issue 12)
    assert metric_total(sc, "connect_health_connector_failed", connector=cdc.name, policy="critical") is None
    assert sc.get("/livez")[0] == 200
