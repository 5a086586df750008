"""Every PromQL expression of the chart's Grafana dashboard, evaluated by a real Prometheus on a live sidecar.

Grafana itself is not used (AGPL): its variables are filled in as Grafana would ($namespace and $job from the
dashboard's own variable queries, $__rate_interval as four scrape intervals, Grafana's minimum), and each expression
is run as an instant query at a moment of the scenario (conftest.py) when its panel has something to show: the
failed phase, where a connector has failed past the ladder after restarts and a declared connector is missing.
"""

from __future__ import annotations

import re

import pytest
from chart.render import NAMESPACE

from .conftest import Live
from .rulekit import JOB, dashboard_exprs, dashboard_variables, problems, references

# Series the live scenario does not produce: a stalled task needs the worker's JMX exporter (it is proved on a real
# worker in tests/integration/test_stall.py and its exposition in tests/sidecar/test_stall_poller.py). Their panels'
# queries must still parse and run here, and name only these labels.
NOT_IN_SCENARIO = {"connect_health_task_stalled": {"connector": {".*"}, "task": {".*"}}}
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval: max(4 x scrape interval, step + scrape interval); scrapes every 1s
EXPRS = dashboard_exprs()


def fill(expr: str) -> str:
    out = expr.replace("$namespace", NAMESPACE).replace("$job", JOB).replace("$__rate_interval", RATE_INTERVAL)
    left = re.findall(r"\$\w+", out)
    assert not left, f"a dashboard variable these tests do not fill in: {left} in {expr}"
    return out


def test_the_dashboard_has_queries() -> None:
    assert len(EXPRS) >= 10
    assert {"namespace", "job"} <= set(dashboard_variables())


def test_variable_queries_find_the_live_sidecar(live: Live) -> None:
    """The dashboard's $namespace and $job come from label_values(connect_health_worker_reachable, ...)."""
    values = live.prometheus.api("label/namespace/values", **{"match[]": "connect_health_worker_reachable"})
    assert NAMESPACE in values
    match = f'connect_health_worker_reachable{{namespace="{NAMESPACE}"}}'
    jobs = live.prometheus.api("label/job/values", **{"match[]": match})
    assert JOB in jobs


@pytest.mark.parametrize(("title", "expr"), EXPRS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(EXPRS)])
def test_panel_query_returns_data(live: Live, title: str, expr: str) -> None:
    result = live.query_at(fill(expr), "failed")
    if any(name in expr for name in NOT_IN_SCENARIO):
        assert result == [], f"panel {title!r}: {result}"  # ran, on nothing the scenario has
        return
    assert result, f"panel {title!r}: {fill(expr)} returned no data"


@pytest.mark.parametrize(("title", "expr"), EXPRS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(EXPRS)])
def test_panel_query_names_only_what_the_sidecar_exports(live: Live, title: str, expr: str) -> None:
    ast = live.prometheus.api("parse_query", query=fill(expr))
    exported = {**live.exported(), **{m: dict(labels) for m, labels in NOT_IN_SCENARIO.items()}}
    assert problems(references(ast), exported) == [], f"panel {title!r}"
