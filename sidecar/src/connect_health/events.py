"""Kubernetes Events on the sidecar's own pod, so that `kubectl describe pod` tells the story.

A poller observer (``EventObserver``) compares each View with the one before and says, once per change:

- ``ConnectorRestarted`` (Normal): the ladder sent a restart of a connector (one per restart requested), with the
  failure class of what it restarts;
- ``ConnectorNeedsAction`` (Warning): a connector's failure survived its one restart and is of a class only a person
  fixes (credentials, configuration, data: failures.py), with the hint of what to do; once per connector and class;
- ``LivenessFailing`` (Warning): /livez turned 503, with its reasons;
- ``TaskStalled`` (Warning): a RUNNING task turned stalled (lag above zero, no progress for --stall-after:
  progress.py), and ``TaskProgressing`` (Normal) when it is no longer;
- ``ConnectRestarted`` (Normal): a new Connect worker incarnation is seen (the kubelet restarted the container, or
  it restarted by itself), with how it was told;
- ``LivenessRecovered`` (Normal): /livez answers 200 again about a worker that is up. While Connect is gone (its
  port refuses connections) or starting, liveness holds by design: that is no recovery, so nothing is said then, and
  the moment the kubelet kills Connect is never reported as one.

Where it says so is an ``emit(type, reason, message)`` callable: ``log_event`` (the default: a log line only), or
``KubeEvents`` (``--kubernetes-events``), which also POSTs a core/v1 Event to the API server with the pod's
service-account token (the chart's ``rbac.events`` grants `create` on events in the namespace). Posting runs on its
own thread behind a bounded queue: a slow or refusing API server never delays a poll, and a failure is one log line.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import kubeapi
from .kubeapi import SERVICE_ACCOUNT
from .poller import View
from .redact import redact

log = logging.getLogger("connect_health.events")

Emit = Callable[[str, str, str], None]  # (type: Normal|Warning, reason, message)

COMPONENT = "connect-health"
MAX_MESSAGE = 1024  # Kubernetes truncates event messages; ours stay short and whole


def log_event(type_: str, reason: str, message: str) -> None:
    """The log-only emitter (events off, or no API server): one line per event."""
    log.log(logging.WARNING if type_ == "Warning" else logging.INFO, "event %s %s: %s", type_, reason, message)


class EventObserver:
    """A poller observer turning changes between Views into events (the first View only sets the baseline)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self._restarts: Mapping[tuple[str, str], int] | None = None
        self._live: bool | None = None
        self._incarnation: int | None = None
        self._stalled: set[tuple[str, int]] | None = None
        self._needs_action: set[tuple[str, str]] | None = None

    def __call__(self, view: View) -> None:
        stalled = view.observation.stalled
        if self._stalled is not None:
            for (name, task), (seconds, detail) in sorted(stalled.items()):
                if (name, task) not in self._stalled:
                    self.emit("Warning", "TaskStalled", f"connector {name} task {task} is RUNNING without progress: "
                              f"{detail}, nothing read for {seconds:.0f}s; its restart ladder starts")
            for name, task in sorted(self._stalled - set(stalled)):
                self.emit("Normal", "TaskProgressing", f"connector {name} task {task} is no longer stalled")
        self._stalled = set(stalled)
        before = self._restarts
        self._restarts = dict(view.restarts)
        if before is not None:
            for (name, outcome), n in sorted(view.restarts.items()):
                if outcome == "requested" and n > before.get((name, outcome), 0):
                    cls = view.report.classes.get(name)
                    self.emit("Normal", "ConnectorRestarted",
                              f"connect-health restarted connector {name} (its failed or stalled tasks only), restart "
                              f"{n} sent by its ladder" + (f"; failure class {cls}" if cls else ""))
        needing = {(name, view.report.classes.get(name, "unknown")) for name in view.report.needs_action}
        for name, cls in sorted(needing - (self._needs_action or set())):
            hint = next((r.hint for r in view.report.rows if r.connector == name and r.cls == cls and r.hint), "")
            self.emit("Warning", "ConnectorNeedsAction",
                      f"connector {name} FAILED with a {cls} failure that no restart fixes (no pod restart for it): "
                      f"{hint}")
        self._needs_action = needing
        if self._incarnation is not None and view.incarnation > self._incarnation:
            self.emit("Normal", "ConnectRestarted",
                      f"a new Connect worker is running in this pod: {view.incarnation_reason or 'restarted'}")
        self._incarnation = view.incarnation
        if not view.observation.started or view.observation.down:
            return  # Connect is gone or starting: liveness holds by design, which is neither failing nor recovered
        live = view.report.livez.ok
        if self._live is not None and live != self._live:
            if live:
                self.emit("Normal", "LivenessRecovered", "connect-health /livez answers 200 again")
            else:
                reasons = "; ".join(view.report.livez.reasons) or "no reason given"
                self.emit("Warning", "LivenessFailing",
                          f"connect-health /livez answers 503, so the kubelet restarts the Connect container: "
                          f"{reasons}")
        self._live = live


@dataclass(frozen=True)
class PodRef:
    """The pod the events are about (downward API: POD_NAME, POD_NAMESPACE, POD_UID)."""

    name: str
    namespace: str
    uid: str = ""


class KubeEvents:
    """POSTs core/v1 Events about ``pod`` to the API server at ``api_url`` with the bearer token in ``token_file``
    (re-read for each event: projected tokens rotate), checking TLS against ``ca_file``. Every event is also logged.
    """

    def __init__(self, api_url: str, pod: PodRef, token_file: str, ca_file: str | None, *,
                 timeout: float = 5.0, max_queued: int = 100,
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self.api_url = api_url.rstrip("/")
        self.pod = pod
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout
        # the API server is reached directly (never through an http(s)_proxy), TLS checked against ca_file
        self.transport = kubeapi.ApiServer(self.api_url, token_file, ca_file).transport(timeout)
        self.clock = clock
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
        self._thread.start()

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ,
                         account_dir: str = SERVICE_ACCOUNT) -> KubeEvents:
        """In a pod: the API server from KUBERNETES_SERVICE_HOST/PORT, the pod from POD_NAME/POD_NAMESPACE/POD_UID
        (the namespace file of the service account when POD_NAMESPACE is unset). ValueError names what is missing."""
        flag = "--kubernetes-events"
        url = kubeapi.api_url(env, flag)
        name = env.get("POD_NAME")
        if not name:
            raise ValueError(f"{flag} needs POD_NAME (the chart sets it from the downward API)")
        namespace = kubeapi.namespace(env, account_dir, "POD_NAMESPACE")
        if not namespace:
            raise ValueError(f"{flag} needs POD_NAMESPACE or the service account's namespace file")
        token, ca = kubeapi.credentials(account_dir, flag)
        return cls(url, PodRef(name, namespace, env.get("POD_UID", "")), token, ca)

    def event(self, type_: str, reason: str, message: str) -> dict[str, Any]:
        """The core/v1 Event object for one emit."""
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "name": self.pod.name,
                                    "namespace": self.pod.namespace, "fieldPath": f"spec.containers{{{COMPONENT}}}"}
        if self.pod.uid:
            involved["uid"] = self.pod.uid
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{self.pod.name}.", "namespace": self.pod.namespace},
                "involvedObject": involved, "type": type_, "reason": reason,
                "message": redact(message)[:MAX_MESSAGE], "count": 1, "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
                "reportingInstance": self.pod.name}

    def __call__(self, type_: str, reason: str, message: str) -> None:
        log_event(type_, reason, message)
        try:
            self._queue.put_nowait(self.event(type_, reason, message))
        except queue.Full:
            self.failed += 1
            log.warning("event %s not sent: %d events already wait for the API server", reason, self._queue.qsize())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until every queued event was sent or given up on; True when the queue is empty."""
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._post(body)
            finally:
                self._queue.task_done()

    def _post(self, body: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{self.pod.namespace}/events"
        try:
            resp = kubeapi.call(self.transport, self.token_file, "POST", path, body)
        except kubeapi.UNREACHABLE as e:
            self.failed += 1
            log.warning("event %s not sent to the API server: %s", body["reason"], kubeapi.failure(e))
            return
        if resp.status in (200, 201):
            self.sent += 1
            return
        self.failed += 1
        hint = " (the chart's rbac.events grants it)" if resp.status == 403 else ""
        log.warning("event %s refused by the API server: %d %s%s", body["reason"], resp.status,
                    redact(resp.text)[:200], hint)

