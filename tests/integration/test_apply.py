"""Connectors as code: `connect-health apply` and drift reports against a REAL Connect worker (Kafka 4.x and 3.6).

Writes are counted in the worker's own request log, so "no write" means the worker saw none.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import launcher
import pytest
from connect_health import apply as apply_mod
from connect_health import versions
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.declared import parse
from connect_health.kubeapi import ApiServer, RequestsRecord
from kafka_admin import consumer_groups, produce
from launcher.faultproxy import FaultProxy
from probing import writes
from prometheus_client.parser import text_string_to_metric_families

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


@pytest.fixture
def apply(connect: str, workdir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """apply(declared, *flags, url=the worker's URL): `connect-health apply` run as the chart's Job runs it."""
    def run(declared: dict[str, Any], *flags: str, url: str = connect) -> subprocess.CompletedProcess[str]:
        path = workdir / "connectors.json"
        path.write_text(json.dumps(declared))
        exe = str(launcher.TOOLS / "venv" / "bin" / "connect-health")
        return subprocess.run([exe, "apply", "--connectors-file", str(path), "--connect-url", url,
                               "--wait", "60", *flags], capture_output=True, text=True, timeout=180)
    return run


def declaration(prefix: str, workdir: Path) -> dict[str, Any]:
    src = workdir / "in.txt"
    src.write_text("one\ntwo\n")
    return {
        f"{prefix}-src": {"config": {"connector.class": SOURCE, "tasks.max": 1, "file": str(src),
                                     "topic": f"{prefix}-lines"}},
        f"{prefix}-sink": {"config": {"connector.class": SINK, "tasks.max": 1, "topics": f"{prefix}-lines",
                                      "file": str(workdir / "out.txt")}, "policy": "best-effort"},
    }


def test_apply_creates_then_second_apply_writes_nothing(apply: Any, worker: launcher.Worker, prefix: str,
                                                        workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    first = apply(declared)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in declared:
        worker.wait_connector_state(name, "RUNNING")
        assert f"created {name}" in first.stdout
    status, config = worker.request("GET", f"/connectors/{prefix}-src/config")
    assert status == 200 and config["tasks.max"] == "1"  # YAML/JSON numbers arrive as Connect strings
    launcher.wait_until(lambda: len(writes(worker, prefix)) >= 2, 10, "the request log to show the creates")
    before = writes(worker, prefix)
    assert len(before) == 2, before
    reads = len(worker.requests_matching("GET", r"/connectors\?.*"))

    second = apply(declared)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 write(s)" in second.stdout, second.stdout
    # Jetty logs a request after answering it: wait until the second apply's read is logged, so anything it
    # wrote after that read is logged too, then check the worker saw no write at all.
    worker.wait_for_request("GET", r"/connectors\?.*", count=reads + 1)
    assert writes(worker, prefix) == before


def test_changed_config_is_updated(apply: Any, worker: launcher.Worker, prefix: str, workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    assert apply(declared).returncode == 0
    declared[f"{prefix}-sink"]["config"]["file"] = str(workdir / "elsewhere.txt")
    result = apply(declared)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"updated {prefix}-sink" in result.stdout
    assert f"unchanged {prefix}-src" in result.stdout
    status, config = worker.request("GET", f"/connectors/{prefix}-sink/config")
    assert status == 200 and config["file"] == str(workdir / "elsewhere.txt")


def test_desired_states_paused_and_stopped(apply: Any, worker: launcher.Worker, prefix: str,
                                           workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    declared[f"{prefix}-src"]["state"] = "paused"
    declared[f"{prefix}-sink"]["state"] = "stopped"
    result = apply(declared)
    assert result.returncode == 0, result.stdout + result.stderr
    worker.wait_connector_state(f"{prefix}-src", "PAUSED", tasks=None)
    launcher.wait_until(lambda: (worker.connector_status(f"{prefix}-sink") or {}).get("connector", {})
                          .get("state") == "STOPPED", 30, "the sink to be STOPPED")
    declared[f"{prefix}-src"]["state"] = "running"
    result = apply(declared)
    assert result.returncode == 0 and f"resumed {prefix}-src" in result.stdout, result.stdout
    worker.wait_connector_state(f"{prefix}-src", "RUNNING")


def test_prune_removes_undeclared_but_keeps_what_the_selector_protects(apply: Any, worker: launcher.Worker,
                                                                      prefix: str, workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    assert apply(declared).returncode == 0
    extra = {"connector.class": SOURCE, "tasks.max": "1", "file": str(workdir / "in.txt"), "topic": "x"}
    worker.put_connector(f"{prefix}-tmp-old", extra)
    worker.put_connector(f"{prefix}-keep", extra)
    result = apply(declared, "--prune", "--prune-selector", f"^{prefix}-tmp-")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deleted {prefix}-tmp-old" in result.stdout
    assert f"kept {prefix}-keep" in result.stdout
    _, names = worker.request("GET", "/connectors")
    assert f"{prefix}-tmp-old" not in names
    assert f"{prefix}-keep" in names and f"{prefix}-src" in names


class LosingProxy(FaultProxy):
    """The launcher's fault proxy, losing the answer to the first DELETE: the request reaches the worker, which
    deletes the connector, and the connection then closes without an answer (what apply sees when the worker's pod
    or a proxy in between goes away mid-call). The real worker cannot be made to do this on its own."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.lost: list[str] = []
        handler = self.server.RequestHandlerClass
        answer = vars(handler)["_answer"]
        proxy = self

        def losing(request: Any, status: int, data: bytes, content_type: str) -> None:
            if request.command == "DELETE" and not proxy.lost:
                proxy.lost.append(f"{request.command} {request.path} {status}")
                return  # nothing written: the handler ends and the connection closes
            answer(request, status, data, content_type)

        setattr(handler, "_answer", losing)  # noqa: B010 - the class is this proxy's own (made in __init__)


def test_prune_with_a_lost_delete_answer_succeeds(apply: Any, worker: launcher.Worker, prefix: str,
                                                  workdir: Path, connect: str) -> None:
    """Issue 18, item 7: the first DELETE deletes the connector but its answer is lost; the retry answers 404. The
    worker holds exactly what was declared, so the run succeeds (it used to exit 1, failing the helm upgrade)."""
    declared = declaration(prefix, workdir)
    assert apply(declared).returncode == 0
    extra = {"connector.class": SOURCE, "tasks.max": "1", "file": str(workdir / "in.txt"), "topic": "x"}
    worker.put_connector(f"{prefix}-tmp-old", extra)
    proxy = LosingProxy(connect)
    with proxy:
        result = apply(declared, "--prune", url=proxy.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert proxy.lost == [f"DELETE /connectors/{prefix}-tmp-old 204"]  # the worker did delete it the first time
    assert f"retrying delete {prefix}-tmp-old in " in result.stdout
    assert f"delete {prefix}-tmp-old: answered 404 after an answer was lost; GET /connectors/{prefix}-tmp-old " \
           "answers 404: gone, as declared" in result.stdout, result.stdout
    assert f"deleted {prefix}-tmp-old" in result.stdout and "0 refused" in result.stdout
    worker.wait_for_request("DELETE", rf"/connectors/{prefix}-tmp-old", count=2)  # both reached the worker
    _, names = worker.request("GET", "/connectors")
    assert f"{prefix}-tmp-old" not in names
    assert {f"{prefix}-src", f"{prefix}-sink"} <= set(names)


def test_one_invalid_connector_applies_nothing(apply: Any, worker: launcher.Worker, prefix: str,
                                               workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    declared[f"{prefix}-bad"] = {"config": {"connector.class": SOURCE, "tasks.max": 1, "topic": "t",
                                            "file": str(workdir / "in.txt"), "batch.size": "lots"}}
    result = apply(declared)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"connector {prefix}-bad: batch.size:" in result.stdout, result.stdout
    assert "nothing applied" in result.stdout
    _, names = worker.request("GET", "/connectors")
    assert not [n for n in names if n.startswith(prefix)], names
    assert writes(worker, prefix) == []


def test_drift_made_by_hand_shows_in_status_and_metrics(apply: Any, worker: launcher.Worker, connect: str,
                                                        prefix: str, workdir: Path) -> None:
    declared = declaration(prefix, workdir)
    declared[f"{prefix}-gone"] = {"config": {"connector.class": SOURCE, "tasks.max": 1, "topic": "g",
                                             "file": str(workdir / "in.txt")}}
    assert apply(declared).returncode == 0
    connectors_file = workdir / "declared.json"
    connectors_file.write_text(json.dumps(declared))
    sc = launcher.Sidecar(workdir, connect, ["--poll-interval", "0.5", "--connectors-file",
                                               str(connectors_file)]).start()
    try:
        launcher.wait_until(lambda: sc.get("/status")[1]["polls"] >= 2, 20, "two polls")
        assert sc.get("/status")[1]["drift"] == []
        # By hand, behind the declaration's back: pause one, change another's config, delete a third.
        assert worker.request("PUT", f"/connectors/{prefix}-src/pause")[0] == 202
        changed = dict(declared[f"{prefix}-sink"]["config"], file=str(workdir / "by-hand.txt"))
        worker.put_connector(f"{prefix}-sink", {k: str(v) for k, v in changed.items()})
        worker.delete_connector(f"{prefix}-gone")
        expected = {(f"{prefix}-src", "state"), (f"{prefix}-sink", "config"), (f"{prefix}-gone", "missing")}

        def drift() -> set[tuple[str, str]] | None:
            found = {(d["connector"], d["kind"]) for d in sc.get("/status")[1]["drift"]}
            return found if found == expected else None

        # state drift shows at the next poll; config drift once configs are fetched again (every 30 s, poller.py)
        launcher.wait_until(drift, 45, f"drift {expected} on /status")
        text = sc.get("/metrics")[1]
        samples = {(s.labels.get("connector"), s.labels.get("kind")) for f in text_string_to_metric_families(text)
                   if f.name == "connect_health_drift" for s in f.samples}
        assert samples == expected
        status, ready = sc.get("/readyz")
        assert status == 200  # drift is a warning: readiness must not block the upgrade that fixes it
        assert any(f"{prefix}-gone" in w for w in ready["warnings"]), ready
        # The sink's declared policy (best-effort) reached the health model.
        sink = next(c for c in sc.get("/status")[1]["connectors"] if c["name"] == f"{prefix}-sink")
        assert sink["policy"] == "best-effort"
    finally:
        sc.stop()


def test_a_sink_declared_stopped_on_a_full_topic_consumes_nothing(apply: Any, worker: launcher.Worker,
                                                                   stack: launcher.Stack, kafka_version: str,
                                                                   prefix: str, workdir: Path) -> None:
    """Issue 20: a sink declared `stopped` is created STOPPED (KIP-980, Kafka 3.7+): on a topic already holding 100
    records it consumes none, and its consumer group (`connect-<name>`, SinkUtils) is never created. A sink declared
    running beside it on the same topic (the control) consumes the 100 records and its group shows in the listing.
    On older workers the documented window: created, then stopped."""
    topic, name, out = f"{prefix}-full", f"{prefix}-stopped", workdir / "stopped.txt"
    control, control_out = f"{prefix}-control", workdir / "control.txt"
    produce(kafka_version, stack.broker.bootstrap, topic, 100)
    declared = {name: {"config": {"connector.class": SINK, "tasks.max": 1, "topics": topic, "file": str(out)},
                       "state": "stopped"},
                control: {"config": {"connector.class": SINK, "tasks.max": 1, "topics": topic,
                                     "file": str(control_out)}}}
    result = apply(declared)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    launcher.wait_until(lambda: (worker.connector_status(name) or {}).get("connector", {}).get("state")
                        == "STOPPED", 30, f"{name} to be STOPPED")
    kafka = versions.kafka_version(kafka_version)
    assert kafka is not None
    if kafka < (3, 7):
        assert f"created {name}" in result.stdout and f"stopped {name}" in result.stdout
        assert f"create {name}: Kafka {kafka_version} cannot create a connector stopped (initial_state, Kafka 3.7+)" \
               in result.stdout, result.stdout
        return
    assert f"created {name} STOPPED (initial_state)" in result.stdout, result.stdout
    worker.wait_for_request("POST", r"/connectors/?")
    assert f"{name}/" not in " ".join(writes(worker, prefix))  # no PUT .../config or .../stop: never anything else
    status = worker.connector_status(name)
    assert status is not None and status["tasks"] == [], status
    launcher.wait_until(lambda: control_out.exists() and control_out.read_text().count("\n") == 100, 60,
                        "the control sink to write the topic's 100 records")
    groups = consumer_groups(kafka_version, stack.broker.bootstrap)
    print(f"consumer groups on the broker: {sorted(groups)}; {out} exists: {out.exists()}")
    assert f"connect-{control}" in groups, groups
    assert f"connect-{name}" not in groups, groups
    assert not out.exists() or out.read_text() == "", "a sink created STOPPED wrote records"
    second = apply(declared)
    assert second.returncode == 0 and "0 write(s)" in second.stdout, second.stdout


class ConfigMapStandIn:
    """The Kubernetes API's GET and PATCH (JSON merge patch) of ONE ConfigMap, on 127.0.0.1: the only stand-in of
    these tests, for the record of done offsets requests (a real API server needs the e2e cluster). Like the real
    one it refuses a patch carrying a stale metadata.resourceVersion with 409, and wants a bearer token."""

    def __init__(self, namespace: str, name: str, token: str) -> None:
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.data: dict[str, str] = {}
        self.version = 1
        self.seen: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the test output quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _object(self) -> dict[str, Any]:
                return {"apiVersion": "v1", "kind": "ConfigMap", "data": dict(standin.data),
                        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(standin.version)}}

            def _check(self) -> bool:
                standin.seen.append(f"{self.command} {self.path}")
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self._answer(401, {"kind": "Status", "message": "Unauthorized"})
                    return False
                if self.path != standin.path:
                    self._answer(404, {"kind": "Status", "message": f"{self.path} not found"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self._check():
                    self._answer(200, self._object())

            def do_PATCH(self) -> None:  # noqa: N802 - http.server's name
                if not self._check():
                    return
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    self._answer(415, {"kind": "Status", "message": "unsupported patch type"})
                    return
                patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                wanted = patch.get("metadata", {}).get("resourceVersion")
                if wanted is not None and wanted != str(standin.version):
                    self._answer(409, {"kind": "Status", "message": "the object has been modified"})
                    return
                for key, value in patch.get("data", {}).items():
                    if value is None:
                        standin.data.pop(key, None)
                    else:
                        standin.data[key] = value
                standin.version += 1
                self._answer(200, self._object())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ConfigMapStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def record(workdir: Path) -> Iterator[tuple[ConfigMapStandIn, RequestsRecord]]:
    token = workdir / "token"
    token.write_text("sa-token\n")
    with ConfigMapStandIn("team", "rel-kafka-connect-connector-requests", "sa-token") as standin:
        yield standin, RequestsRecord(ApiServer(standin.url, str(token), None), "team",
                                      "rel-kafka-connect-connector-requests")


def apply_with_record(connect: str, declared: dict[str, Any], record: RequestsRecord | None) -> tuple[int, str]:
    """`connect-health apply` as the Job runs it, in this process (its ConfigMap client pointed at the stand-in)."""
    lines: list[str] = []
    client = ConnectClient(ConnectSettings(url=connect, request_timeout=30))
    try:
        code = apply_mod.run(client, parse(declared), wait=90, prune=False, prune_selector=None, dry_run=False,
                             out=lines.append, requests=record)
    finally:
        client.close()
    print("\n".join(lines))
    return code, "\n".join(lines)


def test_offsets_reset_then_set_of_a_sink_once_per_request(connect: str, worker: launcher.Worker,
                                                           stack: launcher.Stack, kafka_version: str, prefix: str,
                                                           workdir: Path, record: Any) -> None:
    """Issue 20, offsets as code (KIP-875): without a ConfigMap to record it, a declared reset is refused and nothing is
    done; with one, it makes a FileStream sink write the topic's records again from the start, and is recorded;
    applying the same request again does nothing; a new request `set` to offset 15 re-reads the last 5 records.
    The legacy Kafka of the suite (ci/versions.env: 3.6.2) has KIP-875, so it runs there too; the refusal on
    Kafka < 3.6 is in tests/sidecar/test_apply_offsets.py (no such worker here)."""
    standin, requests = record
    topic, name, out = f"{prefix}-t", f"{prefix}-sink", workdir / "sink.txt"
    produce(kafka_version, stack.broker.bootstrap, topic, 20)
    sink: dict[str, Any] = {"config": {"connector.class": SINK, "tasks.max": 1, "topics": topic, "file": str(out)}}

    def lines() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    code, text = apply_with_record(connect, {name: sink}, requests)
    assert code == 0, text
    launcher.wait_until(lambda: len(lines()) == 20, 60, "the sink to write the topic's 20 records")
    worker.wait_connector_state(name)

    sink["offsets"] = {"request": "replay-1", "action": "reset"}
    code, text = apply_with_record(connect, {name: sink}, None)  # no ConfigMap: refused, nothing done
    assert code == 1 and f"refused: offsets {name} (request 'replay-1'): no ConfigMap to record it in " \
                         "(--requests-configmap): not done, as it could not be recorded" in text, text
    assert worker.requests_matching("PUT", rf"/connectors/{name}/stop") == []
    code, text = apply_with_record(connect, {name: sink}, requests)
    assert code == 0, text
    assert f"stopped {name} (for its offsets)" in text and f"reset offsets of {name}: " in text, text
    assert f"resumed {name}" in text, text
    assert json.loads(standin.data[name]) == ["replay-1"], standin.data
    launcher.wait_until(lambda: len(lines()) == 40, 60, "the sink to write the 20 records again")
    assert lines()[20:] == lines()[:20] == [f"record {i}" for i in range(20)]
    worker.wait_connector_state(name)
    assert len(worker.requests_matching("DELETE", rf"/connectors/{name}/offsets")) == 1

    code, text = apply_with_record(connect, {name: sink}, requests)
    assert code == 0 and "offsets " + name + " (request 'replay-1'): done already" in text, text
    assert "0 write(s)" in text, text
    assert len(worker.requests_matching("DELETE", rf"/connectors/{name}/offsets")) == 1
    assert len(worker.requests_matching("PUT", rf"/connectors/{name}/stop")) == 1  # the reset's, none since

    sink["offsets"] = {"request": "replay-2", "action": "set", "offsets": [
        {"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 15}}]}
    code, text = apply_with_record(connect, {name: sink}, requests)
    assert code == 0 and f"set offsets of {name}: " in text, text
    launcher.wait_until(lambda: len(lines()) == 45, 60, "the sink to write records 15 to 19 again")
    assert lines()[40:] == [f"record {i}" for i in range(15, 20)]
    assert json.loads(standin.data[name]) == ["replay-1", "replay-2"]

    # Deleted by hand and declared again with a new reset: re-created STOPPED (Kafka 3.7+), so it never resumes from
    # the offsets its consumer group kept, then reset and resumed: the whole topic once more.
    worker.wait_connector_state(name)
    worker.delete_connector(name)
    sink["offsets"] = {"request": "replay-3", "action": "reset"}
    code, text = apply_with_record(connect, {name: sink}, requests)
    assert code == 0, text
    kafka = versions.kafka_version(kafka_version)
    created = f"created {name} STOPPED (initial_state)" if kafka and kafka >= (3, 7) else f"created {name}"
    assert created in text.splitlines() and f"reset offsets of {name}: " in text and f"resumed {name}" in text, text
    launcher.wait_until(lambda: len(lines()) == 65, 60, "the re-created sink to write the topic once more")
    assert lines()[45:] == [f"record {i}" for i in range(20)]
