"""Fixtures of the observability tests: a real Kafka broker and Connect worker, a real `connect-health serve`, and a
real Prometheus (built by `make tools`) scraping it with the chart's own alerting rules loaded.

`live` (session) plays one scenario on that stack and records when each phase was in Prometheus:

- healthy:    a critical sink (obs-crit) and a best-effort sink (obs-be, --best-effort) RUNNING; a declared
              connector that does not exist (drift);
- restarting: both sinks' output directories removed and their tasks restarted: they FAIL and the ladder restarts
              them (connect_health_connector_failed 0);
- failed:     the ladder gave up (connect_health_connector_failed 1 for both);
- healed:     the directories back, the tasks restarted by hand: RUNNING again;
- unreachable: the worker frozen (SIGSTOP) until the sidecar reports connect_health_worker_reachable 0.

Prometheus runs with the rules' `for:` shortened to 2s, so the alerts go pending -> firing -> resolved within the
scenario; every change of /api/v1/alerts is in `live.alert_log`. Tests read the series of a phase back from
Prometheus (`live.series(phase)`): those are what the sidecar really exported, with the labels Prometheus added.

A missing JDK, Kafka jars, helm or prometheus make the fixture fail (never skip), with one line saying what to run.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import launcher
import pytest
import yaml
from chart.render import NAMESPACE
from launcher.prometheus import Prometheus, ScrapeTarget
from stackcheck import fail_on_stack_error

from .rulekit import JOB, POD, Series, chart_rules

HERE = Path(__file__).resolve().parent
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
CRITICAL, BEST_EFFORT, DECLARED_MISSING = "obs-crit", "obs-be", "obs-declared-missing"
LIVE_FOR = "2s"  # the rules' pending period in the live Prometheus (the promtool tests use the chart's own)
SIDECAR_FLAGS = ("--poll-interval", "0.5", "--request-timeout", "2", "--restart-attempts", "2",
                 "--restart-backoff", "2", "--restart-reset", "300", "--best-effort", f"^{BEST_EFFORT}$")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """These tests need a real broker and worker: they count as integration tests (`-m "not integration"`)."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class Live:
    stack: launcher.Stack
    sidecar: launcher.Sidecar
    prometheus: Prometheus
    phases: dict[str, float] = field(default_factory=dict)  # phase -> a Unix time it held in Prometheus
    alert_log: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, alert, connector/pod, state)

    def series(self, phase: str) -> list[Series]:
        """The sidecar's series as Prometheus held them during phase (its own `up` and scrape_* left out)."""
        data = self.prometheus.api("query", query=f'{{job="{JOB}", __name__=~"connect_health_.*"}}',
                                   time=f"{self.phases[phase]:.3f}")
        return [Series.of(r["metric"], float(r["value"][1])) for r in data["result"]]

    def exported(self) -> dict[str, dict[str, set[str]]]:
        """metric -> label -> values, over every phase: everything the sidecar was seen to export."""
        out: dict[str, dict[str, set[str]]] = {}
        for phase in self.phases:
            for s in self.series(phase):
                labels = out.setdefault(s.name, {})
                for k, v in s.labels:
                    if k != "__name__":
                        labels.setdefault(k, set()).add(v)
        return out

    def query_at(self, expr: str, phase: str) -> list[dict[str, Any]]:
        data = self.prometheus.api("query", query=expr, time=f"{self.phases[phase]:.3f}")
        return list(data["result"])

    def states(self, alert: str) -> list[str]:
        """The states alert went through (consecutive repeats collapsed; 'inactive' when it left /api/v1/alerts)."""
        out: list[str] = []
        for _, name, _, state in self.alert_log:
            if name == alert and (not out or out[-1] != state):
                out.append(state)
        return out


class AlertWatcher:
    """Polls /api/v1/alerts every 0.25 s and logs each change of an alert's state (bounded by `limit` seconds)."""

    def __init__(self, prom: Prometheus, log: list[tuple[float, str, str, str]], limit: float = 900.0) -> None:
        self.prom, self.log, self.limit = prom, log, limit
        self.current: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="alert-watcher")

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                alerts = self.prom.alerts()
            except (OSError, launcher.StackError):
                alerts = None
            if alerts is not None:
                now = time.time()
                seen = {(a["labels"]["alertname"], a["labels"].get("connector") or a["labels"].get("pod", "")):
                        str(a["state"]) for a in alerts}
                for key in sorted(set(seen) | set(self.current)):
                    state = seen.get(key, "inactive")
                    if self.current.get(key, "inactive") != state:
                        self.log.append((now, key[0], key[1], state))
                self.current = seen
            self._stop.wait(0.25)

    def firing(self, alert: str, who: str) -> bool:
        return self.current.get((alert, who)) == "firing"

    def __enter__(self) -> AlertWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _value(prom: Prometheus, expr: str) -> float | None:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def _wait_value(prom: Prometheus, expr: str, want: float, timeout: float, what: str) -> None:
    launcher.wait_until(lambda: _value(prom, expr) == want, timeout, what, interval=0.25)


def _restart_task(worker: launcher.Worker, name: str) -> None:
    status, body = worker.request("POST", f"/connectors/{name}/tasks/0/restart", timeout=10)
    assert status in (200, 202, 204), (name, status, body)


@pytest.fixture(scope="session")
def live_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's rules with every `for:` at LIVE_FOR, as a rule file."""
    spec = chart_rules({"alerts": {a: {"for": LIVE_FOR} for a in ("connectorFailed", "workerUnreachable",
                                                                  "restartRate")}})
    path = tmp_path_factory.mktemp("live-rules") / "rules.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, live_rules: Path) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("observability")
    fail_on_stack_error("Java for the live stack", lambda: launcher.require_java(launcher.KAFKA_VERSION))
    fail_on_stack_error("Kafka for the live stack", lambda: launcher.require_fetched(launcher.KAFKA_VERSION))
    stack = launcher.Stack(workdir, launcher.KAFKA_VERSION)
    declared = workdir / "declared.yaml"  # a declared connector nobody created: the drift series
    declared.write_text(json.dumps({DECLARED_MISSING: {"config": {"connector.class": SINK, "tasks.max": 1,
                                                                  "topics": "obs-none",
                                                                  "file": str(workdir / "none.txt")}}}))
    sidecar = stack.add(launcher.Sidecar(workdir, stack.connect_url,
                                         [*SIDECAR_FLAGS, "--connectors-file", str(declared)]))
    prom = stack.add(Prometheus(workdir, [ScrapeTarget(JOB, sidecar.url, {"namespace": NAMESPACE, "pod": POD})],
                                [live_rules]))
    fail_on_stack_error("the live stack (broker, worker, sidecar, Prometheus)", stack.start)
    live = Live(stack, sidecar, prom)
    try:
        with AlertWatcher(prom, live.alert_log) as watcher:
            _play(live, watcher, workdir)
        yield live
    finally:
        stack.stop()


def _play(live: Live, watcher: AlertWatcher, workdir: Path) -> None:
    prom, worker = live.prometheus, live.stack.worker
    dirs = {CRITICAL: workdir / "crit", BEST_EFFORT: workdir / "be"}
    for name, d in dirs.items():
        d.mkdir()
        worker.put_connector(name, {"connector.class": SINK, "tasks.max": "1", "topics": f"{name}-topic",
                                    "file": str(d / "out.txt")}, timeout=60)
    for name in dirs:
        worker.wait_connector_state(name, "RUNNING", tasks=1, timeout=90)
        _wait_value(prom, f'connect_health_task_state{{connector="{name}", state="RUNNING"}}', 1, 60,
                    f"Prometheus to scrape {name} RUNNING")
    live.phases["healthy"] = time.time()

    # Break: the sinks cannot open their files once their tasks start again.
    for name, d in dirs.items():
        shutil.rmtree(d)
        _restart_task(worker, name)
    _wait_value(prom, f'connect_health_connector_failed{{connector="{CRITICAL}"}}', 0, 60,
                "Prometheus to scrape the critical sink FAILED while the ladder restarts it")
    live.phases["restarting"] = time.time()
    for name in dirs:
        _wait_value(prom, f'connect_health_connector_failed{{connector="{name}"}}', 1, 60,
                    f"Prometheus to scrape {name} failed past the ladder")
    launcher.wait_until(lambda: watcher.firing("KafkaConnectConnectorFailed", CRITICAL), 30,
                        "KafkaConnectConnectorFailed to fire for the critical sink")
    time.sleep(2)  # the best-effort sink has had its chance to (wrongly) fire too
    live.phases["failed"] = time.time()

    # Heal: the directories come back and the tasks are restarted by hand (the ladder has given up).
    for name, d in dirs.items():
        d.mkdir()
        _restart_task(worker, name)
    for name in dirs:
        worker.wait_connector_state(name, "RUNNING", tasks=1, timeout=60)
    launcher.wait_until(lambda: not prom.query('ALERTS{alertname="KafkaConnectConnectorFailed"}'), 60,
                        "KafkaConnectConnectorFailed to resolve")
    live.phases["healed"] = time.time()

    # Unreachable: the worker frozen until the sidecar says so and the alert fires; then thawed.
    worker.pause()
    try:
        _wait_value(prom, "connect_health_worker_reachable", 0, 60, "Prometheus to scrape the worker unreachable")
        launcher.wait_until(lambda: watcher.firing("KafkaConnectWorkerUnreachable", POD), 30,
                            "KafkaConnectWorkerUnreachable to fire")
        live.phases["unreachable"] = time.time()
    finally:
        worker.resume()
    _wait_value(prom, "connect_health_worker_reachable", 1, 90, "the sidecar to reach the worker again")
    launcher.wait_until(lambda: not prom.query('ALERTS{alertname="KafkaConnectWorkerUnreachable"}'), 60,
                        "KafkaConnectWorkerUnreachable to resolve")
    time.sleep(0.5)  # the watcher logs the resolution
