"""Smoke tests of the local stack launcher (ci/launcher, `import launcher`) itself, on every pinned Kafka version.

If these fail, every other integration test would fail for reasons that have nothing to do with the sidecar.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import launcher
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "launcher"]


def test_worker_answers(worker: launcher.Worker, kafka_version: str) -> None:
    status, root = worker.request("GET", "/")
    assert status == 200 and root["version"] == kafka_version
    assert worker.request("GET", "/connectors")[0] == 200
    health, _ = worker.request("GET", "/health", timeout=15)
    assert health == (200 if launcher.has_health_endpoint(kafka_version) else 404)
    assert worker.worker_id == f"127.0.0.1:{worker.rest_port}"


def test_filestream_and_debezium_plugins_listed(worker: launcher.Worker) -> None:
    plugins = worker.plugins()
    assert "org.apache.kafka.connect.file.FileStreamSourceConnector" in plugins
    assert "org.apache.kafka.connect.file.FileStreamSinkConnector" in plugins
    assert "io.debezium.connector.postgresql.PostgresConnector" in plugins


def test_filestream_source_runs_and_records_reach_a_sink(worker: launcher.Worker, workdir: Path,
                                                         connector_name: str) -> None:
    src, sink, topic = f"{connector_name}-src", f"{connector_name}-sink", f"{connector_name}-topic"
    (workdir / "in.txt").write_text("one\ntwo\nthree\n")
    worker.put_connector(src, {"connector.class": "FileStreamSource", "tasks.max": "1",
                               "file": str(workdir / "in.txt"), "topic": topic})
    worker.put_connector(sink, {"connector.class": "FileStreamSink", "tasks.max": "1",
                                "file": str(workdir / "out.txt"), "topics": topic})
    try:
        status = worker.wait_connector_state(src, "RUNNING")
        assert status["connector"]["worker_id"] == worker.worker_id
        assert status["tasks"][0]["worker_id"] == worker.worker_id
        worker.wait_connector_state(sink, "RUNNING")
        launcher.wait_until(lambda: (workdir / "out.txt").exists()
                              and (workdir / "out.txt").read_text().splitlines() == ["one", "two", "three"],
                              60, "the lines to go through Kafka into the sink's file")
    finally:
        worker.delete_connector(src)
        worker.delete_connector(sink)


def test_request_log_counts_config_puts(worker: launcher.Worker, workdir: Path, connector_name: str) -> None:
    path = rf"/connectors/{connector_name}/config"
    assert worker.requests_matching("PUT", path) == []
    config = {"connector.class": "FileStreamSink", "tasks.max": "1", "file": str(workdir / "out.txt"),
              "topics": f"{connector_name}-topic"}
    worker.put_connector(connector_name, config)
    lines = worker.wait_for_request("PUT", path, count=1)
    assert f'"PUT {path} HTTP/1.1" 201 ' in lines[0]
    worker.put_connector(connector_name, config)  # idempotent update: 200
    lines = worker.wait_for_request("PUT", path, count=2)
    assert f'"PUT {path} HTTP/1.1" 200 ' in lines[1]
    worker.delete_connector(connector_name)
    assert worker.wait_for_request("DELETE", rf"/connectors/{connector_name}")
    assert any('"GET /connectors HTTP/1.1" 200' in line for line in worker.request_log_lines())


def test_pause_and_resume_jvm(worker: launcher.Worker) -> None:
    worker.pause()
    try:
        with pytest.raises(OSError):
            worker.request("GET", "/connectors", timeout=1.5)
    finally:
        worker.resume()
    launcher.wait_until(worker.ready, 30, "the worker to answer again after SIGCONT")


def test_stop_leaves_nothing_listening(stack_factory: Callable[..., launcher.Stack], kafka_version: str) -> None:
    s = stack_factory(kafka_version)
    ports = s.ports()
    pids = [s.broker.pid, s.worker.pid]
    assert all(launcher.is_listening(p) for p in ports)
    s.worker.pause()  # a stopped JVM must be stopped all the same
    s.stop()
    assert [p for p in ports if launcher.is_listening(p)] == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} survived stop()"


def test_postgres_logical_and_sql(postgres: launcher.Postgres) -> None:
    assert postgres.sql("show wal_level") == "logical"
    assert postgres.sql("show listen_addresses") == "127.0.0.1"
    postgres.sql("create table t(id int primary key, name text)")
    postgres.sql("insert into t values (1, 'a'), (2, 'b')")
    assert postgres.sql("select id, name from t order by id") == "1|a\n2|b"
    port = postgres.port
    postgres.restart()
    assert postgres.port == port
    assert postgres.sql("select count(*) from t") == "2"
    postgres.stop()
    assert not launcher.is_listening(port)
    with pytest.raises(launcher.StackError):
        postgres.sql("select 1", timeout=10)


def test_missing_jars_say_what_to_run() -> None:
    with pytest.raises(launcher.NotFetched, match="make kafka") as e:
        launcher.require_fetched("0.0.1")
    assert e.value.command == "python -m launcher fetch --kafka 0.0.1"
    assert e.value.where == launcher.TOOLS / "kafka" / "0.0.1" / "libs"


def test_cli_fetch_is_cached_and_fast() -> None:
    t0 = time.monotonic()
    r = subprocess.run([*CLI, "fetch", "--kafka", launcher.KAFKA_VERSION, "--kafka",
                        launcher.KAFKA_LEGACY_VERSION, "--debezium"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("cached in") == 3
    assert time.monotonic() - t0 < 10


def test_cli_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([*CLI, "up", "--workdir", str(tmp_path), "--rest-port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and f"port {port}" in r.stderr and "in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_up_and_down(tmp_path: Path) -> None:
    out_file = tmp_path / "up.out"
    with open(out_file, "w") as out:
        up = subprocess.Popen([*CLI, "up", "--workdir", str(tmp_path / "stack")], stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        def up_alive() -> None:
            if up.poll() is not None:
                pytest.fail(f"`up` exited {up.returncode}: {out_file.read_text()}")
        def ready_state() -> dict[str, Any] | None:
            state = launcher.load_state(tmp_path / "stack")
            return state if state and state.get("ready") else None
        state = launcher.wait_until(ready_state, 90, "`up` to write a ready state file", check=up_alive)
        assert launcher.http("GET", state["connect_url"] + "/connectors")[0] == 200
        ports = [state["broker"]["port"], state["broker"]["controller_port"], state["workers"][0]["rest_port"]]
        r = subprocess.run([*CLI, "down", "--workdir", str(tmp_path / "stack")], capture_output=True, text=True,
                           timeout=90)
        assert r.returncode == 0, r.stderr
        assert up.wait(timeout=30) == 0
        assert [p for p in ports if launcher.is_listening(p)] == []
        assert launcher.load_state(tmp_path / "stack") is None
        text = out_file.read_text()
        assert "broker ready in" in text and "worker ready in" in text and "stopped" in text, text
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
