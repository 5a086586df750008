"""A Kafka Connect distributed worker (ConnectDistributed) on 127.0.0.1, its REST helpers and its request log."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import NotFetched, StackError, TimedOut
from .fetch import kafka_libs
from .jvm import java_command, write_properties
from .net import HOST, claim_port, http, wait_until
from .pins import KAFKA_VERSION, has_health_endpoint
from .service import Service

WORKER_HEAP = "512m"
# Kafka's REST extension for HTTP basic auth (jar connect-basic-auth-extension, fetched with the others): it checks
# each request against the users file named in the JAAS entry "KafkaConnect", which its login module reads once
# per JVM (a changed file takes a restart).
BASIC_AUTH_EXTENSION = "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
BASIC_AUTH_LOGIN_MODULE = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
_REST_USER_NAME = re.compile(r"[A-Za-z0-9._@-]+")

# One line of Connect's request log (extended NCSA + duration ms), e.g.
# 127.0.0.1 - - [29/Nov/2026:14:00:00 +0000] "PUT /connectors/a/config HTTP/1.1" 201 345 "-" "connect-health/0.1.0" 12
REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) \S+'
                          r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?')


class Request(NamedTuple):
    """One request Connect logged."""

    method: str
    path: str  # with the query
    status: int
    agent: str  # the User-Agent ("" when the line has none)
    line: str


def parse_request(line: str) -> Request | None:
    m = REQUEST_LINE.search(line)
    if not m:
        return None
    return Request(m["method"], m["path"], int(m["status"]), m["agent"] or "", line)


class RequestLog:
    """Connect's request log (Jetty writes a line after each answer), read from byte offsets."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        """Where the log ends now: since(offset) later gives only what came after."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, offset: int = 0, end: int | None = None) -> list[Request]:
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read() if end is None else f.read(max(0, end - offset))
        except OSError:
            return []
        return [r for r in map(parse_request, data.decode("utf-8", "replace").splitlines()) if r is not None]


class Worker(Service):
    """worker_id is 127.0.0.1:<rest_port>. Files live in <workdir>/<name>/: worker.properties, worker.log (all of
    the JVM's output) and requests.log (Jetty's request log lines only, extended NCSA + duration ms).
    Several workers with the same group_id form one Connect cluster (give each its own name).

    ``rest_users`` ({user: password}) protects the REST API with HTTP basic auth (Kafka's basic-auth extension):
    each start writes rest-users.properties and rest-jaas.conf (mode 0600) from it, so changing it and restarting
    is a rotated Secret in a pod. The launcher's own calls (ready(), request()) authenticate as the first user.
    """

    start_timeout = 120.0
    ready_interval = 0.5

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, bootstrap: str = "",
                 rest_port: int | None = None, plugin_path: Sequence[str | os.PathLike[str]] = (),
                 extra_props: Mapping[str, Any] | None = None, group_id: str = "connect-local",
                 heap: str = WORKER_HEAP, name: str = "worker", rest_users: Mapping[str, str] | None = None,
                 jvm_options: Sequence[str] = ()) -> None:
        if not bootstrap:
            raise ValueError("Worker needs bootstrap='127.0.0.1:<broker port>'")
        super().__init__(workdir, name, "worker.log")
        self.version = version
        self.bootstrap = bootstrap
        self.listener = claim_port(rest_port, "Connect REST listener", "--rest-port")
        self.plugin_path = [Path(p).resolve() for p in plugin_path]
        self.extra_props = dict(extra_props or {})
        self.group_id = group_id
        self.heap = heap
        self.request_log = RequestLog(self.dir / "requests.log")
        self.config = self.dir / "worker.properties"
        self.rest_users = dict(rest_users or {})
        self.jvm_options = list(jvm_options)  # before -cp on the java command line (a -javaagent:, a log config)
        self.rest_users_file = self.dir / "rest-users.properties"
        self.jaas_file = self.dir / "rest-jaas.conf"

    @property
    def rest_port(self) -> int:
        return self.port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    @property
    def worker_id(self) -> str:
        return f"{HOST}:{self.rest_port}"

    def properties(self) -> dict[str, Any]:
        g = self.group_id
        # The FileStream connectors are isolated plugins, as in Kafka's own distribution since 3.2: their jar is
        # kept off the worker's classpath and listed in plugin.path.
        paths = [kafka_libs(self.version) / f"connect-file-{self.version}.jar", *self.plugin_path]
        props: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": g,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": f"{g}-configs",
            "offset.storage.topic": f"{g}-offsets",
            "status.storage.topic": f"{g}-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": 1,
            "status.storage.partitions": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://{HOST}:{self.rest_port}",
            "rest.advertised.host.name": HOST,
            "rest.advertised.port": self.rest_port,
            "rest.advertised.listener": "http",
            "plugin.path": ",".join(str(p) for p in paths),
            # A worker that left comes back quickly in tests; 5 min (the default) would stall them.
            "scheduled.rebalance.max.delay.ms": 10000,
            "task.shutdown.graceful.timeout.ms": 3000,
            "connector.client.config.override.policy": "All",
            # Every plugin here (connect-file, Debezium) ships ServiceLoader manifests: skip the slow reflective scan.
            "plugin.discovery": "service_load",
        }
        if self.rest_users:
            props["rest.extension.classes"] = BASIC_AUTH_EXTENSION
        props.update(self.extra_props)
        return props

    def _write_rest_users(self) -> None:
        """The users file (user=password, read by java.util.Properties as ISO-8859-1) and the JAAS entry naming it,
        both created 0600 before anything is written into them."""
        for user, password in self.rest_users.items():
            if not _REST_USER_NAME.fullmatch(user):
                raise ValueError(f"rest_users: user name {user!r} is not letters, digits and ._@- only")
            if not (password.isascii() and password.isprintable()) or password != password.lstrip():
                raise ValueError(f"rest_users: the password of {user!r} must be printable ASCII, no leading blank")
        for path in (self.rest_users_file, self.jaas_file):
            path.touch(mode=0o600)
        write_properties(self.rest_users_file, self.rest_users)
        self.jaas_file.write_text(f'KafkaConnect {{\n  {BASIC_AUTH_LOGIN_MODULE} required\n'
                                  f'  file="{self.rest_users_file}";\n}};\n')

    def prepare(self) -> None:
        for p in self.plugin_path:
            if not p.exists():
                raise NotFetched(f"plugin path {p.name}", p.parent, "python -m launcher fetch --debezium")
        super().prepare()
        if self.rest_users:
            self._write_rest_users()
        write_properties(self.config, self.properties())

    def command(self) -> list[str]:
        classpath = sorted(p for p in kafka_libs(self.version).glob("*.jar") if not p.name.startswith("connect-file-"))
        sysprops = {"launcher.request.log": str(self.request_log.path)}
        if self.rest_users:
            sysprops["java.security.auth.login.config"] = str(self.jaas_file)
        cmd = java_command(self.version, self.heap, "worker", "org.apache.kafka.connect.cli.ConnectDistributed",
                           [str(self.config)], sysprops=sysprops, classpath=classpath)
        i = cmd.index("-cp")
        return [*cmd[:i], *self.jvm_options, *cmd[i:]]

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header of the first of rest_users ({} without rest_users)."""
        if not self.rest_users:
            return {}
        user, password = next(iter(self.rest_users.items()))
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}

    def ready(self) -> bool:
        """GET /connectors answers 200 (and GET /health 200 on workers that have it)."""
        status, _ = self.request("GET", "/connectors", timeout=5)
        if status != 200:
            return False
        if has_health_endpoint(self.version):
            status, _ = self.request("GET", "/health", timeout=15)
            return status == 200
        return True

    def describe(self) -> str:
        return f"Connect worker on {self.url}" if self.name == "worker" else f"Connect worker {self.name} on {self.url}"

    def waiting_for(self) -> str:
        return f"the Connect worker at {self.url} to be ready"

    def state(self) -> dict[str, Any]:
        return {**super().state(), "version": self.version, "rest_port": self.rest_port, "url": self.url,
                "worker_id": self.worker_id, "group_id": self.group_id, "request_log": str(self.request_log.path)}

    # -- REST helpers (stdlib; the sidecar and the tests may use requests instead) --

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        return http(method, self.url + path, body=body, timeout=timeout, headers=self.auth_headers())

    def put_connector(self, name: str, config: Mapping[str, Any], timeout: float = 30.0) -> Any:
        """PUT /connectors/<name>/config, retrying 409 (rebalance in progress). Returns the answer body."""
        def attempt() -> Any:
            status, body = self.request("PUT", f"/connectors/{name}/config", dict(config))
            if status in (200, 201):
                return body or True
            if status == 409:
                return None
            raise StackError(f"PUT /connectors/{name}/config answered {status}: {body}")
        return wait_until(attempt, timeout, f"connector {name} to be accepted")

    def delete_connector(self, name: str, timeout: float = 30.0) -> None:
        def attempt() -> bool:
            status, body = self.request("DELETE", f"/connectors/{name}")
            if status in (204, 404):
                return True
            if status == 409:
                return False
            raise StackError(f"DELETE /connectors/{name} answered {status}: {body}")
        wait_until(attempt, timeout, f"connector {name} to be deleted")

    def connector_status(self, name: str) -> dict[str, Any] | None:
        status, body = self.request("GET", f"/connectors/{name}/status")
        return body if status == 200 and isinstance(body, dict) else None

    def wait_connector_state(self, name: str, state: str = "RUNNING", tasks: int | None = 1,
                             timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks (at least `tasks` of them) are in `state`."""
        def check() -> dict[str, Any] | None:
            st = self.connector_status(name)
            if not st or st.get("connector", {}).get("state") != state:
                return None
            ts = st.get("tasks", [])
            if tasks is not None and len(ts) < tasks:
                return None
            return st if all(t.get("state") == state for t in ts) else None
        try:
            result: dict[str, Any] = wait_until(check, timeout, f"connector {name} to be {state}", interval=0.5,
                                                check=self.check_running)
            return result
        except TimedOut as e:
            raise StackError(f"{e}; last status: {self.connector_status(name)}") from None

    def plugins(self) -> list[str]:
        status, body = self.request("GET", "/connector-plugins", timeout=30)
        if status != 200 or not isinstance(body, list):
            raise StackError(f"GET /connector-plugins answered {status}: {body}")
        return [p.get("class", "") for p in body]

    # -- request log --

    def request_log_lines(self) -> list[str]:
        """Jetty's request log lines so far, e.g. '127.0.0.1 - - [..] "PUT /connectors/a/config HTTP/1.1" 201 ...'."""
        return [r.line for r in self.request_log.since()]

    def requests_matching(self, method: str, path_regex: str) -> list[str]:
        """Request log lines whose method is `method` and whose path (with query) fully matches path_regex."""
        rx = re.compile(path_regex)
        return [r.line for r in self.request_log.since() if r.method == method and rx.fullmatch(r.path)]

    def wait_for_request(self, method: str, path_regex: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Jetty writes the request log after the answer: wait until `count` matching lines are there."""
        def enough() -> list[str] | None:
            lines = self.requests_matching(method, path_regex)
            return lines if len(lines) >= count else None
        result: list[str] = wait_until(enough, timeout, f"{count} request log line(s) {method} {path_regex}",
                                       interval=0.1)
        return result

