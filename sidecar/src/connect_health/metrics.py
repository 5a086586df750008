"""Prometheus metrics, generated at scrape time from the poller's latest View.

Gauges come from the View, so a deleted connector's series disappear with it; restart counts are kept by the
poller and only grow (exported while the connector is shown on this pod). Each app has its own registry, so
several apps (tests) never collide.

Cardinality (issue 12): per-connector and per-task series exist only for the units this pod judges, i.e. the
units on this worker and the UNASSIGNED/RESTARTING ones anywhere (model.py judges those on every pod), one series
per unit (the current state: 1; other states have no series). The rest of the cluster is a few aggregate series
by state. Series per pod = U + F + R + D + S + 3 x 6 + 22, with U the units judged here, F the connectors with a
FAILED (or stalled) unit here, R the (connector, outcome) pairs of restarts sent from here, D the drifting declared
connectors, S the stalled tasks here (see the README, "Metrics").
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from .poller import View
from .snapshot import STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text exposition format

PREFIX = "connect_health"
PROBES = ("livez", "readyz", "startupz")
JUDGED_EVERYWHERE = ("transient", "stuck")  # verdicts of units judged on every pod, whichever worker they name


def number(value: float) -> str:
    """A sample value as Prometheus' own clients write it (Go's formatting): 1.0, 0.005, +Inf, 1.7965274e+09."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:  # 7 integer digits or more: an exponent, as Go and the official client write it
        digits = (text[:dot] + text[dot + 1:]).rstrip("0")
        mantissa = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits[0]
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Family:
    """One metric family: its samples, rendered in the text format (labels sorted by name, as the official client
    writes them)."""

    kind = "gauge"
    suffix = ""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self._order = sorted(range(len(self.labels)), key=lambda i: self.labels[i])
        self.samples: list[str] = []

    def add_metric(self, values: Sequence[str], value: float) -> None:
        if values:
            pairs = ",".join(f'{self.labels[i]}="{_label(values[i])}"' for i in self._order)
            self.samples.append(f"{self.name}{self.suffix}{{{pairs}}} {number(value)}\n")
        else:
            self.samples.append(f"{self.name}{self.suffix} {number(value)}\n")

    def render(self) -> str:
        doc = self.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        name = self.name + self.suffix
        return f"# HELP {name} {doc}\n# TYPE {name} {self.kind}\n" + "".join(self.samples)


class GaugeMetricFamily(Family):
    pass


class CounterMetricFamily(Family):
    kind = "counter"
    suffix = "_total"


class PollDuration:
    """The histogram of poll durations (and its _created series, as the official client writes one)."""

    name = f"{PREFIX}_poll_duration_seconds"
    help = "Duration of one poll of Connect"
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sum += seconds

    def render(self) -> str:
        with self._lock:
            counts, total = list(self._counts), self._sum
        lines = [f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n"]
        running = 0
        for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
            running += n
            lines.append(f'{self.name}_bucket{{le="{number(bound)}"}} {number(running)}\n')
        lines.append(f"{self.name}_count {number(running)}\n{self.name}_sum {number(total)}\n")
        lines.append(f"# HELP {self.name}_created {self.help}\n# TYPE {self.name}_created gauge\n"
                     f"{self.name}_created {number(self._created)}\n")
        return "".join(lines)


class ViewCollector:
    def __init__(self, get_view: Callable[[], View]) -> None:
        self.get_view = get_view

    def collect(self) -> Iterator[Family]:
        view = self.get_view()
        obs, report = view.observation, view.report

        reachable = GaugeMetricFamily(f"{PREFIX}_worker_reachable", "1 when the last poll of Connect succeeded")
        reachable.add_metric([], 1.0 if obs.reachable and obs.started else 0.0)
        yield reachable

        probes = GaugeMetricFamily(f"{PREFIX}_probe_healthy", "Verdict per probe: 1 healthy, 0 unhealthy",
                                   labels=["probe"])
        for probe in PROBES:
            probes.add_metric([probe], 1.0 if getattr(report, probe).ok else 0.0)
        yield probes

        conn_state = GaugeMetricFamily(
            f"{PREFIX}_connector_state", "Connector instance in this state (1); only instances on this worker "
            "and UNASSIGNED/RESTARTING ones anywhere", labels=["connector", "state"])
        task_state = GaugeMetricFamily(
            f"{PREFIX}_task_state", "Task in this state (1); only tasks on this worker and UNASSIGNED/RESTARTING "
            "ones anywhere", labels=["connector", "task", "state"])
        tasks = GaugeMetricFamily(f"{PREFIX}_tasks", "Tasks in scope (this worker, or all with --scope cluster)",
                                  labels=["state"])
        counts = dict.fromkeys(STATES, 0)
        failing_here: set[str] = set()
        shown: set[str] = set()
        for row in report.rows:
            if not (row.local or row.verdict in JUDGED_EVERYWHERE):
                continue
            shown.add(row.connector)
            if row.task is None:
                conn_state.add_metric([row.connector, row.state], 1.0)
            else:
                task_state.add_metric([row.connector, str(row.task), row.state], 1.0)
            if row.task is not None and row.local:
                counts[row.state] = counts.get(row.state, 0) + 1
            if row.local and (row.state == "FAILED" or row.verdict in ("stalled", "failed")):
                failing_here.add(row.connector)  # a stalled task is on the ladder like a FAILED one
        for state, n in counts.items():
            tasks.add_metric([state], float(n))
        yield conn_state
        yield task_state
        yield tasks

        snap = obs.snapshot
        for kind, found in (("connectors", snap.cluster_connectors if snap else {}),
                            ("tasks", snap.cluster_tasks if snap else {})):
            family = GaugeMetricFamily(f"{PREFIX}_cluster_{kind}",
                                       f"{kind.capitalize()} of the whole Connect cluster by state (last poll)",
                                       labels=["state"])
            for state in (*STATES, *sorted(set(found) - set(STATES))):
                family.add_metric([state], float(found.get(state, 0)))
            yield family

        failed = GaugeMetricFamily(f"{PREFIX}_connector_failed",
                                   "1 when a failure on this worker survived the restart ladder (0 while the "
                                   "ladder works; no series without a FAILED unit here); class: what its trace says "
                                   "(failures.py; credentials, configuration, data: needs action)",
                                   labels=["connector", "policy", "class"])
        policies = {r.connector: r.policy for r in report.rows if r.connector in failing_here}
        for name in sorted(policies):
            failed.add_metric([name, policies[name], report.classes.get(name, "unknown")],
                              1.0 if name in report.failed_connectors else 0.0)
        yield failed

        restarts = CounterMetricFamily(
            f"{PREFIX}_restarts", "Restarts per unit (task=\"\": the connector instance): kind rest = a restart "
            "request sent by the ladder (outcome: requested, conflict, not-found, error), kind pod = the pod's "
            "containers restarted while liveness failed for it (outcome restarted); class: the failure's "
            "(failures.py). Kept across the sidecar's restarts with --state-file",
            labels=["connector", "task", "kind", "class", "outcome"])
        for (name, task, kind, cls, outcome), n in sorted(view.restart_units.items()):
            if name in shown:  # a connector gone from this pod (deleted, or moved away) takes its series along
                restarts.add_metric([name, task, kind, cls, outcome], float(n))
        yield restarts

        drift = GaugeMetricFamily(f"{PREFIX}_drift", "Declared connectors that are missing or differ",
                                  labels=["connector", "kind"])
        for name, kind, _ in view.drift:
            drift.add_metric([name, kind], 1.0)
        yield drift

        if view.reconcile is not None:  # serve --reconcile (reconcile.py)
            leader = GaugeMetricFamily(f"{PREFIX}_reconcile_leader", "1 while this pod may correct drift (it "
                                       "holds the reconcile Lease, or runs without one)")
            leader.add_metric([], 1.0 if view.reconcile.get("leader") else 0.0)
            yield leader
            corrections = CounterMetricFamily(f"{PREFIX}_reconcile_corrections", "Drift corrections that wrote "
                                              "something, made from this pod", labels=["connector"])
            for name, n in sorted(view.reconcile.get("corrections", {}).items()):
                corrections.add_metric([name], float(n))
            yield corrections

        calls = GaugeMetricFamily(f"{PREFIX}_rest_calls_last_poll", "REST calls made by the last poll")
        calls.add_metric([], float(view.rest_calls_last_poll))
        yield calls

        # issue 11: what the sidecar cannot see, and the connectors a pod restart would not fix
        blind = GaugeMetricFamily(f"{PREFIX}_sidecar_error", "1 while the sidecar cannot judge Connect (its "
                                  "credentials refused, an error in a poll): its problem, never Connect's liveness")
        blind.add_metric([], 1.0 if obs.sidecar_error else 0.0)
        yield blind
        spared = GaugeMetricFamily(f"{PREFIX}_connector_pod_restart_spared", "1 for a connector failed past the "
                                   "ladder that no longer fails liveness: a pod restart did not or would not fix it "
                                   "(--pod-restarts)", labels=["connector"])
        for name in report.spared:
            spared.add_metric([name], 1.0)
        yield spared

        # issue 21: RUNNING tasks without progress (progress.py)
        detection = GaugeMetricFamily(f"{PREFIX}_stall_detection", "1 while stalled tasks are detected (the "
                                      "worker's metrics read at the last poll); 0 when off or blind")
        detection.add_metric([], 1.0 if obs.stall_detection else 0.0)
        yield detection
        stalled = GaugeMetricFamily(f"{PREFIX}_task_stalled", "1 for a RUNNING task on this worker with lag above "
                                    "zero and no progress for --stall-after (no series otherwise)",
                                    labels=["connector", "task"])
        for name, task_id in sorted(obs.stalled):
            stalled.add_metric([name, str(task_id)], 1.0)
        yield stalled


class Metrics:
    """/metrics in Prometheus' text format, written here: prometheus_client cost the sidecar 2.6 MB of RSS for a
    page of gauges (issue 22); the output is the one it wrote, byte for byte (tests/sidecar/test_cost.py)."""

    def __init__(self, get_view: Callable[[], View]) -> None:
        self.poll_duration = PollDuration()
        self.collector = ViewCollector(get_view)

    def observe(self, view: View) -> None:
        self.poll_duration.observe(view.poll_seconds)

    def render(self) -> bytes:
        return (self.poll_duration.render() + "".join(f.render() for f in self.collector.collect())).encode()
