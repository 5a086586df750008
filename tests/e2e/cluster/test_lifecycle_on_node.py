"""The connectors' whole lifecycle under Helm on a real node (issue 20's scenarios), each printing what it saw.

One release (`life` in namespace e2e-life: values-e2e.yaml + values-lifecycle.yaml, 2 workers, sink-ok with 2
tasks and sink-two declared), changed by `kubectl scale`, `helm upgrade` and `helm rollback` from one scenario to
the next, so the file costs one install. The scenarios run in this file's order (each leaves 2 Ready workers):
scale 2 -> 3 -> 2, rollback, the apply reaching unready workers, created stopped, offsets reset, drift correction
(last: turning reconcile on rolls the pods). Waits are bounded; the only bound taken as a verdict is the issue's own
"RUNNING within the rebalance delay", given slack for the poll and the tasks' start, and every time is printed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelp import WORKER_SELECTOR as WORKERS
from kubehelp import Install, Kube, helm, wait_for
from kubernetes import client
from kubernetes.stream import stream
from launcher import cluster as kcluster
from launcher.jvm import java_command
from launcher.pins import KAFKA_VERSION

HERE = Path(__file__).resolve().parent
E2E_VALUES = HERE / "values-e2e.yaml"
LIFE_VALUES = HERE / "values-lifecycle.yaml"
NAMESPACE = "e2e-life"
RELEASE = "life"
GROUP = f"{NAMESPACE}-{RELEASE}"  # groupId, as conftest's `install` sets it
DECLARED = ("sink-ok", "sink-two")
REBALANCE_DELAY = int(yaml.safe_load(E2E_VALUES.read_text())["workerConfig"]["scheduled.rebalance.max.delay.ms"]) / 1000
# Beyond the rebalance delay: the sidecar-free REST poll here (1 s) and a task's start on a busy 2-core node.
STEP_SLACK = 30
BROKEN_FILE = "/nonexistent/out.txt"
MISSING = "(no such file)"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def sink(topic: str, path: str, tasks: int = 1) -> dict[str, str]:
    return {"connector.class": SINK, "tasks.max": str(tasks), "topics": topic, "file": path}


# ---- the host broker, through Kafka's own clients (the fetched jars hold the clients, not the CLI tools module;
# run by the JDK's source launcher, as tests/integration/test_sink_groups.py does)
KAFKA_TOOL = """
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import java.util.Map;
public class LifeTool {
    public static void main(String[] a) throws Exception {
        if (a[1].equals("produce")) {
            try (var p = new KafkaProducer<String, String>(Map.<String, Object>of("bootstrap.servers", a[0],
                    "key.serializer", "org.apache.kafka.common.serialization.StringSerializer",
                    "value.serializer", "org.apache.kafka.common.serialization.StringSerializer"))) {
                for (int i = 0; i < Integer.parseInt(a[4]); i++) p.send(new ProducerRecord<>(a[2], a[3] + "-" + i));
                p.flush();
            }
        } else {
            try (Admin admin = Admin.create(Map.<String, Object>of("bootstrap.servers", a[0]))) {
                for (var g : admin.listConsumerGroups().all().get()) System.out.println("group " + g.groupId());
            }
        }
    }
}
"""


def kafka_tool(broker: Any, tmp: Path, *args: str) -> list[str]:
    source = tmp / "LifeTool.java"
    source.write_text(KAFKA_TOOL)
    cmd = java_command(KAFKA_VERSION, "256m", "broker", str(source), [broker.bootstrap, *args])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-1500:]
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def produce(broker: Any, tmp: Path, topic: str, prefix: str, count: int) -> list[str]:
    kafka_tool(broker, tmp, "produce", topic, prefix, str(count))
    return [f"{prefix}-{i}" for i in range(count)]


def consumer_groups(broker: Any, tmp: Path) -> set[str]:
    """The consumer groups the broker knows (its lines, not the admin client's log on the same stdout)."""
    return {line.removeprefix("group ") for line in kafka_tool(broker, tmp, "groups") if line.startswith("group ")}


# ---- the release's Connect, through whichever worker answers
def any_connect(kube: Kube, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    last: tuple[int, Any] = (0, "no worker answered")
    for pod in kube.workers():
        if not pod.status.pod_ip:
            continue
        try:
            return kube.connect(pod, method, path, body)
        except OSError as e:
            last = (0, str(e))
    return last


def statuses(kube: Kube) -> dict[str, Any]:
    status, body = any_connect(kube, "GET", "/connectors?expand=status")
    assert status == 200 or status == 0 or status >= 500, (status, body)
    return {name: v["status"] for name, v in body.items()} if status == 200 else {}


def config(kube: Kube, name: str) -> dict[str, str] | None:
    status, body = any_connect(kube, "GET", f"/connectors/{name}/config")
    return body if status == 200 else None


def all_running(kube: Kube, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The statuses of `names` when each connector and every task of it is RUNNING on a live worker, else None."""
    live = {kube.worker_id(p) for p in kube.workers() if p.status.pod_ip}
    st = statuses(kube)
    for name in names:
        s = st.get(name)
        if not s or s["connector"]["state"] != "RUNNING" or s["connector"]["worker_id"] not in live:
            return None
        if not s["tasks"] or any(t["state"] != "RUNNING" or t["worker_id"] not in live for t in s["tasks"]):
            return None
    return {n: st[n] for n in names}


def placement(st: dict[str, Any]) -> dict[str, list[str]]:
    """worker id -> the units (connector, connector-task) it runs."""
    out: dict[str, list[str]] = {}
    for name, s in st.items():
        out.setdefault(s["connector"]["worker_id"], []).append(name)
        for t in s["tasks"]:
            out.setdefault(t["worker_id"], []).append(f"{name}-{t['id']}")
    return out


def tasks_on(st: dict[str, Any], worker_id: str) -> list[str]:
    return [f"{n}-{t['id']}" for n, s in st.items() for t in s["tasks"] if t["worker_id"] == worker_id]


def writes(kube: Kube, names: tuple[str, ...]) -> dict[str, Counter[str]]:
    return {n: Counter(kube.write_requests(n)) for n in names}


def new_writes(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> dict[str, list[str]]:
    """The writes in `after` that `before` did not hold (the request logs only grow while the pods live)."""
    return {n: sorted((after[n] - before.get(n, Counter())).elements()) for n in after}


def pod_file(kube: Kube, pod: Any, path: str) -> list[str] | None:
    """The lines of a file in the pod's Connect container (None when it does not exist)."""
    ws = stream(kube.core.connect_get_namespaced_pod_exec, pod.metadata.name, kube.ns, container="connect",
                command=["sh", "-c", f'if [ -e {path} ]; then cat {path}; else echo "{MISSING}"; fi'],
                stderr=False, stdin=False, stdout=True, tty=False, _preload_content=False)
    try:
        ws.run_forever(timeout=30)
        out = str(ws.read_stdout(timeout=1) or "")
    finally:
        # Its TLS socket closed here: once the API server has ended the exec, websocket-client's close() returns
        # without closing it (not connected any more), and the leak is a ResourceWarning, an error under pytest.
        ws.close()
        ws.sock.shutdown()
    return None if out.strip() == MISSING else out.splitlines()


def files(kube: Kube, path: str) -> dict[str, list[str] | None]:
    return {p.metadata.name: pod_file(kube, p, path) for p in kube.workers()}


def fingerprint(kube: Kube) -> dict[str, tuple[str, dict[str, int]]]:
    """pod name -> (uid, restart counts): a pod roll or a container restart changes it."""
    return {p.metadata.name: (p.metadata.uid, kube.restarts(p.metadata.name)) for p in kube.workers()}


def events_naming(kube: Kube, since: datetime, text: str) -> list[str]:
    """'reason (source): message' of the namespace's events since `since` whose message names `text`."""
    out = []
    for e in kube.core.list_namespaced_event(kube.ns).items:
        when = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
        if when is not None and when >= since and text in (e.message or ""):
            src = e.reporting_component or (e.source.component if e.source else "") or ""
            out.append(f"{e.reason} ({src}, {e.involved_object.kind} {e.involved_object.name}): {e.message}")
    return out


def revision(name: str = RELEASE) -> int:
    return int(json.loads(helm("status", name, "--namespace", NAMESPACE, "-o", "json"))["version"])


def now() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)  # events have a 1 s resolution


# ---- the release
@pytest.fixture(scope="module")
def life(cluster: Any, install: Install) -> Iterator[Kube]:
    kube = Kube(cluster.lay.kubeconfig, NAMESPACE)
    kube.ensure_namespace()
    try:
        install(RELEASE, NAMESPACE, "-f", str(LIFE_VALUES))
        kube.wait_workers_ready(2)
        wait_for(lambda: all_running(kube, DECLARED), 120, f"{DECLARED} RUNNING after the install")
        yield kube
    finally:
        kube.report("the lifecycle release at the end")
        helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "2m", check=False)
        kube.delete_namespace()


@pytest.fixture
def upgrade(install: Install) -> Any:
    """`helm upgrade --wait --wait-for-jobs` of the release with values-lifecycle.yaml and `extra`."""
    def run(*extra: str) -> None:
        install(RELEASE, NAMESPACE, "-f", str(LIFE_VALUES), *extra)
    return run


@pytest.fixture(autouse=True)
def _timing(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    print(f"{request.node.name}: {time.monotonic() - t0:.0f}s", flush=True)


def scale_step(kube: Kube, apps: Any, deployment: str, replicas: int) -> None:
    """`kubectl scale` to `replicas`, then every declared unit RUNNING on a live worker within the rebalance delay
    (plus slack) of the step's end: the new pod Ready, holding a task; or the removed pod gone."""
    old = {p.metadata.name for p in kube.workers()}
    print(f"$ kubectl scale deployment/{deployment} --replicas={replicas}", flush=True)
    t0 = time.monotonic()
    apps.patch_namespaced_deployment_scale(deployment, NAMESPACE, {"spec": {"replicas": replicas}})
    pods = kube.wait_workers_ready(replicas, timeout=240)
    added = [p for p in pods if p.metadata.name not in old]
    gone = old - {p.metadata.name for p in pods}

    def all_gone() -> bool:
        listed: list[Any] = kube.core.list_namespaced_pod(NAMESPACE, label_selector=WORKERS).items
        return not gone & {p.metadata.name for p in listed}
    wait_for(all_gone, 60, f"{sorted(gone)} gone")
    print(f"step done {time.monotonic() - t0:.0f}s after the scale: added {[p.metadata.name for p in added]}, "
          f"gone {sorted(gone)}", flush=True)

    def settled() -> Any:
        st = all_running(kube, DECLARED)
        return st and all(tasks_on(st, kube.worker_id(p)) for p in added) and st
    t1 = time.monotonic()
    st = wait_for(settled, REBALANCE_DELAY + STEP_SLACK,
                  f"every declared unit RUNNING on the {replicas} live workers" + (", one on the new" if added else ""))
    print(f"{replicas} workers: every connector and task RUNNING {time.monotonic() - t1:.1f}s after the step "
          f"(rebalance delay {REBALANCE_DELAY:.0f}s): {placement(st)}", flush=True)


def test_scale_2_3_2_without_liveness_failures(life: Kube) -> None:
    """Issue 20, scenario 6: `kubectl scale` of the Deployment 2 -> 3 -> 2: no liveness failure in the namespace's
    events, and after each step (the new pod Ready; the removed pod gone) every declared connector and task RUNNING
    on a live worker within the rebalance delay (scheduled.rebalance.max.delay.ms, 10 s here) plus slack; on
    scale-up the new worker takes a task (3 tasks, 3 workers), so the step is a real rebalance."""
    kube = life
    apps = client.AppsV1Api(kube.api_client)
    found: list[Any] = apps.list_namespaced_deployment(NAMESPACE, label_selector=WORKERS).items
    deployment = str(found[0].metadata.name)
    since = now()
    try:
        kube.wait_workers_ready(2)
        wait_for(lambda: all_running(kube, DECLARED), 120, "all RUNNING before scaling")
        scale_step(kube, apps, deployment, 3)
        scale_step(kube, apps, deployment, 2)
        failures = kube.probe_failures_since(since)
        print(f"liveness probe failures in the namespace since the first scale: {failures}")
        assert failures == []
    finally:
        kube.report("scenario 6: scale 2 -> 3 -> 2")
        if len(kube.workers()) != 2:
            apps.patch_namespaced_deployment_scale(deployment, NAMESPACE, {"spec": {"replicas": 2}})
            kube.wait_workers_ready(2)


def test_rollback_restores_the_earlier_connector_config(life: Kube, upgrade: Any) -> None:
    """Issue 20, scenario 1: `helm upgrade` changing sink-two's topic, then `helm rollback` to the revision before:
    the workers hold sink-two's earlier config again (the apply hook runs on post-rollback), and sink-ok, the same in
    both revisions, gets no write across the upgrade and the rollback (the workers' request logs)."""
    kube = life
    try:
        kube.wait_workers_ready(2)
        before = revision()
        cfg0 = config(kube, "sink-two")
        assert cfg0 and cfg0["topics"] == "life-two", cfg0
        logged = writes(kube, DECLARED)
        upgrade("--set", "connectors.sink-two.config.topics=life-two-v2")
        cfg1 = config(kube, "sink-two")
        print(f"revision {revision()}: sink-two's topics {cfg1 and cfg1['topics']}")
        assert cfg1 and cfg1["topics"] == "life-two-v2", cfg1
        helm("rollback", RELEASE, str(before), "--namespace", NAMESPACE, "--wait", "--wait-for-jobs",
             "--timeout", "4m")
        cfg2 = config(kube, "sink-two")
        print(f"after `helm rollback {RELEASE} {before}` (now revision {revision()}): sink-two's topics "
              f"{cfg2 and cfg2['topics']}")
        assert cfg2 == cfg0, f"the rollback left the workers with {cfg2}, not revision {before}'s {cfg0}"
        got = new_writes(logged, writes(kube, DECLARED))
        print(f"writes in the workers' request logs during the upgrade and the rollback: {got}")
        assert sum(w.split(": ", 1)[1].startswith("PUT /connectors/sink-two/config ") for w in got["sink-two"]) == 2
        assert got["sink-ok"] == [], "a connector the same in both revisions was written"
        wait_for(lambda: all_running(kube, DECLARED), 120, "all RUNNING after the rollback")
    finally:
        kube.report("scenario 1: upgrade then rollback")


def test_apply_reaches_unready_workers_without_a_pod_roll(life: Kube, upgrade: Any, chart: list[str]) -> None:
    """Issue 20, scenario 3: a critical sink failing on both workers (5 tasks beside the 3 others: each worker runs
    at least one) makes both pods unready; a values-only `helm upgrade` fixing its file is applied through the
    apply Service (publishNotReadyAddresses) though no pod is Ready, both pods turn Ready, and no pod rolled or
    restarted (same pod UIDs and restart counts; liveness is lenient in values-lifecycle.yaml for this).

    That fixing upgrade runs without `--wait`: Helm runs post-upgrade hooks only after `--wait` saw the Deployment
    ready, which unready pods never are, so with `--wait` no hook can fix them (the Job never starts)."""
    kube = life
    name = "sink-critical"
    try:
        pods = kube.wait_workers_ready(2)
        upgrade("--set-json", f"connectors.{name}={json.dumps({'config': sink('life-critical', BROKEN_FILE, 5)})}")

        def both_unready() -> Any:
            pods = kube.workers()
            return len(pods) == 2 and not any(kube.ready(p) for p in pods) and pods
        pods = wait_for(both_unready, 150, "both workers unready for the failing critical connector", interval=2)
        for p in pods:
            print(f"{p.metadata.name}: Ready={kube.ready(p)} /readyz {kube.sidecar(p, '/readyz')}")
        seen = fingerprint(kube)
        slices = client.DiscoveryV1Api(kube.api_client).list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={RELEASE}-kafka-connect-apply").items
        print("endpoints of the apply Service: " + str([(e.addresses, e.conditions and e.conditions.ready)
                                                         for s in slices for e in (s.endpoints or [])]))
        t0 = time.monotonic()
        helm("upgrade", RELEASE, *chart, "--namespace", NAMESPACE, "-f", str(E2E_VALUES), "-f", str(LIFE_VALUES),
             "--set", f"bootstrapServers={kcluster.NODE_IP}:9092", "--set", f"groupId={GROUP}",  # as `install`
             "--set-json", f"connectors.{name}={json.dumps({'config': sink('life-critical', '/tmp/crit.txt', 5)})}",
             "--timeout", "4m")
        print(f"the fixing upgrade (its apply Job included) took {time.monotonic() - t0:.0f}s", flush=True)
        cfg = config(kube, name)
        assert cfg and cfg["file"] == "/tmp/crit.txt", cfg
        pods = kube.wait_workers_ready(2, timeout=180)
        print(f"both workers Ready {time.monotonic() - t0:.0f}s after the fixing upgrade began")
        after = fingerprint(kube)
        print(f"pods (uid, restarts) while unready: {seen}; after: {after}")
        assert after == seen, "a pod rolled or a container restarted"
        wait_for(lambda: all_running(kube, (*DECLARED, name)), 120, f"{name} RUNNING")
    finally:
        kube.report("scenario 3: a critical connector failing on both workers, fixed by a values-only upgrade")
        any_connect(kube, "DELETE", f"/connectors/{name}")


def test_declared_stopped_is_created_stopped_and_consumes_nothing(life: Kube, upgrade: Any, broker: Any,
                                                                  tmp_path: Path) -> None:
    """Issue 20, scenario 2: a sink declared `stopped` on a topic already holding 100 records: created STOPPED
    (Kafka >= 3.7's `initial_state`), no task ever ran (its file never created, no write to its config), and its
    consumer group never existed on the broker (Kafka's admin client, after an offset flush interval)."""
    kube = life
    name, topic, path = "sink-stopped", "life-stopped", "/tmp/life-stopped.txt"
    try:
        produce(broker, tmp_path, topic, "stopped", 100)
        declared = {"config": sink(topic, path), "state": "stopped"}
        upgrade("--set-json", f"connectors.{name}={json.dumps(declared)}")
        st = statuses(kube).get(name)
        print(f"{name} after the apply: {st}")
        assert st and st["connector"]["state"] == "STOPPED" and st["tasks"] == [], st
        time.sleep(6)  # workerConfig offset.flush.interval.ms 5 s: a task that ran would have committed by now
        got = {pod: lines for pod, lines in files(kube, path).items()}
        groups = consumer_groups(broker, tmp_path)
        logged = kube.write_requests(name)
        print(f"{path} in each pod (None: never created): {got}")
        print(f"consumer groups on the broker: {sorted(groups)}")
        print(f"writes to {name} in the workers' request logs: {logged}")
        assert all(lines is None for lines in got.values()), "a task of the stopped sink ran"
        assert f"{GROUP}-{name}" not in groups and f"connect-{name}" not in groups, groups
        assert not any(f"PUT /connectors/{name}/config" in w for w in logged), "created running, then stopped"
    finally:
        kube.report("scenario 2: a sink declared stopped")


def test_offsets_reset_replays_the_topic_into_a_filestream_sink(life: Kube, upgrade: Any, broker: Any,
                                                               tmp_path: Path) -> None:
    """Issue 20, scenario 5: sink-ok has written a topic's 20 records to its file; a declared offsets reset
    (`offsets: {request, action: reset}`, values only) makes its file receive the same records again from the
    first, in order; the request is recorded in the requests ConfigMap, and the same request in the next upgrade
    does nothing (one DELETE .../offsets in the request logs)."""
    kube = life
    name, topic, path = "sink-ok", "life-ok", "/tmp/life-ok.txt"
    request = ["--set", f"connectors.{name}.offsets.request=replay-1",
               "--set", f"connectors.{name}.offsets.action=reset"]
    try:
        records = produce(broker, tmp_path, topic, "replay", 20)

        def each_at_least(n: int) -> Any:
            got = files(kube, path)
            seen = Counter(line for lines in got.values() for line in lines or [])
            return all(seen[r] >= n for r in records) and got
        before = wait_for(lambda: each_at_least(1), 90, f"the 20 records in {path}")
        print(f"{path} before the reset, lines per pod: { {p: len(v or []) for p, v in before.items()} }")
        upgrade(*request)
        after = wait_for(lambda: each_at_least(2), 90, f"the 20 records in {path} a second time")
        replay = {p: (v or [])[len(before.get(p) or []):] for p, v in after.items()}
        print(f"{path} lines added per pod after the reset: {replay}")
        assert records in replay.values(), "no pod's file received the topic again from its first record, in order"
        cm = kube.core.read_namespaced_config_map(f"{RELEASE}-kafka-connect-connector-requests", NAMESPACE)
        print(f"requests ConfigMap: {cm.data}")
        assert "replay-1" in json.loads((cm.data or {})[name])
        upgrade(*request)
        # (a request the worker forwarded to the leader is logged again there, with ?forward=: one request)
        resets = [w for w in kube.write_requests(name) if "/offsets" in w.split(" ")[2] and "forward=" not in w]
        print(f"offsets writes to {name} after the same request was upgraded again: {resets}")
        assert [w.split(" ")[1] for w in resets] == ["DELETE"], resets
        wait_for(lambda: all_running(kube, DECLARED), 120, "all RUNNING after the reset")
    finally:
        kube.report("scenario 5: offsets reset of a FileStream sink")


def test_reconcile_restores_hand_changes_and_posts_events(life: Kube, upgrade: Any) -> None:
    """Issue 20, scenario 4: with `connectorsReconcile.enabled` (the pods roll: the sidecar's environment), a
    config changed by hand (sink-two's topic) and a connector deleted by hand (sink-ok) are restored to their
    declarations by the sidecar holding the Lease, and a ConnectorReconciled Event names each."""
    kube = life
    try:
        # A drift is corrected once it lasted --reconcile-after (90 s by default, longer than the kubelet takes to
        # update a mounted ConfigMap): 5 s here, where nothing changes the ConfigMap during the scenario.
        upgrade("--set", "connectorsReconcile.enabled=true",
                "--set", "healthcheck.extraEnv.CONNECT_HEALTH_RECONCILE_AFTER=5")
        kube.wait_workers_ready(2)
        wait_for(lambda: all_running(kube, DECLARED), 120, "all RUNNING with reconcile on")
        declared = {n: config(kube, n) for n in DECLARED}
        since = now()
        by_hand = {k: v for k, v in (declared["sink-two"] or {}).items() if k != "name"} | {"topics": "life-by-hand"}
        assert any_connect(kube, "PUT", "/connectors/sink-two/config", by_hand)[0] == 200
        assert any_connect(kube, "DELETE", "/connectors/sink-ok")[0] == 204
        t0 = time.monotonic()
        print(f"sink-two's topics set to life-by-hand and sink-ok deleted, by hand: {statuses(kube).keys()}")
        wait_for(lambda: all(config(kube, n) == declared[n] for n in DECLARED), 120,
                 "both hand changes undone", interval=2)
        print(f"both restored {time.monotonic() - t0:.0f}s after the hand changes")

        def told() -> Any:
            evs = {n: [e for e in events_naming(kube, since, n) if e.startswith("ConnectorReconciled ")]
                   for n in DECLARED}
            return all(evs.values()) and evs
        evs = wait_for(told, 30, "an Event naming each restored connector")
        for n, found in evs.items():
            print(f"events naming {n}: {found}")
        wait_for(lambda: all_running(kube, DECLARED), 120, "all RUNNING after the corrections")
    finally:
        kube.report("scenario 4: drift corrected by the sidecar")
