"""Prometheus metrics, generated at scrape time from the poller's latest View.

Gauges come from the View, so a deleted connector's series disappear with it; restart counts are kept by the
poller and only grow (exported while the connector is shown on this pod). Each app has its own registry, so
several apps (tests) never collide.

Cardinality (issue 12): per-connector and per-task series exist only for the units this pod judges, i.e. the
units on this worker and the UNASSIGNED/RESTARTING ones anywhere (model.py judges those on every pod), one series
per unit (the current state: 1; other states have no series). The rest of the cluster is a few aggregate series
by state. Series per pod = U + F + R + D + 3 x 6 + 21, with U the units judged here, F the connectors with a
FAILED unit here, R the (connector, outcome) pairs of restarts sent from here, D the drifting declared connectors
(see the README, "Metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .poller import View
from .snapshot import STATES

PREFIX = "connect_health"
PROBES = ("livez", "readyz", "startupz")
JUDGED_EVERYWHERE = ("transient", "stuck")  # verdicts of units judged on every pod, whichever worker they name


class ViewCollector(Collector):
    def __init__(self, get_view: Callable[[], View]) -> None:
        self.get_view = get_view

    def collect(self) -> Iterator[Metric]:
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
            if row.local and row.state == "FAILED":
                failing_here.add(row.connector)
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
                                   "ladder works; no series without a FAILED unit here)",
                                   labels=["connector", "policy"])
        policies = {r.connector: r.policy for r in report.rows if r.connector in failing_here}
        for name in sorted(policies):
            failed.add_metric([name, policies[name]], 1.0 if name in report.failed_connectors else 0.0)
        yield failed

        restarts = CounterMetricFamily(f"{PREFIX}_restarts", "Restart requests sent by the ladder",
                                       labels=["connector", "outcome"])
        for (name, outcome), n in sorted(view.restarts.items()):
            if name in shown:  # a connector gone from this pod (deleted, or moved away) takes its series along
                restarts.add_metric([name, outcome], float(n))
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


class Metrics:
    def __init__(self, get_view: Callable[[], View]) -> None:
        self.registry = CollectorRegistry()
        self.poll_duration = Histogram(
            f"{PREFIX}_poll_duration_seconds", "Duration of one poll of Connect",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(ViewCollector(get_view))

    def observe(self, view: View) -> None:
        self.poll_duration.observe(view.poll_seconds)
