"""KafkaConnectTaskStalled (issue 21): `promtool test rules` on the rule the chart renders (real helm), with the
sidecar's `connect_health_task_stalled{connector, task}` as Prometheus holds it through the chart's ServiceMonitor
(the sidecar's exposition of it: tests/sidecar/test_stall_poller.py; a real stalled task: tests/integration/
test_stall.py). It stays quiet until its `for:` has passed, fires per task then, never for a stall shorter than
`for:` (the ladder's task restart fixed it), and never on a healthy pod (no series at all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart.render import NAMESPACE

from .rulekit import JOB, chart_rules
from .test_alerts_that_fire import TARGET, fires, minutes, quiet, run_tests, series, strip_annotations

STALLED = "KafkaConnectTaskStalled"


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    spec: dict[str, Any] = chart_rules()
    return spec


def stall_groups(rules: dict[str, Any]) -> list[dict[str, Any]]:
    m = minutes(rules, STALLED)
    span = m + 10
    task0 = {**TARGET, "endpoint": "health", "connector": "orders-sink", "task": "0"}
    want = {"namespace": NAMESPACE, "job": JOB, "connector": "orders-sink", "task": "0"}
    return [
        {"name": "healthy: no series, nothing fires", "interval": "1m", "input_series": [
            series("connect_health_worker_reachable", {**TARGET, "endpoint": "health"}, f"1x{span}")],
         "alert_rule_test": [quiet(STALLED, t) for t in (1, span - 1)]},
        {"name": "a task stays stalled", "interval": "1m", "input_series": [
            series("connect_health_task_stalled", task0, f"1x{span}")],
         "alert_rule_test": [quiet(STALLED, m - 1), fires(STALLED, rules, m, want)]},
        {"name": "a stall the ladder's restart ends within for: stays quiet", "interval": "1m", "input_series": [
            series("connect_health_task_stalled", task0, f"1x{max(1, m - 2)} 0x{span}")],  # 0: the sidecar's
            # series is gone; promtool writes no staleness marker, so 0 stands in for "no series"
         "alert_rule_test": [quiet(STALLED, t) for t in (1, m - 1, m, span - 1)]},
    ]


def test_the_stall_alert_is_rendered_with_its_runbook(rules: dict[str, Any]) -> None:
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == STALLED]
    assert "connect_health_task_stalled" in rule["expr"] and rule["labels"]["severity"] == "warning"
    assert rule["annotations"]["runbook_url"].endswith("/runbooks/KafkaConnectTaskStalled/")
    assert (Path(__file__).resolve().parents[2] / "docs" / "runbooks" / f"{STALLED}.md").is_file()


def test_promtool_fires_the_stall_alert_after_its_for(rules: dict[str, Any], tmp_path: Path) -> None:
    done = run_tests(strip_annotations(rules), stall_groups(rules), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_stall_unit_tests_can_fail(rules: dict[str, Any], tmp_path: Path) -> None:
    broken = strip_annotations(rules)
    for g in broken["groups"]:
        for r in g["rules"]:
            if r.get("alert") == STALLED:
                r["for"] = "0m"  # fires at once: the "quiet until for:" expectations must catch it
    done = run_tests(broken, stall_groups(rules), tmp_path)
    assert done.returncode != 0, done.stdout
