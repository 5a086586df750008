"""A stand-in for the two corners of the Kubernetes API the sidecar's drift correction uses: the Lease endpoints
(coordination.k8s.io/v1: GET, POST, PUT of one Lease, with resourceVersion checked as the API server checks it: a
PUT naming another version, or a POST of an existing name, answers 409) and POST of core/v1 Events (recorded).

It is the only stand-in of the reconcile tests, and only because a Lease needs an API server and the unit and
integration suites run without a cluster; the e2e tests run the real one. Plain HTTP on 127.0.0.1, or HTTPS with
``tls=(certificate, key)`` (as the API server answers a pod: TLS checked against the service account's CA).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from connect_health.kubeapi import ApiServer
from connect_health.lease import LeaseApi

LEASE = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/?]+))?$")
EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")


class StandInKubeApi:
    def __init__(self, token_file: Path, namespace: str = "team-a", tls: tuple[Path, Path] | None = None) -> None:
        self.token_file = token_file
        self.namespace = namespace
        self.leases: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, holderIdentity written)
        self.refuse: int | None = None  # answer every call with this status
        self._version = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = outer.handle(self.command, self.path, self.headers.get("Authorization"), body)
                self._answer(status, answer)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def lease_api(self, name: str) -> LeaseApi:
        """A client of the Lease ``name`` on this stand-in."""
        return LeaseApi(ApiServer(self.url, str(self.token_file), None), self.namespace, name, timeout=2.0)

    def writers(self) -> list[str | None]:
        """The holderIdentity of every Lease write, in order."""
        return [holder for method, path, holder in self.log if method in ("POST", "PUT") and "/leases" in path]

    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        with self._lock:
            holder = body.get("spec", {}).get("holderIdentity") if isinstance(body, dict) else None
            self.log.append((method, path, holder))
            if self.refuse is not None:
                return self.refuse, {"kind": "Status", "code": self.refuse, "message": "leases is forbidden"}
            if auth != f"Bearer {self.token_file.read_text().strip()}":
                return 401, {"kind": "Status", "code": 401}
            if (m := EVENTS.match(path)) and method == "POST":
                self.events.append(body)
                return 201, body
            m = LEASE.match(path)
            if m is None or m.group(1) != self.namespace:
                return 404, {"kind": "Status", "code": 404}
            name = m.group(2)
            if method == "GET" and name:
                lease = self.leases.get(name)
                return (200, lease) if lease else (404, {"kind": "Status", "reason": "NotFound", "code": 404})
            if method == "POST" and not name:
                name = body["metadata"]["name"]
                if name in self.leases:
                    return 409, {"kind": "Status", "reason": "AlreadyExists", "code": 409}
                return 201, self._store(name, body)
            if method == "PUT" and name:
                have = self.leases.get(name)
                if have is None:
                    return 404, {"kind": "Status", "reason": "NotFound", "code": 404}
                if body["metadata"].get("resourceVersion") != have["metadata"]["resourceVersion"]:
                    return 409, {"kind": "Status", "reason": "Conflict", "code": 409}
                return 200, self._store(name, body)
            return 405, {"kind": "Status", "code": 405}

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        lease: dict[str, Any] = json.loads(json.dumps(body))
        lease["metadata"]["resourceVersion"] = str(self._version)
        self.leases[name] = lease
        return lease

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def stand_in_kube(folder: Path, tls: tuple[Path, Path] | None = None) -> Iterator[StandInKubeApi]:
    """A running stand-in whose token lives in ``folder``; stopped on exit."""
    token = folder / "kube-token"
    token.write_text("tok-1\n")
    server = StandInKubeApi(token, tls=tls)
    try:
        yield server
    finally:
        server.stop()
