"""Alerts that can fire (issue 19): a scrape target down (the sidecar, the worker's JMX exporter), declared
connectors drifting, units stuck UNASSIGNED past Connect's rebalance delay; and rules that need the ServiceMonitor's
`job` label are refused without one (tests/chart/test_refusals.py).

`promtool test rules` on the rules the chart renders (real helm), with input series shaped as Prometheus holds them
through the chart's ServiceMonitor: `up` with the Service port's name as `endpoint`, the sidecar's
`connect_health_drift{connector, kind}` and `connect_health_{task,connector}_state{..., state}` (their names and
labels are the sidecar's: tests/sidecar/test_endpoints.py scrapes them from a real sidecar). Each alert stays quiet
until its `for:` has passed, fires then, and stays quiet on the healthy series.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.render import NAMESPACE
from launcher.prometheus import promtool_executable

from .rulekit import JOB, POD, alerting_rules, chart_rules, seconds

DOWN, WORKER_DOWN = "KafkaConnectSidecarDown", "KafkaConnectWorkerMetricsDown"
DRIFT, UNASSIGNED = "KafkaConnectConnectorDrift", "KafkaConnectUnassigned"
NEEDS_ACTION, FAILED = "KafkaConnectConnectorNeedsAction", "KafkaConnectConnectorFailed"
TARGET = {"namespace": NAMESPACE, "job": JOB, "pod": POD, "instance": "10.1.2.3:8090", "service": JOB}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        binary = promtool_executable()
    except Exception as e:  # noqa: BLE001 - MissingTool says what to run
        pytest.fail(str(e), pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    spec: dict[str, Any] = chart_rules()
    return spec


@pytest.fixture(scope="module")
def jmx_rules() -> dict[str, Any]:
    """With the JMX exporter on (its agent from an image of its own), so the worker's target-down alert exists."""
    from chart.render import render_chart

    from .rulekit import MINIMAL

    values = {"metrics": {"prometheusRule": {"enabled": True}, "serviceMonitor": {"enabled": True},
                          "jmxExporter": {"enabled": True, "image": {"repository": "r.example.com/jmx", "tag": "1"}}}}
    (obj,) = render_chart(values, values_files=[MINIMAL], show_only=["templates/prometheusrule.yaml"])
    spec: dict[str, Any] = obj["spec"]
    return spec


def rule(rules: dict[str, Any], alert: str) -> dict[str, Any]:
    (found,) = [r for r in alerting_rules(rules) if r["alert"] == alert]
    return found


def minutes(rules: dict[str, Any], alert: str) -> int:
    n = seconds(rule(rules, alert)["for"]) / 60
    assert n == int(n) and n >= 1, alert
    return int(n)


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def fires(alert: str, rules: dict[str, Any], at: int, labels: dict[str, str]) -> dict[str, Any]:
    want = {**labels, "severity": rule(rules, alert)["labels"]["severity"]}
    return {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": [{"exp_labels": want}]}


def quiet(alert: str, at: int) -> dict[str, Any]:
    return {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": []}


def run_tests(rules: dict[str, Any], groups: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                     "tests": groups}, sort_keys=False, width=200))
    return promtool("test", "rules", str(tests))


def strip_annotations(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules without annotations: these tests hold labels and timing; promtool would compare annotations too."""
    out = yaml.safe_load(yaml.safe_dump(rules))
    for r in alerting_rules(out):
        r.pop("annotations", None)
    return dict(out)


def groups(rules: dict[str, Any], jmx: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    d, u, t = minutes(rules, DRIFT), minutes(rules, UNASSIGNED), minutes(rules, DOWN)
    n = minutes(rules, NEEDS_ACTION)
    span = max(d, u, t, n) + 10
    health = {**TARGET, "endpoint": "health"}
    out = [
        {"name": "healthy: nothing fires", "interval": "1m", "input_series": [
            series("up", health, f"1x{span}"),
            series("connect_health_task_state", {**TARGET, "connector": "sink", "task": "0", "state": "RUNNING"},
                   f"1x{span}")],
         "alert_rule_test": [quiet(a, m) for a in (DOWN, DRIFT, UNASSIGNED) for m in (1, span - 1)]},
        {"name": "the sidecar's target is down", "interval": "1m", "input_series": [
            series("up", health, f"1x4 0x{span}")],
         "alert_rule_test": [quiet(DOWN, 5 + t - 1),
                             fires(DOWN, rules, 5 + t, {k: health[k] for k in health})]},
        {"name": "a declared connector is missing", "interval": "1m", "input_series": [
            series("connect_health_drift", {**TARGET, "connector": "ghost", "kind": "missing"}, f"1x{span}")],
         "alert_rule_test": [quiet(DRIFT, d - 1),
                             fires(DRIFT, rules, d, {"namespace": NAMESPACE, "job": JOB, "connector": "ghost",
                                                     "kind": "missing"})]},
        {"name": "UNASSIGNED during a rebalance (5 min) stays quiet", "interval": "1m", "input_series": [
            series("connect_health_task_state", {**TARGET, "connector": "sink", "task": "0", "state": "UNASSIGNED"},
                   "1x5"),
            series("connect_health_task_state", {**TARGET, "connector": "sink", "task": "0", "state": "RUNNING"},
                   f"_x5 1x{span}")],
         "alert_rule_test": [quiet(UNASSIGNED, m) for m in (3, 5, u + 2, span - 1)]},
        {"name": "a task stays UNASSIGNED", "interval": "1m", "input_series": [
            series("connect_health_task_state", {**TARGET, "connector": "sink", "task": "1", "state": "UNASSIGNED"},
                   f"1x{span}")],
         "alert_rule_test": [quiet(UNASSIGNED, u - 1),
                             fires(UNASSIGNED, rules, u, {"namespace": NAMESPACE, "job": JOB, "connector": "sink"})]},
        {"name": "a connector stays UNASSIGNED", "interval": "1m", "input_series": [
            series("connect_health_connector_state", {**TARGET, "connector": "src", "state": "UNASSIGNED"},
                   f"1x{span}")],
         "alert_rule_test": [fires(UNASSIGNED, rules, u, {"namespace": NAMESPACE, "job": JOB, "connector": "src"})]},
        # issue 21: connect_health_connector_failed carries the failure's class (failures.py); only the classes no
        # restart fixes need action, a transient failure past the ladder is KafkaConnectConnectorFailed's alone.
        {"name": "a credentials failure past its one restart needs action", "interval": "1m", "input_series": [
            series("connect_health_connector_failed", {**TARGET, "connector": "pg", "policy": "critical",
                                                       "class": "credentials"}, f"0x1 1x{span}"),
            series("connect_health_connector_failed", {**TARGET, "connector": "sink", "policy": "critical",
                                                       "class": "transient"}, f"1x{span}")],
         "alert_rule_test": [quiet(NEEDS_ACTION, 2 + n - 1),
                             fires(NEEDS_ACTION, rules, 2 + n, {"namespace": NAMESPACE, "job": JOB, "connector": "pg",
                                                                "class": "credentials"})]},
        {"name": "a data failure still on its ladder (0) stays quiet", "interval": "1m", "input_series": [
            series("connect_health_connector_failed", {**TARGET, "connector": "json", "policy": "best-effort",
                                                       "class": "data"}, f"0x{span}")],
         "alert_rule_test": [quiet(NEEDS_ACTION, m) for m in (n, span - 1)]},
    ]
    jmx_target = {**TARGET, "endpoint": "jmx-metrics", "instance": "10.1.2.3:9404"}
    w = minutes(jmx, WORKER_DOWN)
    jmx_groups = [
        {"name": "the worker's JMX exporter is down, the sidecar up", "interval": "1m", "input_series": [
            series("up", jmx_target, f"1x4 0x{w + 5}"), series("up", health, f"1x{w + 10}")],
         "alert_rule_test": [quiet(WORKER_DOWN, 5 + w - 1), quiet(DOWN, 5 + w),
                             fires(WORKER_DOWN, jmx, 5 + w, dict(jmx_target))]},
    ]
    return out, jmx_groups


def test_the_alerts_are_rendered_and_promtool_accepts_them(rules: dict[str, Any], jmx_rules: dict[str, Any],
                                                           tmp_path: Path) -> None:
    names = {r["alert"] for r in alerting_rules(rules)}
    assert {DOWN, DRIFT, UNASSIGNED, NEEDS_ACTION} <= names and WORKER_DOWN not in names  # no exporter: no worker
    assert WORKER_DOWN in {r["alert"] for r in alerting_rules(jmx_rules)}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(jmx_rules, sort_keys=False))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_each_alert_after_its_for(rules: dict[str, Any], jmx_rules: dict[str, Any],
                                                          tmp_path: Path) -> None:
    sidecar_groups, jmx_groups = groups(rules, jmx_rules)
    proc = run_tests(strip_annotations(rules), sidecar_groups, tmp_path / "a")
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    proc = run_tests(strip_annotations(jmx_rules), jmx_groups, tmp_path / "b")
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_the_unit_tests_can_fail(rules: dict[str, Any], jmx_rules: dict[str, Any], tmp_path: Path) -> None:
    """An UNASSIGNED rule without its pending period pages during every rebalance: the tests above catch it."""
    loose = strip_annotations(rules)
    rule(loose, UNASSIGNED)["for"] = "0m"
    sidecar_groups, _ = groups(rules, jmx_rules)
    proc = run_tests(loose, sidecar_groups, tmp_path)
    assert proc.returncode != 0 and UNASSIGNED in proc.stdout + proc.stderr
