"""Issue 20 (created in the declared state; offsets as code) against fakes, ONLY for what the real components of the
integration suite cannot produce here: a worker older than Kafka 3.6 (the suite's oldest is 3.6.2) or of a version
apply cannot tell, a connector created by someone else between apply's read and its POST, Connect's "not yet" answers
to an offsets call right after a stop, and the Kubernetes API's refusals and write conflicts. The fake Connect worker
(fakeconnect.py) also plays the API server's ConfigMap endpoints here.

The real paths (a sink created STOPPED that consumes nothing, reset and set on a real worker, once per request,
refused without a ConfigMap) are in tests/integration/test_apply.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from connect_health import apply as apply_mod
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
from connect_health.declared import Declared, OffsetsAction
from connect_health.kubeapi import ApiServer, RecordError, RequestsRecord

from .fakeconnect import ROOT, Answer, FakeClock, FakeConnect
from .test_apply import run_apply, same_as_worker, valid, writes
from .test_cli import clean_env, run
from .test_cli_bad_input import one_line_exit_2

CM = "/api/v1/namespaces/team/configmaps/rel-connector-requests"
RESET = OffsetsAction("replay-1", "reset")


@pytest.fixture
def client(fake: FakeConnect) -> Iterator[ConnectClient]:
    c = ConnectClient(ConnectSettings(url=fake.url, request_timeout=2))
    yield c
    c.close()


@pytest.fixture
def record(fake: FakeConnect, tmp_path: Path) -> RequestsRecord:
    """The ConfigMap record, its API server played by the same fake (other paths than Connect's)."""
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    return RequestsRecord(ApiServer(fake.url, str(token), None), "team", "rel-connector-requests", timeout=2)


def configmap(fake: FakeConnect, data: dict[str, str] | None = None, version: str = "7") -> None:
    fake.route("GET", CM, Answer(200, {"kind": "ConfigMap", "data": data or {},
                                       "metadata": {"name": "rel-connector-requests", "resourceVersion": version}}))


def with_offsets(action: OffsetsAction = RESET, name: str = "file-sink") -> dict[str, Declared]:
    declared = same_as_worker()
    declared[name] = Declared(name, declared[name].config, offsets=action)
    return declared


def stopped_status(name: str) -> Answer:
    return Answer(200, {"name": name, "connector": {"state": "STOPPED", "worker_id": "w"}, "tasks": [],
                        "type": "sink"})


def run_waiting(client: ConnectClient, declared: dict[str, Declared], **kwargs: Any) -> tuple[int, list[str]]:
    """apply with --wait 60 on a fake clock (its sleeps advance it): retries happen, and take no time."""
    clock, lines = FakeClock(), list[str]()
    code = apply_mod.run(client, declared, wait=60, prune=False, prune_selector=None, dry_run=False,
                         out=lines.append, sleep=clock.advance, clock=clock, **kwargs)
    return code, lines


def connect_writes(fake: FakeConnect) -> list[tuple[str, str]]:
    """The writes sent to Connect (not to the API server's paths), in order; validation is not a write."""
    return [(s.method, s.path) for s in fake.requests() if s.method in ("PUT", "POST", "PATCH", "DELETE")
            and not s.path.startswith("/api/") and not s.path.endswith("/config/validate")]


def test_refused_on_kafka_older_than_3_6_with_nothing_done(fake: FakeConnect, client: ConnectClient,
                                                          record: RequestsRecord) -> None:
    fake.route("GET", "/", Answer(200, {**ROOT, "version": "3.5.2"}))
    code, lines = run_apply(client, with_offsets(), requests=record)
    assert code == 1, lines
    assert "refused: offsets file-sink (request 'replay-1'): Kafka 3.5.2 cannot reset a connector's offsets " \
           "(KIP-875, Kafka 3.6+)" in lines
    assert connect_writes(fake) == [] and fake.requests(path=CM) == []


def test_refused_on_a_confluent_release_of_kafka_3_5(fake: FakeConnect, client: ConnectClient,
                                                    record: RequestsRecord) -> None:
    fake.route("GET", "/", Answer(200, {**ROOT, "version": "7.5.3-ccs"}))
    code, lines = run_apply(client, with_offsets(), requests=record)
    assert code == 1
    assert any("Kafka 3.5 (the worker reports 7.5.3-ccs) cannot reset" in line for line in lines), lines
    assert connect_writes(fake) == []


def test_a_request_already_done_sends_nothing(fake: FakeConnect, client: ConnectClient,
                                              record: RequestsRecord) -> None:
    configmap(fake, {"file-sink": json.dumps(["older", "replay-1"])})
    code, lines = run_apply(client, with_offsets(), requests=record)
    assert code == 0, lines
    assert "offsets file-sink (request 'replay-1'): done already" in lines
    assert connect_writes(fake) == [] and fake.requests("PATCH") == []


def test_stop_wait_reset_record_resume_retrying_connects_not_yet(fake: FakeConnect, client: ConnectClient,
                                                                 record: RequestsRecord) -> None:
    """Right after a stop, Connect may still answer 400 "must be in the STOPPED state" (the leader has not seen the
    stop yet) or a sink's 500 "can be safely retried" (its tasks still in the consumer group): both are "not yet"."""
    configmap(fake, {"file-sink": json.dumps([f"r{i}" for i in range(10)])})
    fake.route("PUT", "/connectors/file-sink/stop", Answer(202))
    fake.route("GET", "/connectors/file-sink/status", stopped_status("file-sink"))
    answers = iter([
        Answer(400, {"error_code": 400, "message": "Connectors must be in the STOPPED state before their offsets "
                                                   "can be modified."}),
        Answer(500, {"error_code": 500, "message": "Failed to reset consumer group offsets for connector file-sink "
                                                   "... If the connector is in a stopped state, this operation can "
                                                   "be safely retried."}),
        Answer(200, {"message": "The offsets for this connector have been reset successfully"})])
    fake.route("DELETE", "/connectors/file-sink/offsets", lambda seen: next(answers))
    fake.route("PATCH", CM, Answer(200, {}))
    fake.route("PUT", "/connectors/file-sink/resume", Answer(202))
    code, lines = run_waiting(client, with_offsets(), requests=record)
    assert code == 0, lines
    assert connect_writes(fake) == [("PUT", "/connectors/file-sink/stop")] + [
        ("DELETE", "/connectors/file-sink/offsets")] * 3 + [("PUT", "/connectors/file-sink/resume")]
    assert "reset offsets of file-sink: The offsets for this connector have been reset successfully" in lines
    (patch,) = fake.requests("PATCH", CM)
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"] == "Bearer sa-token"
    body = patch.json()
    assert body["metadata"] == {"resourceVersion": "7"}  # a concurrent writer makes it a 409, never a lost record
    assert json.loads(body["data"]["file-sink"]) == [f"r{i}" for i in range(1, 10)] + ["replay-1"]  # the last 10


def test_set_sends_the_declared_offsets_and_resumes_to_paused(fake: FakeConnect, client: ConnectClient,
                                                              record: RequestsRecord) -> None:
    items = ({"partition": {"kafka_topic": "lines", "kafka_partition": 0}, "offset": {"kafka_offset": 5}},)
    declared = same_as_worker()
    declared["file-sink"] = Declared("file-sink", declared["file-sink"].config, "paused",
                                     offsets=OffsetsAction("r2", "set", items))
    configmap(fake)
    fake.route("PUT", "/connectors/file-sink/pause", Answer(202))
    fake.route("PUT", "/connectors/file-sink/stop", Answer(202))
    fake.route("GET", "/connectors/file-sink/status", stopped_status("file-sink"))
    fake.route("PATCH", "/connectors/file-sink/offsets", Answer(200, {"message": "altered"}))
    fake.route("PATCH", CM, Answer(200, {}))
    code, lines = run_apply(client, declared, requests=record)
    assert code == 0, lines
    (sent,) = fake.requests("PATCH", "/connectors/file-sink/offsets")
    assert sent.json() == {"offsets": list(items)}
    # the action first, then the declared state: no pause before the stop
    assert [line for line in lines if line.startswith(("paused", "stopped"))] == [
        "stopped file-sink (for its offsets)", "paused file-sink"]
    assert connect_writes(fake) == [("PUT", "/connectors/file-sink/stop"), ("PATCH", "/connectors/file-sink/offsets"),
                                    ("PUT", "/connectors/file-sink/pause")]


def test_an_unreadable_record_means_nothing_is_done(fake: FakeConnect, client: ConnectClient,
                                                    record: RequestsRecord) -> None:
    fake.route("GET", CM, Answer(403, {"kind": "Status", "message": 'configmaps "rel-connector-requests" is '
                                                                    "forbidden"}))
    code, lines = run_apply(client, with_offsets(), requests=record)
    assert code == 1
    assert "refused: offsets file-sink (request 'replay-1'): not done: ConfigMap team/rel-connector-requests: GET " \
           "answered 403: configmaps \"rel-connector-requests\" is forbidden (the chart's Role grants get and patch " \
           "on this ConfigMap only)" in lines
    assert connect_writes(fake) == []


def test_done_but_not_recorded_says_so_and_still_resumes(fake: FakeConnect, client: ConnectClient,
                                                         record: RequestsRecord) -> None:
    configmap(fake)
    fake.route("PUT", "/connectors/file-sink/stop", Answer(202))
    fake.route("GET", "/connectors/file-sink/status", stopped_status("file-sink"))
    fake.route("DELETE", "/connectors/file-sink/offsets", Answer(200, {"message": "reset"}))
    fake.route("PATCH", CM, Answer(422, {"kind": "Status", "message": "invalid"}))
    fake.route("PUT", "/connectors/file-sink/resume", Answer(202))
    code, lines = run_apply(client, with_offsets(), requests=record)
    assert code == 1
    assert any("done but NOT recorded" in line and "PATCH answered 422: invalid" in line for line in lines), lines
    assert connect_writes(fake)[-1] == ("PUT", "/connectors/file-sink/resume")


def test_record_keeps_the_last_ten_and_retries_a_conflict(fake: FakeConnect, record: RequestsRecord) -> None:
    versions = iter(["1", "2"])
    fake.route("GET", CM, lambda seen: Answer(200, {"data": {"a": json.dumps(["x"])},
                                                    "metadata": {"resourceVersion": next(versions)}}))
    patches = iter([Answer(409, {"message": "the object has been modified"}), Answer(200, {})])
    fake.route("PATCH", CM, lambda seen: next(patches))
    record.record("a", "y")
    sent = [s.json() for s in fake.requests("PATCH", CM)]
    assert [s["metadata"]["resourceVersion"] for s in sent] == ["1", "2"]
    assert json.loads(sent[-1]["data"]["a"]) == ["x", "y"]


@pytest.mark.parametrize("value", ["not json", json.dumps({"a": 1}), json.dumps([1, 2])])
def test_a_record_that_is_not_a_list_of_strings_is_refused(fake: FakeConnect, record: RequestsRecord,
                                                           value: str) -> None:
    configmap(fake, {"a": value})
    with pytest.raises(RecordError, match=r"^ConfigMap team/rel-connector-requests: data\['a'\] is not a JSON "
                                          r"list of request strings$"):
        record.done("a")


def test_created_in_state_but_someone_created_it_meanwhile(fake: FakeConnect, client: ConnectClient) -> None:
    """Between apply's read and its POST someone creates the connector: 409 "already exists" is no "not now" (it is
    not retried until --wait runs out); the connector is updated and stopped as any existing one."""
    declared = same_as_worker()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"},
                                    "stopped")
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("POST", "/connectors", Answer(409, {"error_code": 409, "message": "Connector new-sink already exists"}))
    fake.route("PUT", "/connectors/new-sink/config", Answer(200, {}))
    fake.route("GET", "/connectors/new-sink/status", Answer(200, {
        "name": "new-sink", "connector": {"state": "RUNNING", "worker_id": "w"}, "tasks": [], "type": "sink"}))
    fake.route("PUT", "/connectors/new-sink/stop", Answer(202))
    code, lines = run_waiting(client, declared)
    assert code == 0, lines
    assert writes(fake) == [("POST", "/connectors"), ("PUT", "/connectors/new-sink/config"),
                            ("PUT", "/connectors/new-sink/stop")]
    assert fake.requests("POST", "/connectors")[0].json() == {
        "name": "new-sink", "config": declared["new-sink"].config, "initial_state": "STOPPED"}
    assert "create new-sink: Connector new-sink already exists: updating it instead" in lines
    assert "stopped new-sink" in lines


@pytest.mark.parametrize(("version", "why"), [
    ("3.6.2", "Kafka 3.6.2"),
    ("9.0.0-ccs", "an unknown Kafka (the worker reports '9.0.0-ccs')"),
])
def test_without_initial_state_the_window_is_said(fake: FakeConnect, client: ConnectClient, version: str,
                                                  why: str) -> None:
    fake.route("GET", "/", Answer(200, {**ROOT, "version": version}))
    declared = same_as_worker()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"},
                                    "paused")
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    fake.route("PUT", "/connectors/new-sink/config", Answer(201, {}))
    fake.route("PUT", "/connectors/new-sink/pause", Answer(202))
    code, lines = run_apply(client, declared)
    assert code == 0, lines
    assert f"create new-sink: {why} cannot create a connector paused (initial_state, Kafka 3.7+): it runs until " \
           "it is paused" in lines
    assert writes(fake) == [("PUT", "/connectors/new-sink/config"), ("PUT", "/connectors/new-sink/pause")]


def test_dry_run_says_what_it_would_do(fake: FakeConnect, client: ConnectClient, record: RequestsRecord) -> None:
    configmap(fake)
    declared = with_offsets()
    declared["new-sink"] = Declared("new-sink", {"connector.class": "FileStreamSink", "topics": "t", "file": "/x"},
                                    "stopped")
    fake.route("PUT", "/connector-plugins/FileStreamSink/config/validate", valid)
    code, lines = run_apply(client, declared, requests=record, dry_run=True)
    assert code == 0, lines
    assert "would create new-sink STOPPED (initial_state)" in lines
    assert "would reset the offsets of file-sink (request 'replay-1')" in lines
    assert connect_writes(fake) == [] and fake.requests("PATCH") == []


def test_requests_configmap_outside_a_pod_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    env = {k: v for k, v in clean_env().items() if not k.startswith("KUBERNETES_")}
    result = run("apply", "--connectors-file", str(path), "--requests-configmap", "rel-connector-requests", env=env)
    one_line_exit_2(result, "--requests-configmap needs KUBERNETES_SERVICE_HOST (it runs in a pod)")


def test_the_record_finds_its_api_server_and_namespace_as_events_do(tmp_path: Path) -> None:
    """The chart's CONNECT_HEALTH_NAMESPACE first, then POD_NAMESPACE, then the service account's namespace file."""
    with pytest.raises(ValueError, match="^--requests-configmap needs KUBERNETES_SERVICE_HOST"):
        RequestsRecord.from_environment("cm", {}, str(tmp_path))
    pod = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    with pytest.raises(ValueError, match="service-account token"):
        RequestsRecord.from_environment("cm", pod, str(tmp_path))
    (tmp_path / "token").write_text("t")
    with pytest.raises(ValueError, match="needs CONNECT_HEALTH_NAMESPACE"):
        RequestsRecord.from_environment("cm", pod, str(tmp_path))
    (tmp_path / "namespace").write_text("from-file\n")
    (tmp_path / "ca.crt").write_text("ca")
    rec = RequestsRecord.from_environment("cm", pod, str(tmp_path))
    assert (rec.api.url, rec.namespace, rec.api.ca_file) == ("https://[fd00::1]:6443", "from-file",
                                                             str(tmp_path / "ca.crt"))
    assert RequestsRecord.from_environment("cm", {**pod, "POD_NAMESPACE": "pod-ns"}, str(tmp_path)).namespace \
        == "pod-ns"
    assert RequestsRecord.from_environment("cm", {**pod, "POD_NAMESPACE": "pod-ns", "CONNECT_HEALTH_NAMESPACE": "ch"},
                                           str(tmp_path)).where == "ConfigMap ch/cm"
