"""A stand-in for a Kafka Connect cluster's REST API at sizes a real worker cannot hold on this machine.

Why a stand-in: one Connect worker here (2 cores, shared) cannot run 3,000 connectors x 4 tasks, and a sidecar's
cost depends only on the shape and size of Connect's answers, which this serves exactly as Connect shapes them
(connect-rest.md): ``GET /connectors?expand=status[&expand=info]`` for N connectors x T tasks spread round-robin
over W workers (``10.0.0.<i>:8083``), each config of 33 keys; ``GET /connectors``, ``GET /connectors/{name}/status``
(what kafka-connect-healthcheck calls, 1 + N per probe), ``GET /health`` and ``GET /``. Answers are rendered once
at start; a request counter per path kind lets the benchmark check calls per poll.

    python bench/scale_connect.py --connectors 3000 --port 18083     # serve until interrupted
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CONFIG_KEYS = 33


def worker(i: int) -> str:
    return f"10.0.0.{i + 1}:8083"


def connector_name(i: int) -> str:
    return f"scale-connector-{i:05d}"


def config(i: int) -> dict[str, str]:
    """33 keys, the size of a typical JDBC/Debezium connector's config."""
    name = connector_name(i)
    cfg = {"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector", "tasks.max": "4", "name": name,
           "topics": f"orders.{i}", "connection.url": f"jdbc:postgresql://db-{i % 7}.example:5432/warehouse",
           "connection.user": "connect", "connection.password": "${file:/secrets/db.properties:password}"}
    for k in range(len(cfg), CONFIG_KEYS):
        cfg[f"setting.number.{k:02d}"] = f"value-{i}-{k}-" + "x" * 12
    return cfg


def status(i: int, tasks: int, workers: int) -> dict[str, Any]:
    return {
        "name": connector_name(i),
        "connector": {"state": "RUNNING", "worker_id": worker(i % workers)},
        "tasks": [{"id": t, "state": "RUNNING", "worker_id": worker((i + t) % workers)} for t in range(tasks)],
        "type": "sink",
    }


class Cluster:
    """The N connectors' answers, rendered once."""

    def __init__(self, connectors: int, tasks: int = 4, workers: int = 10) -> None:
        self.connectors, self.tasks, self.workers = connectors, tasks, workers
        names = [connector_name(i) for i in range(connectors)]
        self.statuses = {names[i]: status(i, tasks, workers) for i in range(connectors)}
        self.by_status = json.dumps({n: {"status": s} for n, s in self.statuses.items()}).encode()
        self.by_status_info = json.dumps({
            n: {"status": s, "info": {"name": n, "config": config(i), "tasks": [
                {"connector": n, "task": t} for t in range(tasks)], "type": "sink"}}
            for i, (n, s) in enumerate(self.statuses.items())}).encode()
        self.names = json.dumps(names).encode()
        # churn: the status answer alternates between two that differ in one task's state (on a worker other than
        # worker 0), so that no two polls in a row see the same answer (the sidecar then decodes every one)
        self.churn = False
        self._flips = 0
        self.by_status_flipped = self.by_status
        if connectors > 1 and tasks:
            flipped = {n: {"status": s} for n, s in self.statuses.items()}
            task = dict(flipped[names[1]]["status"]["tasks"][0], state="PAUSED")
            flipped[names[1]] = {"status": dict(flipped[names[1]]["status"], tasks=[
                task, *flipped[names[1]]["status"]["tasks"][1:]])}
            self.by_status_flipped = json.dumps(flipped).encode()
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def count(self, kind: str) -> None:
        with self.lock:
            self.calls[kind] += 1

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        if path == "/health":
            return 200, b'{"status":"healthy","message":"Worker has completed startup and is ready"}', "health"
        if path == "/":
            return 200, b'{"version":"stand-in","commit":"0","kafka_cluster_id":"stand-in"}', "root"
        if path == "/connectors":
            expand = query.get("expand", [])
            if "status" in expand:
                if "info" in expand:
                    return 200, self.by_status_info, "expanded_info"
                with self.lock:
                    self._flips += self.churn
                    flipped = self.churn and self._flips % 2 == 1
                return 200, self.by_status_flipped if flipped else self.by_status, "expanded"
            return 200, self.names, "names"
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "connectors" and parts[3] == "status":
            found = self.statuses.get(unquote(parts[2]))
            if found is not None:
                return 200, json.dumps(found).encode(), "connector_status"
        return 404, b'{"error_code":404,"message":"not found"}', "other"


def serve(cluster: Cluster, port: int = 0) -> ThreadingHTTPServer:
    """Serve ``cluster`` on 127.0.0.1:``port`` (0: any free port) in a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            code, body, kind = cluster.answer(url.path, parse_qs(url.query))
            cluster.count(kind)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="scale-connect", daemon=True).start()
    return server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", type=int, default=3000)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--port", type=int, default=18083)
    args = ap.parse_args()
    if args.connectors < 0 or args.tasks < 0 or args.workers < 1 or not 0 <= args.port < 65536:
        ap.error("connectors and tasks must be >= 0, workers >= 1, port 0-65535")
    server = serve(Cluster(args.connectors, args.tasks, args.workers), args.port)
    print(f"stand-in Connect with {args.connectors} connectors on http://127.0.0.1:{server.server_port}",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
