"""The cluster e2e's view of the cluster, through the Kubernetes API (the `kubernetes` client), and of each worker
pod's Connect and sidecar (their pod IPs are reachable from this host through the node's bridge).

Every wait is bounded in count and time; `report()` prints what the kubelet and the sidecars saw (restart counts,
events, /livez and /readyz answers, the sidecar's last log lines) so a failing scenario explains itself.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import launcher
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from launcher.worker import parse_request

ROOT = Path(__file__).resolve().parents[3]
KUBECONFIG = ROOT / ".tools" / "cluster" / "kubeconfig"
HELM = ROOT / ".tools" / "bin" / "helm3"
NAMESPACE = "e2e"
RELEASE = "kc"
WORKER_SELECTOR = "app.kubernetes.io/component=worker"
APPLY_SELECTOR = "app.kubernetes.io/component=connectors-apply"
CONNECT_PORT = 8083
SIDECAR_PORT = 8090
# `helm upgrade --install RELEASE NAMESPACE *extra` of the chart under test with the e2e values (conftest `install`).
Install = Callable[..., None]


def http_json(method: str, url: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    return launcher.http(method, url, body, timeout)


def helm(*args: str, timeout: float = 600, check: bool = True) -> str:
    cmd = [str(HELM), "--kubeconfig", str(KUBECONFIG), *args]
    print("$ helm " + " ".join(args), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"helm {args[0]} failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll until predicate() is truthy (returned); AssertionError naming `what` after timeout seconds. An
    AssertionError raised by the predicate ends the wait at once."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise  # the predicate saw something that must not happen: fail now, not at the timeout
        except Exception as e:  # noqa: BLE001 - not yet
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


class Kube:
    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.net = client.NetworkingV1Api(self.api_client)
        self.ns = namespace

    def plain(self, obj: Any) -> dict[str, Any]:
        """An API object as the plain camelCase dict of its YAML."""
        d: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return d

    # ---- namespace
    def ensure_namespace(self) -> None:
        try:
            self.core.read_namespace(self.ns)
        except ApiException as e:
            if e.status != 404:
                raise
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))

    def delete_namespace(self) -> None:
        try:
            self.core.delete_namespace(self.ns)
        except ApiException as e:
            if e.status != 404:
                raise

    # ---- pods
    def workers(self) -> list[Any]:
        pods: list[Any] = self.core.list_namespaced_pod(self.ns, label_selector=WORKER_SELECTOR).items
        return sorted((p for p in pods if p.metadata.deletion_timestamp is None), key=lambda p: p.metadata.name)

    @staticmethod
    def ready(pod: Any) -> bool:
        conds = {c.type: c.status for c in (pod.status.conditions or [])}
        return conds.get("Ready") == "True"

    def wait_workers_ready(self, count: int, timeout: float = 300) -> list[Any]:
        def ok() -> list[Any] | None:
            pods = self.workers()
            return pods if len(pods) == count and all(self.ready(p) for p in pods) else None
        result: list[Any] = wait_for(ok, timeout, f"{count} Ready worker pods", interval=2)
        return result

    def pod(self, name: str) -> Any:
        return self.core.read_namespaced_pod(name, self.ns)

    def restarts(self, name: str) -> dict[str, int]:
        """restartCount of each container of the pod."""
        pod = self.pod(name)
        return {s.name: s.restart_count for s in (pod.status.container_statuses or [])}

    def events(self, pod_name: str) -> list[tuple[str, str, int]]:
        """(reason, message, count) of the pod's events, oldest first."""
        evs: list[Any] = self.core.list_namespaced_event(self.ns,
                                                         field_selector=f"involvedObject.name={pod_name}").items
        evs.sort(key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp))
        return [(e.reason or "", e.message or "", e.count or 1) for e in evs]

    def probe_failures(self, pod_name: str, kind: str = "Liveness") -> list[str]:
        return [m for r, m, _ in self.events(pod_name) if r == "Unhealthy" and m.startswith(f"{kind} probe failed")]

    def probe_failures_since(self, since: datetime) -> list[str]:
        """'pod: message' of every liveness probe failure the kubelet reported in the namespace since `since`
        (pods that are gone included: a rolling update deletes the old ones, not their events)."""
        out = []
        for e in self.core.list_namespaced_event(self.ns).items:
            when = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
            if (e.reason == "Unhealthy" and (e.message or "").startswith("Liveness probe failed")
                    and when is not None and when >= since):
                out.append(f"{e.involved_object.name}: {e.message} (x{e.count or 1})")
        return out

    def write_requests(self, connector: str) -> list[str]:
        """PUT/POST/DELETE requests for `connector` in the request logs (logging.requestLogLevel INFO) of the
        current workers' Connect containers, the previous container's too where one was restarted."""
        path = re.compile(rf"/connectors/{re.escape(connector)}(/.*)?")
        found = []
        for pod in self.workers():
            for previous in (False, True):
                if previous and not self.restarts(pod.metadata.name).get("connect"):
                    continue
                for line in self.logs(pod.metadata.name, "connect", tail=-1, previous=previous).splitlines():
                    req = parse_request(line)
                    if req and req.method in ("PUT", "POST", "DELETE") and path.fullmatch(req.path.split("?")[0]):
                        found.append(f"{pod.metadata.name}: {req.method} {req.path} {req.status}")
        return found

    def logs(self, pod_name: str, container: str, tail: int = 20, previous: bool = False) -> str:
        try:
            text: str = self.core.read_namespaced_pod_log(pod_name, self.ns, container=container,
                                                          tail_lines=tail if tail >= 0 else None,
                                                          previous=previous)
            return text
        except ApiException as e:
            return f"(no logs: HTTP {e.status})"

    # ---- Connect and the sidecar of a pod, over the pod IP
    @staticmethod
    def connect(pod: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(method, f"http://{pod.status.pod_ip}:{CONNECT_PORT}{path}", body)

    @staticmethod
    def sidecar(pod: Any, path: str) -> tuple[int, Any]:
        return http_json("GET", f"http://{pod.status.pod_ip}:{SIDECAR_PORT}{path}")

    @staticmethod
    def worker_id(pod: Any) -> str:
        return f"{pod.status.pod_ip}:{CONNECT_PORT}"

    # ---- what the kubelet and the sidecars saw
    def report(self, title: str) -> None:
        print(f"\n===== {title}: what the kubelet and the sidecars saw =====", flush=True)
        for pod in self.workers():
            name = pod.metadata.name
            print(f"--- pod {name} ({pod.status.pod_ip}) Ready={self.ready(pod)} restarts={self.restarts(name)}")
            for reason, message, count in self.events(name):
                print(f"    event {reason} x{count}: {message}")
            for path in ("/livez", "/readyz"):
                try:
                    print(f"    sidecar {path}: {self.sidecar(pod, path)}")
                except OSError as e:
                    print(f"    sidecar {path}: no answer ({e})")
            for line in self.logs(name, "connect-health", tail=8).splitlines():
                print(f"    sidecar log: {line[:300]}")
        # The connectors apply hook Job's pods (a failed one stays: hook-delete-policy deletes only on success).
        apply_pods: list[Any] = self.core.list_namespaced_pod(self.ns, label_selector=APPLY_SELECTOR).items
        for pod in apply_pods:
            name = pod.metadata.name
            print(f"--- apply Job pod {name}: {pod.status.phase}")
            for line in self.logs(name, "apply", tail=30).splitlines():
                print(f"    apply log: {line[:300]}")
        print("=====", flush=True)
