"""`make demo-stall`: a sink whose output stops draining, on the running `make demo` (issue 21).

    python -m launcher.demo stall [--workdir DIR]

`make demo` loads the Prometheus JMX exporter agent into its worker (when `make kafka` or `python -m
launcher.jmx_exporter` fetched it) and points connect-health at it (`--worker-metrics-url`, `--stall-after
STALL_AFTER`). This command adds a third connector, STALL_SINK: a FileStream sink copying the demo's topic into a
FIFO that this command reads. It then stops reading and appends a burst of lines to the demo's input: once the
pipe is full the sink's `put()` blocks, Connect still says RUNNING, and connect-health calls the task stalled after
STALL_AFTER s and restarts it. The command then reads again: the task makes progress and the row turns ok. At the end
the connector is deleted. The `make demo` terminal prints each change as connect-health sees it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from .errors import NotFetched, StackError
from .jmx_exporter import require_jmx_exporter
from .net import free_port, http, wait_until
from .pins import ROOT, rel

STALL_SINK = "demo-stall-sink"
STALL_AFTER = 15  # seconds: short, so the demo plays out within a minute (the sidecar's default is 300)
HUNG_AFTER_RESTART = 12  # seconds the downstream stays hung after the first restart: past the demo's alert `for:`
BURST = 2000  # lines appended at once: ~400 KB, several times a pipe's 64 KiB
RULES = ROOT / "charts" / "kafka-connect" / "files" / "jmx-exporter.yaml"


class FifoReader:
    """Reads a FIFO in a thread while ``reading`` is set and keeps every byte; opened at once (non-blocking), so
    the writer may open it later."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.reading = threading.Event()
        self.reading.set()
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fifo-reader")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.reading.is_set():
                self._stop.wait(0.1)
                continue
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if chunk:
                self.data += chunk
            else:
                self._stop.wait(0.1)  # no writer yet (or between two): EOF until one opens it

    def lines(self) -> list[str]:
        return bytes(self.data).decode(errors="replace").splitlines()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.fd)


def agent(out: Any) -> tuple[str, str] | None:
    """(the worker's -javaagent option, the URL of its metrics) for `make demo`, or None (said why) without the jar."""
    try:
        jar = require_jmx_exporter()
    except NotFetched as e:
        out(f"no stall detection in this demo (`make demo-stall` needs it): {e}")
        return None
    port = free_port()
    return f"-javaagent:{jar}=127.0.0.1:{port}:{RULES}", f"http://127.0.0.1:{port}/metrics"


def sidecar_flags(metrics_url: str) -> list[str]:
    return ["--worker-metrics-url", metrics_url, "--stall-after", str(STALL_AFTER)]


def _status(url: str) -> dict[str, Any]:
    try:
        status, body = http("GET", url + "/status?format=json", timeout=3)
    except OSError:
        return {}
    return body if status == 200 and isinstance(body, dict) else {}


def _task(doc: dict[str, Any]) -> dict[str, Any]:
    conn: dict[str, Any] = next((c for c in doc.get("connectors", []) if c.get("name") == STALL_SINK), {})
    return {**(conn.get("tasks") or [{}])[0], "restart_attempts": conn.get("restart_attempts", 0)}


def run(demo: dict[str, Any]) -> int:
    """The stall, told step by step; ``demo`` is the running demo's state (launcher.demo)."""
    if not demo.get("worker_metrics_url"):
        raise StackError("the running demo reads no worker metrics, so stall detection is off: fetch the JMX "
                         "exporter agent (`make kafka`, or python -m launcher.jmx_exporter), then restart `make demo`")
    t0 = time.monotonic()
    connect, sidecar = demo["connect_url"], demo["sidecar_url"]
    folder = Path(demo["worker_dir"]) / "stall"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fifo = folder / "out.fifo"
    reader = FifoReader(fifo)
    say = print
    try:
        config = {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "tasks.max": "1",
                  "topics": demo["topic"], "file": str(fifo),
                  "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                  # small batches, so that the lag its consumer last saw is the backlog (docs/health/stalled.md)
                  "consumer.override.max.poll.records": "10"}
        status, body = http("PUT", f"{connect}/connectors/{STALL_SINK}/config", config, timeout=30)
        if status not in (200, 201):
            raise StackError(f"PUT /connectors/{STALL_SINK}/config answered {status}: {body}")
        wait_until(lambda: len(reader.lines()) > 0, 60, f"{STALL_SINK} to write into {rel(fifo)}")
        say(f"demo-stall: {STALL_SINK} copies topic {demo['topic']} into the FIFO {rel(fifo)}, which this command "
            f"reads ({len(reader.lines())} lines so far)")
        reader.reading.clear()
        with open(demo["input"], "a") as fh:
            fh.writelines(f"burst line {i} {'.' * 180}\n" for i in range(BURST))
        say(f"demo-stall: stopped reading the FIFO and appended {BURST} lines to {rel(demo['input'])}: once the "
            f"pipe is full the sink's put() blocks; Connect still says RUNNING")
        stalled = wait_until(lambda: _task(_status(sidecar)).get("verdict") == "stalled" and _task(_status(sidecar)),
                             STALL_AFTER + 60, f"connect-health to call {STALL_SINK} task 0 stalled", interval=0.5)
        state = _task_state(connect)
        say(f"demo-stall: after {time.monotonic() - t0:.0f}s connect-health says: {stalled.get('reason')} "
            f"(Connect says {state}); see {demo['status_url']}?format=html")
        wait_until(lambda: _task(_status(sidecar)).get("restart_attempts", 0) > 0, 60,
                   "connect-health's restart of the task", interval=0.5)
        say(f"demo-stall: connect-health restarted the task (POST {connect}/connectors/{STALL_SINK}/tasks/0/restart); "
            "a restart cannot end a write that hangs, so the row stays stalled while nothing drains")
        say(f"demo-stall: the downstream stays hung {HUNG_AFTER_RESTART} s more: the ladder goes on"
            + (" and Prometheus's KafkaConnectTaskStalled fires" if demo.get("prometheus_url") else ""))
        time.sleep(HUNG_AFTER_RESTART)
        say(f"demo-stall: connect-health now says: {_task(_status(sidecar)).get('reason')}")
        reader.reading.set()
        say("demo-stall: reading the FIFO again: the downstream drains")
        wait_until(lambda: sum(1 for line in reader.lines() if line.startswith("burst line")) >= BURST, 120,
                   f"the {BURST} lines through the FIFO", interval=0.5)
        wait_until(lambda: _task(_status(sidecar)).get("verdict") == "ok", 120,
                   f"{STALL_SINK} task 0 to make progress again", interval=0.5)
        say(f"demo-stall: {STALL_SINK} task 0 reads again: verdict ok, {time.monotonic() - t0:.0f}s after the start; "
            f"{len(reader.lines())} lines came through the FIFO")
    finally:
        with contextlib.suppress(OSError):
            http("DELETE", f"{connect}/connectors/{STALL_SINK}", timeout=30)
        reader.reading.set()
        time.sleep(1)  # the task's last writes go to the reader, not to a closed pipe
        reader.close()
        shutil.rmtree(folder, ignore_errors=True)
    say(f"demo-stall: deleted {STALL_SINK}")
    return 0


def _task_state(connect: str) -> str:
    try:
        status, body = http("GET", f"{connect}/connectors/{STALL_SINK}/status", timeout=5)
    except OSError:
        return "unknown"
    tasks = body.get("tasks", []) if status == 200 and isinstance(body, dict) else []
    return str(tasks[0].get("state")) if tasks else "unknown"
