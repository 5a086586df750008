"""Stalled tasks on the real stack (issue 21): a task that stays RUNNING while doing nothing is found, restarted and
cleared, from the worker's own metrics served by the REAL Prometheus JMX exporter agent with the chart's rules.

A Connect worker of the session's broker runs with the agent (`-javaagent:` + charts/kafka-connect/files/
jmx-exporter.yaml, what the chart mounts when `metrics.jmxExporter.enabled`); `connect-health serve` reads it with
`--worker-metrics-url` and a small `--stall-after`. A FileStream sink writes into a FIFO whose reader (this test)
stops reading after a few records: once the pipe is full the task's `put()` blocks in write(2), its status stays
RUNNING, its consumer's lag stays above zero and its `sink-record-read-total` stops. The sink reads 10 records per
poll (`consumer.override.max.poll.records`) so that the lag its consumer last saw is the backlog (the limit of
consumer-side lag is in docs/health/stalled.md). Beside it, an idle sink and an idle source run the whole time and
must never be called stalled.

A stalled SOURCE with a progress signal: Debezium on PostgreSQL (the conftest's `postgres`, the session's Debezium
plugin on the agent worker's plugin.path) with `heartbeat.action.query` every 500 ms into a table of its publication,
so an event comes back through the replication stream at least that often. The walsender serving its slot is frozen
(SIGSTOP on `pg_replication_slots.active_pid`): the task stays RUNNING and keeps emitting heartbeat records (Connect's
own source metrics keep moving), its `TotalNumberOfEventsSeen` stands -> stalled; SIGCONT -> cleared, and every row
inserted during the freeze reaches the topic. A second Debezium source with heartbeats and no data change at all runs
beside it and is never called stalled. The ladder (one attempt) restarts the stalled task, which comes back to the
same frozen stream; past the ladder the row is failed (best-effort here, so liveness is not at stake) until the
stream moves again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest
from launcher.demo_stall import FifoReader
from launcher.jmx_exporter import require_jmx_exporter
from probing import wait_for
from test_cdc import Topic

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
RULES = Path(__file__).resolve().parents[2] / "charts" / "kafka-connect" / "files" / "jmx-exporter.yaml"
STALL_AFTER = 5.0
POLL = 0.5
FIRST, BACKLOG = 5, 300  # records read before the reader stops; records sent while it does not read
PAD = "x" * 1000  # ~1 KB per record: the backlog is several times a pipe's 64 KiB


class Verdicts:
    """Samples the sidecar's /status in the background: every (connector, task) verdict seen, and when."""

    def __init__(self, sc: launcher.Sidecar) -> None:
        self.sc = sc
        self.seen: list[tuple[float, str, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="status-sampler")
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, body = self.sc.get("/status", timeout=10)
            except Exception:  # noqa: BLE001 - a missed sample; the next one counts
                status, body = 0, None
            if status == 200 and isinstance(body, dict):
                now = time.monotonic()
                for c in body["connectors"]:
                    for t in c["tasks"]:
                        self.seen.append((now, c["name"], t["id"], t["verdict"]))
            self._stop.wait(0.25)

    def of(self, name: str) -> set[str]:
        return {v for _, n, _, v in self.seen if n == name}

    def first(self, name: str, verdict: str) -> float | None:
        return next((at for at, n, _, v in self.seen if n == name and v == verdict), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture(scope="module")
def agent_worker(stack: launcher.Stack,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[launcher.Worker, int]]:
    """A worker of the session's broker with the JMX exporter agent on its java command line (the chart's
    KAFKA_OPTS), in a Connect cluster of its own."""
    try:
        jar = require_jmx_exporter()
    except launcher.StackError as e:
        pytest.fail(str(e), pytrace=False)
    port = launcher.free_port()
    w = launcher.Worker(tmp_path_factory.mktemp("stall-worker"), stack.version, stack.bootstrap, group_id="stall",
                        name="stall-worker", jvm_options=[f"-javaagent:{jar}=127.0.0.1:{port}:{RULES}"],
                        plugin_path=stack.plugin_path)  # Debezium, for the source test
    try:
        w.start()
    except launcher.StackError as e:
        pytest.fail(f"the worker with the JMX exporter agent did not start: {e}", pytrace=False)
    yield w, port
    w.stop()


def records(reader: FifoReader) -> list[str]:
    return [line for line in reader.lines() if line.startswith("rec-")]


def status_of(sc: launcher.Sidecar) -> dict[str, Any]:
    status, body = sc.get("/status")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


# The newest Kafka only: what is read (sink-task-metrics and the consumer's fetch metrics) is the same on 3.x.
@pytest.mark.parametrize("kafka_version", [launcher.KAFKA_VERSION], indirect=True, ids=lambda v: f"kafka-{v}")
def test_a_sink_blocked_on_its_downstream_is_stalled_restarted_and_cleared(
        agent_worker: tuple[launcher.Worker, int], workdir: Path) -> None:
    worker, agent_port = agent_worker
    fifo, feed, idle_in, idle_out = workdir / "out.fifo", workdir / "in.txt", workdir / "idle.txt", workdir / "o.txt"
    feed.write_text("")
    idle_in.write_text("")
    reader = FifoReader(fifo)
    sc = launcher.Sidecar(workdir, worker.url, [
        "--poll-interval", str(POLL), "--request-timeout", "5", "--stall-after", f"{STALL_AFTER:g}",
        "--worker-metrics-url", f"http://127.0.0.1:{agent_port}/metrics",
        "--restart-attempts", "1", "--restart-backoff", "2", "--best-effort", "^stall-"], name="stall-sidecar")
    made: list[str] = []
    verdicts: Verdicts | None = None
    try:
        sc.start(timeout=60)
        verdicts = Verdicts(sc)
        for name, config in (
                ("stall-feed", {"connector.class": SOURCE, "file": str(feed), "topic": "stall-lines"}),
                ("stall-fifo", {"connector.class": SINK, "topics": "stall-lines", "file": str(fifo),
                                "consumer.override.max.poll.records": "10"}),
                ("stall-idle-source", {"connector.class": SOURCE, "file": str(idle_in), "topic": "stall-idle"}),
                ("stall-idle-sink", {"connector.class": SINK, "topics": "stall-idle", "file": str(idle_out)})):
            made.append(name)
            worker.put_connector(name, {"tasks.max": "1", **config}, timeout=60)
        for name in made:
            worker.wait_connector_state(name, timeout=90)
        status = status_of(sc)
        assert status["stall_detection"]["enabled"] and status["stall_detection"]["error"] is None, status

        def send(first: int, count: int) -> None:
            with feed.open("a") as fh:
                fh.writelines(f"rec-{i:05d}-{PAD}\n" for i in range(first, first + count))

        send(0, FIRST)
        wait_for(lambda: len(records(reader)) >= FIRST, 90, f"the first {FIRST} records through the FIFO")
        reader.reading.clear()
        offset = worker.request_log.offset()
        send(FIRST, BACKLOG)
        stopped = time.monotonic()

        def stalled() -> dict[str, Any] | None:
            body = status_of(sc)
            found = [s for s in body["stall_detection"]["stalled"] if s["connector"] == "stall-fifo"]
            return found[0] if found else None
        found = wait_for(stalled, 120, "stall-fifo task 0 reported stalled")
        detected_after = time.monotonic() - stopped
        assert found["task"] == 0 and found["detail"].startswith("lag ") and int(found["detail"][4:]) > 0, found
        # Judged at the first poll past --stall-after (the sidecar's own clock, not this test's timing).
        assert STALL_AFTER <= found["seconds"] < STALL_AFTER + 2 * POLL + 1, found
        # The lag read is the chart's per-partition records-lag series (one per partition, not its -avg or -max).
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{agent_port}/metrics", timeout=10) as answer:
            exported = [line for line in answer.read().decode().splitlines()
                        if line.startswith("kafka_connect_sink_consumer_records_lag{") and "stall-fifo" in line]
        assert len(exported) == 1 and 'partition="0"' in exported[0] and "records-lag-" not in exported[0], exported
        st = worker.connector_status("stall-fifo")
        assert st is not None and st["tasks"][0]["state"] == "RUNNING", st  # Connect still says RUNNING
        restarts = wait_for(lambda: [r for r in worker.request_log.since(offset) if r.method == "POST"
                                     and r.path == "/connectors/stall-fifo/tasks/0/restart"] or None,
                            60, "the task restart in the worker's request log")
        assert restarts, restarts

        reader.reading.set()  # the downstream drains again
        want = {f"rec-{i:05d}" for i in range(FIRST + BACKLOG)}
        wait_for(lambda: want <= {r[:9] for r in records(reader)} or None, 180, "every record through the FIFO")
        wait_for(lambda: not status_of(sc)["stall_detection"]["stalled"] or None, 90, "no task stalled any more")
        row = next(t for c in status_of(sc)["connectors"] if c["name"] == "stall-fifo" for t in c["tasks"])
        assert row["verdict"] == "ok", row
        print(f"\nstall-fifo: stalled seen {detected_after:.1f}s after the reader stopped "
              f"(--stall-after {STALL_AFTER:g}, poll {POLL:g}); {len(restarts)} task restart(s); "
              f"verdicts seen {sorted(verdicts.of('stall-fifo'))}")
        assert "stalled" in verdicts.of("stall-fifo")
        for idle in ("stall-idle-source", "stall-idle-sink"):
            seen = verdicts.of(idle)
            assert seen and seen <= {"ok"}, f"{idle}: {seen}"
    finally:
        if verdicts is not None:
            verdicts.close()
        reader.reading.set()
        for name in reversed(made):
            worker.delete_connector(name, timeout=60)
        sc.stop()
        reader.close()


def events_seen(port: int, server: str) -> float:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        lines = [line for line in answer.read().decode().splitlines() if line.startswith("debezium_")]
    for line in lines:
        if line.startswith("debezium_postgres_streaming_events_seen_total{") and f'server="{server}"' in line:
            return float(line.split()[-1])
    raise AssertionError(f"no debezium_postgres_streaming_events_seen_total for {server}: {lines}")


def debezium_source(pg: launcher.Postgres, name: str, table: str) -> dict[str, Any]:
    """A Debezium source of `table` whose heartbeat query writes into `hb_<table>`, both in its own publication."""
    pg.sql(f"create table {table} (id int primary key, name text not null)")
    pg.sql(f"create table hb_{table} (id int primary key, at timestamptz not null)")
    return pg.debezium_config(name, f"public.{table},public.hb_{table}", **{
        "publication.name": f"pub_{name}".replace("-", "_"),
        "heartbeat.interval.ms": "500",
        "heartbeat.action.query": f"insert into hb_{table} (id, at) values (1, now()) "
                                  "on conflict (id) do update set at = excluded.at",
        "errors.max.retries": "0",
    })


@pytest.mark.parametrize("kafka_version", [launcher.KAFKA_VERSION], indirect=True, ids=lambda v: f"kafka-{v}")
def test_a_debezium_source_whose_walsender_is_frozen_is_stalled_then_cleared_without_losing_rows(
        agent_worker: tuple[launcher.Worker, int], postgres: launcher.Postgres, workdir: Path) -> None:
    worker, agent_port = agent_worker
    live, quiet = "stall-cdc", "stall-cdc-quiet"
    live_config = debezium_source(postgres, live, "items")
    quiet_config = debezium_source(postgres, quiet, "quiet")
    topic = Topic(workdir / "cdc.jsonl", f"{live}.public.items")
    sc = launcher.Sidecar(workdir, worker.url, [
        "--poll-interval", str(POLL), "--request-timeout", "5", "--stall-after", f"{STALL_AFTER:g}",
        "--worker-metrics-url", f"http://127.0.0.1:{agent_port}/metrics",
        "--restart-attempts", "1", "--restart-backoff", "2", "--best-effort", "^stall-"], name="stall-cdc-sidecar")
    made: list[str] = []
    verdicts: Verdicts | None = None
    frozen: int | None = None
    try:
        sc.start(timeout=60)
        for name, config in ((live, live_config), (quiet, quiet_config), (f"{live}-copy", {
                "connector.class": SINK, "tasks.max": "1", "topics": topic.topic, "file": str(topic.path),
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.storage.StringConverter"})):
            made.append(name)
            worker.put_connector(name, config, timeout=60)
        for name in made:
            worker.wait_connector_state(name, timeout=180)
        slot = live_config["slot.name"]
        pid = wait_for(lambda: postgres.sql(f"select active_pid from pg_replication_slots where slot_name = '{slot}'")
                       or None, 120, f"a walsender streaming slot {slot}")
        postgres.sql("insert into items (id, name) values (1, 'row 1')")
        topic.wait_for_ids([1])
        # Both sources are judged: their stream's topic.prefix is mapped to the connector, and they progress.
        wait_for(lambda: {live, quiet} <= {c["name"] for c in status_of(sc)["connectors"]} or None, 60,
                 "the sidecar to see both sources")
        verdicts = Verdicts(sc)

        offset = worker.request_log.offset()
        os.kill(int(pid), signal.SIGSTOP)
        frozen = int(pid)
        postgres.sql("insert into items (id, name) values (2, 'row 2'), (3, 'row 3')")
        stopped = time.monotonic()

        def stalled() -> dict[str, Any] | None:
            body = status_of(sc)
            found = [s for s in body["stall_detection"]["stalled"] if s["connector"] in (live, quiet)]
            return found[0] if found else None
        found = wait_for(stalled, 120, f"{live} task 0 reported stalled")
        detected_after = time.monotonic() - stopped
        assert found["connector"] == live and found["task"] == 0, found
        assert "heartbeat.action.query" in found["detail"], found
        assert STALL_AFTER <= found["seconds"] < STALL_AFTER + 2 * POLL + 1, found
        st = worker.connector_status(live)
        assert st is not None and st["tasks"][0]["state"] == "RUNNING", st  # Connect still says RUNNING
        # The ladder's rung for a stalled task: that task restarted (it comes back and meets the same frozen stream).
        restarts = wait_for(lambda: [r for r in worker.request_log.since(offset) if r.method == "POST"
                                     and r.path == f"/connectors/{live}/tasks/0/restart"] or None,
                            60, "the task restart in the worker's request log")
        postgres.sql("insert into items (id, name) values (4, 'row 4')")
        # The quiet source is judged too, and its signal moves with no data change: its heartbeat's own event.
        first = events_seen(agent_port, quiet)
        wait_for(lambda: events_seen(agent_port, quiet) > first or None, 30, f"{quiet}'s heartbeat events")

        os.kill(frozen, signal.SIGCONT)
        frozen = None
        wait_for(lambda: not status_of(sc)["stall_detection"]["stalled"] or None, 90, "no task stalled any more")
        postgres.sql("insert into items (id, name) values (5, 'row 5')")
        ops = topic.wait_for_ids(range(1, 6))
        assert all("c" in ops[i] for i in range(1, 6)), ops
        assert worker.connector_status(live)["tasks"][0]["state"] == "RUNNING"  # type: ignore[index]
        print(f"\n{live}: stalled seen {detected_after:.1f}s after its walsender was frozen "
              f"(--stall-after {STALL_AFTER:g}, poll {POLL:g}); {len(restarts)} task restart(s); "
              f"verdicts seen {sorted(verdicts.of(live))}")
        assert "stalled" in verdicts.of(live), verdicts.of(live)
        seen = verdicts.of(quiet)
        assert seen and seen <= {"ok"}, f"{quiet}: {seen}"
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        if verdicts is not None:
            verdicts.close()
        for name in reversed(made):
            worker.delete_connector(name, timeout=60)
        sc.stop()
