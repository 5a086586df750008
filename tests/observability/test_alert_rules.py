"""The chart's alerting rules, checked by the real promtool and unit-tested on series a real sidecar exported.

- `promtool check rules` on the PrometheusRule the chart renders (real helm);
- every metric, label and label value the rules name is one the live sidecar exported (Prometheus's own parser
  reads the expressions), so a rename in metrics.py fails here instead of silencing an alert;
- `promtool test rules`, generated: the input series are the ones Prometheus scraped from the live sidecar in each
  phase of the scenario (conftest.py), laid out on a timeline; each alert fires after the chart's own `for:` and
  stays quiet on the healthy, the ladder-still-working and the best-effort cases.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.render import NAMESPACE, RELEASE
from launcher.prometheus import promtool_executable, render_chart_rules

from .conftest import BEST_EFFORT, CRITICAL, Live
from .rulekit import (
    JOB,
    Series,
    Step,
    alerting_rules,
    chart_rules,
    expand_template,
    input_series,
    problems,
    references,
    seconds,
    steps,
)

FAILED, UNREACHABLE = "KafkaConnectConnectorFailed", "KafkaConnectWorkerUnreachable"
RATE = "KafkaConnectRestartRateHigh"
ALERTS = (FAILED, UNREACHABLE, RATE)
# Alerts on what the live scenario does not produce (a scrape failing, drift, UNASSIGNED units), rendered by default
# too and unit-tested with promtool in test_alerts_that_fire.py.
OTHER_ALERTS = ("KafkaConnectSidecarDown", "KafkaConnectConnectorDrift", "KafkaConnectUnassigned",
                "KafkaConnectTaskStalled", "KafkaConnectConnectorNeedsAction")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        binary = promtool_executable()
    except Exception as e:  # noqa: BLE001 - MissingTool says what to run
        pytest.fail(str(e), pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    return chart_rules()


@pytest.fixture(scope="module")
def rules_file(rules: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def rule(rules: dict[str, Any], alert: str) -> dict[str, Any]:
    (found,) = [r for r in alerting_rules(rules) if r["alert"] == alert]
    return found


def test_chart_renders_the_three_alerts(rules: dict[str, Any]) -> None:
    assert sorted(r["alert"] for r in alerting_rules(rules)) == sorted(ALERTS + OTHER_ALERTS)


def test_promtool_check_rules_accepts_the_rendered_rules(rules_file: Path) -> None:
    proc = promtool("check", "rules", str(rules_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS + OTHER_ALERTS)} rules found" in proc.stdout


def test_promtool_check_rules_rejects_a_broken_expression(rules: dict[str, Any], tmp_path: Path) -> None:
    """The check above can fail: the same file with one expression broken is refused."""
    rules = copy.deepcopy(rules)
    rule(rules, FAILED)["expr"] = "max by (connector (connect_health_connector_failed)"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode != 0 and FAILED in proc.stdout + proc.stderr


def test_the_demo_loads_exactly_the_rules_the_chart_renders(rules: dict[str, Any], tmp_path: Path) -> None:
    """make demo's Prometheus takes its rules from launcher.prometheus (standard library only, no YAML parser):
    the same groups as the chart's PrometheusRule, with --set values applied."""
    path = render_chart_rules(tmp_path / "rules.yml", RELEASE, NAMESPACE)
    assert yaml.safe_load(path.read_text()) == rules
    short = render_chart_rules(tmp_path / "short.yml", RELEASE, NAMESPACE,
                               {"metrics.prometheusRule.alerts.connectorFailed.for": "10s"})
    assert rule(yaml.safe_load(short.read_text()), FAILED)["for"] == "10s"


# ---------------------------------------------------------------------------- names the sidecar exports

def test_rules_name_only_what_the_sidecar_exports(live: Live, rules: dict[str, Any]) -> None:
    exported = live.exported()
    assert "connect_health_connector_failed" in exported  # the scenario reached every phase
    found = {r["alert"]: problems(references(live.prometheus.api("parse_query", query=r["expr"])), exported)
             for r in alerting_rules(rules) if r["alert"] in ALERTS}
    assert found == {a: [] for a in ALERTS}


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("connect_health_connector_failed{", "connect_health_connector_failures{",
     "metric connect_health_connector_failures is not exported"),
    ("by (namespace, job, connector)", "by (namespace, job, name)", "label name is not exported"),
    ('outcome="requested"', 'outcome="sent"', 'no series with outcome="sent"'),
])
def test_a_renamed_metric_label_or_value_is_reported(live: Live, rules: dict[str, Any], old: str, new: str,
                                                     expected: str) -> None:
    """The check above can fail: a rule naming what the sidecar no longer exports is reported."""
    exprs = [str(r["expr"]) for r in alerting_rules(rules)]
    assert any(old in e for e in exprs), f"{old!r} is not in the rules any more: update this test"
    exported = live.exported()
    found = [p for e in exprs if old in e
             for p in problems(references(live.prometheus.api("parse_query", query=e.replace(old, new))), exported)]
    assert any(expected in p for p in found), found


# ----------------------------------------------------------------------------------- promtool unit tests

def minutes(rules: dict[str, Any], alert: str) -> int:
    """The rule's `for:` in whole evaluation steps of one minute."""
    n = seconds(rule(rules, alert)["for"]) / 60
    assert n == int(n) and n >= 1, f"{alert}: for {rule(rules, alert)['for']} is not whole minutes"
    return int(n)


def expected(rules: dict[str, Any], alert: str, labels: dict[str, str], value: float | None = None) -> dict[str, Any]:
    r = rule(rules, alert)
    all_labels = {**labels, **r.get("labels", {})}
    return {"exp_labels": all_labels,
            "exp_annotations": {k: expand_template(v, all_labels, value) for k, v in r["annotations"].items()}}


def one(series: list[Series], name: str, **labels: str) -> Series:
    found = [s for s in series if s.name == name and all(s.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, [s.selector() for s in series if s.name == name])
    return found[0]


def checks(at: int, alerts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"eval_time": f"{at}m", "alertname": a, "exp_alerts": exp} for a, exp in alerts.items()]


def unit_test_groups(live: Live, rules: dict[str, Any]) -> list[dict[str, Any]]:
    healthy, restarting, failed, unreachable = (live.series(p) for p in
                                                ("healthy", "restarting", "failed", "unreachable"))
    quiet = dict.fromkeys(ALERTS, list[dict[str, Any]]())
    groups: list[dict[str, Any]] = []

    def group(name: str, timeline: list[Step], *evals: list[dict[str, Any]]) -> None:
        groups.append({"name": name, "interval": "1m", "input_series": input_series(timeline),
                       "alert_rule_test": [c for e in evals for c in e]})

    # Healthy for half an hour: nothing fires.
    group("healthy", steps(healthy, 31), checks(0, quiet), checks(15, quiet), checks(30, quiet))

    # A failure the ladder is still working on, for half an hour: the connector alert stays quiet.
    group("ladder still working", steps(restarting, 31), checks(30, {FAILED: []}))

    # Both sinks fail past the ladder: the critical one fires after `for:`, the best-effort one never does.
    f = minutes(rules, FAILED)
    crit = one(failed, "connect_health_connector_failed", connector=CRITICAL, policy="critical")
    one(failed, "connect_health_connector_failed", connector=BEST_EFFORT, policy="best-effort")
    start = 5 + 3
    firing = [expected(rules, FAILED, {"namespace": NAMESPACE, "job": JOB, "connector": str(crit.get("connector"))})]
    group("critical and best-effort failed past the ladder",
          steps(healthy, 5) + steps(restarting, 3) + steps(failed, f + 6),
          checks(start - 1, {FAILED: []}), checks(start + f - 1, {FAILED: []}),
          checks(start + f, {FAILED: firing}), checks(start + f + 5, {FAILED: firing}))

    # The worker stops answering: the alert fires after `for:`, labelled with the pod.
    u = minutes(rules, UNREACHABLE)
    down = one(unreachable, "connect_health_worker_reachable")
    assert down.value == 0
    labels = {k: v for k, v in down.labels if k != "__name__"}
    group("worker unreachable", steps(healthy, 5) + steps(unreachable, u + 3),
          checks(5 + u - 1, {UNREACHABLE: []}),
          checks(5 + u, {UNREACHABLE: [expected(rules, UNREACHABLE, labels)]}))

    # Restarts: one a minute for 90 minutes (the ladder reset by short recoveries) fires once the rate has held
    # for `for:`; the live ladder's few restarts, then none, never do.
    r = minutes(rules, RATE)
    window = int(seconds(str(rule(rules, RATE)["expr"]).split("[")[1].split("]")[0]) / 60)
    counter = one(failed, "connect_health_restarts_total", connector=CRITICAL, outcome="requested")
    flapping = steps(healthy, 5) + [{**step, counter.key: counter.value + i}
                                    for i, step in enumerate(steps(failed, 90))]
    at = 5 + window + 1  # the rate window lies wholly in the flapping part: one restart a minute = 60 an hour
    group("restarted every minute", flapping,
          checks(5 + r - 2, {RATE: []}),
          checks(at, {RATE: [expected(rules, RATE, {"namespace": NAMESPACE, "job": JOB, "connector": CRITICAL},
                                      value=60.0)]}))
    group("ladder ran once", steps(healthy, 5) + steps(failed, 90), checks(at, {RATE: []}))
    return groups


def write_tests(live: Live, rules: dict[str, Any], rules_file: Path, dest: Path) -> Path:
    doc = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": unit_test_groups(live, rules)}
    dest.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
    return dest


def test_promtool_unit_tests_on_live_series_pass(live: Live, rules: dict[str, Any], rules_file: Path,
                                                 tmp_path: Path) -> None:
    tests = write_tests(live, rules, rules_file, tmp_path / "alerts-test.yml")
    proc = promtool("test", "rules", str(tests))
    assert proc.returncode == 0, f"{tests}:\n{proc.stdout}{proc.stderr}"
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_fail_a_rule_that_pages_for_best_effort(live: Live, rules: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    """The unit tests can fail: the connector rule without its policy filter fires for the best-effort sink too."""
    rules = copy.deepcopy(rules)
    expr = rule(rules, FAILED)["expr"]
    assert ', policy="critical"' in expr
    rule(rules, FAILED)["expr"] = expr.replace(', policy="critical"', "")
    loose = tmp_path / "loose.yml"
    loose.write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = write_tests(live, chart_rules(), loose, tmp_path / "alerts-test.yml")  # expectations of the real rules
    proc = promtool("test", "rules", str(tests))
    assert proc.returncode != 0
    assert BEST_EFFORT in proc.stdout + proc.stderr
