"""What the observability tests need to read the chart's rules and dashboard, and to build promtool unit tests.

- `chart_rules()`: the rule groups of the PrometheusRule the chart renders (real helm, tests/chart/render.py);
- `dashboard_exprs()`: every PromQL expression of charts/kafka-connect/files/grafana-dashboard.json;
- `references(ast)`: the metric names, label names and label values a PromQL AST (Prometheus's own parser, via
  /api/v1/parse_query) names, to hold them against what a live sidecar exports;
- `Series` / `timeline_values`: input series for `promtool test rules`, from series a real Prometheus scraped;
- `expand_template`: an alert annotation as Prometheus fills it in, for `exp_annotations`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chart.render import CHART, NAMESPACE, RELEASE, render_chart

DASHBOARD = CHART / "files" / "grafana-dashboard.json"
MINIMAL = CHART / "ci" / "01-minimal-values.yaml"  # the chart's required values
JOB = f"{RELEASE}-kafka-connect"  # kafka-connect.fullname of the test release: the job the rules select
POD = f"{JOB}-0"
# Labels Prometheus itself (and a ServiceMonitor's relabelling) attach to every scraped series.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})


def chart_rules(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``spec`` of the chart's PrometheusRule (release RELEASE in NAMESPACE), i.e. a Prometheus rule file."""
    rule_values: dict[str, Any] = {"metrics": {"prometheusRule": {"enabled": True, **(values or {})},
                                               "serviceMonitor": {"enabled": True}}}  # the rules need one
    (obj,) = render_chart(rule_values, values_files=[MINIMAL], show_only=["templates/prometheusrule.yaml"])
    assert obj["kind"] == "PrometheusRule" and obj["metadata"]["namespace"] == NAMESPACE
    spec: dict[str, Any] = obj["spec"]
    return spec


def alerting_rules(groups: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for g in groups["groups"] for r in g["rules"] if "alert" in r]


def dashboard_exprs(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel (rows included), in the dashboard's order."""
    doc = json.loads(path.read_text())

    def panels(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    return [(str(p.get("title")), str(t["expr"])) for p in panels(doc["panels"]) for t in p.get("targets", [])
            if t.get("expr")]


def dashboard_variables(path: Path = DASHBOARD) -> list[str]:
    doc = json.loads(path.read_text())
    return [str(v["name"]) for v in doc.get("templating", {}).get("list", [])]


# ------------------------------------------------------------------------------------------------ durations

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration ("1m", "1h30m", "500ms") in seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


# -------------------------------------------------------------------------------------------- AST references

@dataclass
class Refs:
    """What an expression names: metric -> label names it matches or groups by, and label -> values it requires."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (metric, label) -> values (= or =~)

    @property
    def metrics(self) -> set[str]:
        return set(self.labels)


def references(ast: Any) -> Refs:
    """Walk an AST of /api/v1/parse_query. Grouping labels (by/on/ignoring) count for every metric below them."""
    refs = Refs()

    def selectors(node: Any) -> list[str]:
        if not isinstance(node, dict):
            return []
        if node.get("type") in ("vectorSelector", "matrixSelector"):
            return [str(node["name"])]
        return [name for child in node.values() for name in
                (selectors(child) if isinstance(child, dict) else
                 [n for c in child for n in selectors(c)] if isinstance(child, list) else [])]

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in ("vectorSelector", "matrixSelector"):
            name = str(node["name"])
            names = refs.labels.setdefault(name, set())
            for m in node["matchers"]:
                if m["name"] == "__name__":
                    continue
                names.add(m["name"])
                if m["type"] in ("=", "=~") and m["value"]:
                    refs.values.setdefault((name, m["name"]), set()).add(m["value"])
        grouping = list(node.get("grouping") or []) if kind == "aggregation" else []
        matching = node.get("matching") if kind == "binaryExpr" else None
        if matching:
            grouping += list(matching.get("labels") or []) + list(matching.get("include") or [])
        if grouping:
            for name in selectors(node):
                refs.labels.setdefault(name, set()).update(grouping)
        for child in node.values():
            if isinstance(child, dict | list):
                walk(child)

    walk(ast)
    return refs


def problems(refs: Refs, exported: Mapping[str, Mapping[str, set[str]]]) -> list[str]:
    """What refs names that `exported` (metric -> label -> values seen) lacks: one line each. Target labels
    (job, instance, namespace, pod) are Prometheus's, not the sidecar's; histogram buckets carry ``le``."""
    out = []
    for metric, labels in sorted(refs.labels.items()):
        if metric not in exported:
            out.append(f"metric {metric} is not exported by the sidecar")
            continue
        known = set(exported[metric]) | TARGET_LABELS | ({"le"} if metric.endswith("_bucket") else set())
        out += [f"{metric}: label {label} is not exported" for label in sorted(labels - known)]
    for (metric, label), wanted in sorted(refs.values.items()):
        seen = exported.get(metric, {}).get(label)
        if seen is None or label in TARGET_LABELS:
            continue
        for value in sorted(wanted):
            if not any(re.fullmatch(value, s) for s in seen):
                out.append(f'{metric}: no series with {label}="{value}" (exported values: {sorted(seen)})')
    return out


# ----------------------------------------------------------------------------------------- promtool inputs

@dataclass(frozen=True)
class Series:
    """One series as Prometheus stored it from a scrape: its labels (with __name__) and a value."""

    labels: tuple[tuple[str, str], ...]
    value: float

    @classmethod
    def of(cls, metric: Mapping[str, str], value: float) -> Series:
        return cls(tuple(sorted(metric.items())), value)

    @property
    def name(self) -> str:
        return dict(self.labels)["__name__"]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return self.labels

    def get(self, label: str) -> str | None:
        return dict(self.labels).get(label)

    def selector(self) -> str:
        """The series in PromQL syntax, as promtool's input_series takes it."""
        body = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.labels if k != "__name__")
        return f"{self.name}{{{body}}}"


Phase = Sequence[Series]
Step = Mapping[tuple[tuple[str, str], ...], float]  # one scrape: series key -> value


def steps(phase: Phase, count: int) -> list[Step]:
    """count scrapes of a phase, all the same."""
    one = {s.key: s.value for s in phase}
    return [one] * count


def input_series(timeline: Sequence[Step]) -> list[dict[str, str]]:
    """promtool input_series: every series seen anywhere on the timeline, a value per step, `_` where it is absent."""
    keys: dict[tuple[tuple[str, str], ...], None] = {}
    for step in timeline:
        keys.update(dict.fromkeys(step))
    out = []
    for key in keys:
        values = [_number(step[key]) if key in step else "_" for step in timeline]
        out.append({"series": Series(key, 0).selector(), "values": " ".join(values)})
    return out


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    return str(int(v)) if v == int(v) else repr(v)


# ------------------------------------------------------------------------------------------ annotations

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def humanize(v: float) -> str:
    """Prometheus's `humanize` for the values alerts here carry (1 <= |v| < 1000: %.4g)."""
    if v == 0 or not (1 <= abs(v) < 1000):
        raise ValueError(f"humanize({v}) outside what these tests expand")
    return f"{v:.4g}"


def expand_template(text: str, labels: Mapping[str, str], value: float | None = None) -> str:
    """An annotation with `{{ $labels.x }}` and `{{ $value | humanize }}` filled in; anything else in braces is an
    error (a rule using more of Go's templates needs this helper extended, not silently skipped)."""

    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr.startswith("$labels."):
            return labels[expr.removeprefix("$labels.")]
        if expr == "$value | humanize" and value is not None:
            return humanize(value)
        raise ValueError(f"annotation template {{{{ {expr} }}}} is not expanded by these tests: {text!r}")

    return _TEMPLATE.sub(one, text)
