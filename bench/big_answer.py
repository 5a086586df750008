#!/usr/bin/env python3
"""Peak memory of reading a mass failure's status answer (issue 18, item 3): 3,000 FAILED tasks with 30 KB traces,
about 100 MiB, served by a local HTTP server on 127.0.0.1 (a separate process, so it is not counted).

Two figures per answer size:

- ``client``: a fresh process that imports the sidecar's REST client, reads ``GET /connectors?expand=status`` with
  ``raw=True`` (what the poller does) and parses it with ``snapshot.parse_answer`` scoped to the worker every task
  runs on (all kept in full: the worst case). Peak RSS from ``getrusage(RUSAGE_SELF).ru_maxrss``, and the RSS of the
  same process after the imports only (what the parse adds is the difference).
- ``serve``: a whole ``connect-health serve`` (waitress, poller, ladder) polling the server every 2 s, with
  ``GET /status`` asked between polls; peak RSS is the process's VmHWM after --polls polls.

``--src DIR`` measures another copy of the sidecar's source (e.g. the code before the change, exported with
``git archive <commit> sidecar/src | tar -x -C /tmp/before``). Nothing here asserts anything: it prints the figures
(JSON with --json). The chart's memory limit is derived from the ``serve`` figure.

    .tools/venv/bin/python bench/big_answer.py                       # 100 MiB and 30 MiB
    .tools/venv/bin/python bench/big_answer.py --mib 100 --src /tmp/before/sidecar/src
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKER = "127.0.0.1:8083"
TASKS = 3000
PER_CONNECTOR = 10
FRAME = "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliverMessages(WorkerSinkTask.java:605)\n"


def make_answer(path: Path, mib: float, tasks: int = TASKS) -> int:
    """Write a GET /connectors?expand=status answer of about ``mib`` MiB: ``tasks`` FAILED tasks, all on WORKER."""
    trace_chars = int(mib * 1024 * 1024 / tasks) - 120
    frames = FRAME * (trace_chars // len(FRAME) + 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{")
        for c in range(tasks // PER_CONNECTOR):
            units = [{"id": i, "state": "FAILED", "worker_id": WORKER,
                      "trace": (f"org.apache.kafka.connect.errors.ConnectException: jdbc-sink-{c} task {i}: "
                                f"database down\n{frames}")[:trace_chars]} for i in range(PER_CONNECTOR)]
            entry = {"status": {"name": f"jdbc-sink-{c}", "type": "sink",
                                "connector": {"state": "RUNNING", "worker_id": WORKER}, "tasks": units}}
            fh.write(("," if c else "") + json.dumps(f"jdbc-sink-{c}") + ":" + json.dumps(entry))
        fh.write("}")
    return path.stat().st_size


# --- the server (its own process) ----------------------------------------------------------------------------

def serve_answer(answer: str) -> None:
    size = os.path.getsize(answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/connectors"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(answer, "rb") as fh:
                    while chunk := fh.read(65536):
                        try:
                            self.wfile.write(chunk)
                        except OSError:  # a client that gave up (the code before the change, past its limit)
                            return
            elif self.path == "/health":
                self._send(200, b'{"status":"healthy","message":"Worker has completed startup"}')
            else:
                self._send(200, b'{"version":"4.3.1","commit":"bench","kafka_cluster_id":"bench"}')

        def do_POST(self) -> None:  # noqa: N802 - the ladder's restarts
            self._send(204, b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the measured client (its own process) ---------------------------------------------------------------------

CLIENT = """
import json, resource, sys, time
from connect_health.client import ConnectClient, ConnectError
from connect_health.config import ConnectSettings
from connect_health.snapshot import parse_answer
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
result = {"imports_rss_mib": base / 1024}
try:
    client = ConnectClient(ConnectSettings(url=sys.argv[1], request_timeout=120))
    reply = client.connectors_expanded(info=False, raw=True)
    result["read_s"] = round(time.monotonic() - start, 2)
    result["kept_mib"] = round(len(reply.body) / 2**20, 2)
    snap = parse_answer(reply.body, worker_id=sys.argv[2])
    result["failed_tasks"] = snap.cluster_tasks.get("FAILED", 0)
except ConnectError as exc:
    result["error"] = str(exc)
result["seconds"] = round(time.monotonic() - start, 2)
result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def measure_client(url: str, src: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", CLIENT, url, WORKER], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    return dict(json.loads(out.stdout))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback only
        return str(resp.read().decode())


def measure_serve(url: str, src: str, polls: int, ladder: bool) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": src}
    cmd = [sys.executable, "-m", "connect_health.cli", "serve", "--connect-url", url, "--host", "127.0.0.1",
           "--port", str(port), "--poll-interval", "2", "--request-timeout", "60", "--worker-id", WORKER,
           "--unresponsive-after", "600", *(() if ladder else ("--restart-attempts", "0"))]
    log = tempfile.TemporaryFile()  # not a pipe: thousands of log lines would fill it and block the sidecar
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 300
        seen = 0
        while seen < polls and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                metrics = get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue
            m = re.search(r"^connect_health_poll_duration_seconds_count (\S+)", metrics, re.M)
            seen = int(float(m.group(1))) if m else 0
            errors = re.findall(r'^connect_health_worker_reachable (\S+)', metrics, re.M)
            result["reachable"] = float(errors[-1]) == 1 if errors else None
            try:
                started = time.monotonic()
                get(f"http://127.0.0.1:{port}/status")  # the page's own memory counts too
                result["status_page_s"] = round(time.monotonic() - started, 2)
            except OSError as exc:
                result["status_page_error"] = str(exc)[:200]
        result["polls"] = seen
        if proc.poll() is not None:
            log.seek(0)
            result["exited"] = f"{proc.returncode}: {log.read()[-500:].decode(errors='replace')}"
        status = Path(f"/proc/{proc.pid}/status").read_text()
        for key in ("VmHWM", "VmRSS"):
            m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
            result[f"{key}_mib"] = round(int(m.group(1)) / 1024, 1) if m else None
        try:
            livez = urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=10)  # noqa: S310
            result["livez"] = livez.status
        except urllib.error.HTTPError as exc:
            result["livez"] = exc.code
            result["livez_reason"] = exc.read().decode()[:300]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, nargs="+", default=[100.0, 30.0], help="answer sizes to measure")
    parser.add_argument("--src", default=str(ROOT / "sidecar" / "src"), help="the sidecar's source to measure")
    parser.add_argument("--tasks", type=int, default=TASKS, help="FAILED tasks in the answer (10 per connector)")
    parser.add_argument("--polls", type=int, default=3, help="polls of `serve` before its peak RSS is read")
    parser.add_argument("--no-ladder", action="store_true",
                        help="serve with --restart-attempts 0 (the ladder's restart POSTs, one per failed task, are "
                             "sent inside the poll until issue 18's restart lane: thousands take minutes)")
    parser.add_argument("--no-serve", action="store_true", help="measure the client only")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--serve-answer", help=argparse.SUPPRESS)  # internal: run the server process
    args = parser.parse_args()
    if args.serve_answer:
        serve_answer(args.serve_answer)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for mib in args.mib:
            answer = Path(tmp) / f"answer-{mib:g}.json"
            size = make_answer(answer, mib, args.tasks)
            server = subprocess.Popen([sys.executable, __file__, "--serve-answer", str(answer)],
                                      stdout=subprocess.PIPE, text=True)
            try:
                assert server.stdout is not None
                url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
                row: dict[str, Any] = {"answer_mib": round(size / 2**20, 1), "tasks": args.tasks, "src": args.src,
                                       "client": measure_client(url, args.src)}
                if not args.no_serve:
                    row["serve"] = measure_serve(url, args.src, args.polls, not args.no_ladder)
            finally:
                server.terminate()
                server.wait()
            print(json.dumps(row) if args.json else _table(row), flush=True)
    return 0


def _table(row: dict[str, Any]) -> str:
    c = row["client"]
    lines = [f"answer {row['answer_mib']} MiB ({row['tasks']} FAILED tasks), source {row['src']}",
             f"  client: peak RSS {c['peak_rss_mib']:.1f} MiB (imports alone {c['imports_rss_mib']:.1f} MiB), "
             f"{c['seconds']} s, " + (f"kept {c['kept_mib']} MiB, {c['failed_tasks']} FAILED tasks parsed"
                                       if "error" not in c else f"ERROR {c['error']}")]
    if "serve" in row:
        s = row["serve"]
        lines.append(f"  serve:  peak RSS (VmHWM) {s.get('VmHWM_mib')} MiB after {s.get('polls')} polls, "
                     f"reachable={s.get('reachable')}, GET /status "
                     f"{s.get('status_page_s', s.get('status_page_error'))} s, "
                     f"/livez {s.get('livez')} {s.get('livez_reason', '')[:120]}".rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
