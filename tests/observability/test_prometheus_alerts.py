"""The chart's alerts in a real Prometheus scraping a live sidecar: they fire when the worker really breaks and
resolve when it heals (conftest.py plays the scenario; the rules' `for:` is shortened to 2s there)."""

from __future__ import annotations

from .conftest import BEST_EFFORT, CRITICAL, DECLARED_MISSING, Live
from .rulekit import POD


def log(live: Live, alert: str, who: str) -> list[str]:
    out: list[str] = []
    for _, name, subject, state in live.alert_log:
        if name == alert and subject == who and (not out or out[-1] != state):
            out.append(state)
    return out


def test_prometheus_scrapes_the_sidecar_with_the_chart_rules_loaded(live: Live) -> None:
    (target,) = live.prometheus.active_targets()
    assert target["health"] == "up", target
    assert target["labels"]["job"] == "rel-kafka-connect" and target["labels"]["pod"] == POD
    groups = live.prometheus.api("rules", type="alert")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {"KafkaConnectConnectorFailed", "KafkaConnectWorkerUnreachable", "KafkaConnectRestartRateHigh"} <= names
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups


def test_connector_alert_fires_for_the_critical_sink_and_resolves_on_heal(live: Live) -> None:
    assert log(live, "KafkaConnectConnectorFailed", CRITICAL) == ["pending", "firing", "inactive"], live.alert_log


def test_connector_alert_never_fires_for_the_best_effort_sink(live: Live) -> None:
    assert log(live, "KafkaConnectConnectorFailed", BEST_EFFORT) == [], live.alert_log
    # ... although its failure past the ladder was scraped like the critical one's.
    failed = live.query_at(f'connect_health_connector_failed{{connector="{BEST_EFFORT}"}}', "failed")
    assert [(r["metric"]["policy"], r["value"][1]) for r in failed] == [("best-effort", "1")]


def test_worker_alert_fires_while_the_worker_is_frozen_and_resolves(live: Live) -> None:
    assert log(live, "KafkaConnectWorkerUnreachable", POD) == ["pending", "firing", "inactive"], live.alert_log


def test_no_alert_while_healthy(live: Live) -> None:
    """Every connector runs; the one connector declared and never created is drift from the start (by design of this
    stack): the drift alert is the one alert allowed there (pending or firing, as the phase's timing falls), and
    only for that connector."""
    alerts = [(a["metric"]["alertname"], a["metric"].get("connector")) for a in live.query_at("ALERTS", "healthy")]
    assert set(alerts) <= {("KafkaConnectConnectorDrift", DECLARED_MISSING)}, alerts
