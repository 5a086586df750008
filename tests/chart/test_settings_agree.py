"""The chart and the sidecar accept the same settings (issue 8).

The sidecar's option table (connect_health.options.OPTIONS, and connect_health.declared.FIELDS for declared
connectors) is the one place a rule is written. Here:

- the chart's values.schema.json holds exactly the table's schema for every value the chart passes straight to the
  sidecar (a difference fails naming its JSON path), and the docs' flag table (docs/sidecar/options.md) is the table's;
- on boundary values of every such setting (0, the bounds and one past them, empty, null, wrong types) the real
  helm accepts a value exactly when the sidecar accepts it: helm renders the chart with the value (schema
  validation on, for its verdict; off, to see what reaches the sidecar) and the rendered environment or Job
  arguments go through the sidecar's real parser. A value the chart would let through while the sidecar refuses
  it is the bug of issue 8: `helm install` succeeds, the sidecar exits 2, the pod is never Ready.

`.tools/venv/bin/python tests/chart/settings_docs.py` rewrites the schema fragments and the docs' flag table
from the option table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from connect_health import config, declared, options
from connect_health.options import Choice, Number, Option, Regex, Switch

from .render import CHART, HelmError, container, env_of, one, render_chart
from .settings_docs import OPTIONS_PAGE, SCHEMA_FILE, fragments, node, options_block

# healthcheck values that are the chart's own business (image, probes, resources, ...), not sidecar settings.
CHART_ONLY = {"enabled", "sharedFate", "image", "auth", "extraEnv", "resources", "containerSecurityContext",
              "livenessProbe", "startupProbe"}
CONNECTOR = "org.apache.kafka.connect.file.FileStreamSinkConnector"
BASE: dict[str, Any] = {
    "bootstrapServers": "kafka:9092",
    "connectors": {"base": {"config": {"connector.class": CONNECTOR}}},  # so the apply Job exists
    "connectorsApply": {"prune": True},  # so --prune-selector reaches the Job
}
# An option whose value only reaches the sidecar with another value set (in BASE): swept apart from it.
NEEDS = {"connectorsApply.pruneSelector": "connectorsApply.prune"}
CHARTED = [o for o in options.OPTIONS if o.chart]


# --- the schema and the docs' flag table are the table's ------------------------------------------------------

def first_difference(have: Any, want: Any, path: str) -> str | None:
    if isinstance(have, dict) and isinstance(want, dict):
        for key in sorted(set(have) | set(want)):
            if key not in have:
                return f"{path}/{key}: missing, the sidecar's table has {want[key]!r}"
            if key not in want:
                return f"{path}/{key}: {have[key]!r} is not in the sidecar's table"
            diff = first_difference(have[key], want[key], f"{path}/{key}")
            if diff:
                return diff
        return None
    if have != want or type(have) is not type(want):
        return f"{path}: the chart has {have!r}, the sidecar's table {want!r}"
    return None


def test_the_chart_schema_is_the_sidecars_option_table() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    for path, want in fragments().items():
        diff = first_difference(node(schema, path), want, "/" + path.replace(".", "/"))
        assert diff is None, f"values.schema.json disagrees with the sidecar at {diff} " \
                             "(run tests/chart/settings_docs.py)"


def test_first_difference_names_the_path() -> None:
    assert first_difference({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 0, "maximum": 100},
                            "/healthcheck/restartAttempts") == \
        "/healthcheck/restartAttempts/maximum: missing, the sidecar's table has 100"
    assert first_difference({"minimum": 0}, {"minimum": 0.0}, "/x") is not None  # 0 and 0.0 differ in type


def test_every_healthcheck_value_is_a_sidecar_option_or_the_charts_own() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    keys = set(node(schema, "healthcheck")["properties"])
    mapped = {o.chart.split(".", 1)[1] for o in CHARTED if o.chart and o.chart.startswith("healthcheck.")}
    assert keys - CHART_ONLY == mapped, "a healthcheck value is neither a sidecar option nor listed in CHART_ONLY"
    assert not mapped & CHART_ONLY


def test_the_docs_flag_table_is_the_option_table() -> None:
    assert options_block(OPTIONS_PAGE.read_text()) == options.markdown_table(), \
        "docs/sidecar/options.md's flag table drifted from connect_health.options (python tests/chart/settings_docs.py)"


def test_the_table_gives_every_flag_its_twin_and_every_parser_its_flags() -> None:
    parser = config.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        flags = {s for a in p._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
        assert flags == {o.flag for o in options.for_command(command)}, command
    assert len({o.env for o in options.OPTIONS}) == len(options.OPTIONS)


# --- boundary values through the real helm and the real parser -------------------------------------------------

def candidates(o: Option) -> list[Any]:
    """Boundary values of an option's chart value: 0, the bounds and one past them, empty, null, wrong types."""
    kind = o.kind
    values: list[Any] = ["", "abc", True, [1], {"a": 1}]
    if o.optional:
        values.append(None)  # null for a value without a default (null for a defaulted one: tested apart below)
    if isinstance(kind, Number):
        low = kind.minimum if kind.minimum is not None else 0
        values += [0, low, low - 1, low + 0.5]
        if o.default is not None:
            values += [o.default, str(o.default)]
        if kind.exclusive_minimum:
            values.append(low + 0.001)
        if kind.maximum is not None:
            values += [kind.maximum, kind.maximum + 1, kind.maximum + 0.5]
        else:
            values.append(10**9)
        if kind.whole:
            # 3.0 is a whole number in JSON Schema; 2.5 is not
            values += [float(o.default if o.default is not None else low + 2), low + 2.5]
    elif isinstance(kind, Choice):
        values += [*kind.values, kind.values[0].upper(), f" {kind.values[0]}", 5]
    elif isinstance(kind, Regex):
        values += ["^audit-", "(", "a|b", 5]
    elif isinstance(kind, Switch):
        values += [False, "true", 1, 0]
    seen: set[str] = set()
    out = []
    for v in values:
        key = f"{type(v).__name__}:{v!r}"
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def set_path(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[last] = value


SCHEMA_ERROR = re.compile(r"^\s*- at '([^']*)'", re.M)


def schema_refusals(helm: str, values: dict[str, Any]) -> set[str] | None:
    """Paths helm's schema validation refuses (empty: all accepted); None when a template refused to render."""
    try:
        render_chart(values, helm=helm, show_only=["templates/service.yaml"])
    except HelmError as err:
        if "don't meet the specifications of the schema" not in err.stderr:
            return None
        return set(SCHEMA_ERROR.findall(err.stderr))
    return set()


def rendered(helm: str, values: dict[str, Any]) -> list[dict[str, Any]] | None:
    """What reaches the sidecar: the chart rendered without schema validation (None: a template refused)."""
    try:
        return render_chart(values, helm=helm, extra_args=["--skip-schema-validation"],
                            show_only=["templates/deployment.yaml", "templates/connectors-apply-job.yaml",
                                       "templates/connectors-configmap.yaml"])
    except HelmError:
        return None


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ):
        for key in [k for k in os.environ if k.startswith(options.ENV_PREFIX) or k == "POD_IP"]:
            del os.environ[key]
        os.environ.update(env)
        yield


def sidecar_accepts_rendered(o: Option, objects: list[dict[str, Any]], tmp_file: str) -> bool:
    """Feed what the chart rendered for option ``o`` to the sidecar's real parser: the serve container's
    environment twin, or the apply Job's arguments."""
    if "serve" in o.commands:
        env = env_of(container(one(objects, "Deployment"), "connect-health"))
        text = env.get(o.env)
        argv = ["serve"]
        twin = {o.env: text} if isinstance(text, str) else {}
    else:
        command = container(one(objects, "Job"), "apply")["command"]
        argv = ["apply", "--connectors-file", tmp_file]
        if o.flag in command:
            i = command.index(o.flag)
            takes_value = not isinstance(o.kind, Switch)
            argv += command[i:i + 1 + takes_value]
        if o.chart in NEEDS:
            argv.append("--prune")
        twin = {}
    with environment(twin):
        try:
            config.parse(argv)
        except config.UsageError as exc:
            assert str(exc).startswith(o.flag), f"{o.flag} was not the option refused: {exc}"
            return False
        except SystemExit:
            return False
    return True


def judge(helm: str, round_opts: list[tuple[Option, Any]], base: dict[str, Any], tmp_file: str) -> list[str]:
    """Render ``base`` with every (option, value) of the round; return the options where chart and sidecar
    disagree. A round a template refuses as a whole is judged again one option at a time."""
    values = copy.deepcopy(base)
    for o, value in round_opts:
        assert o.chart
        set_path(values, o.chart, value)
    refused = schema_refusals(helm, values)
    objects = rendered(helm, values)
    if (refused is None or objects is None) and len(round_opts) > 1:
        return [d for pair in round_opts for d in judge(helm, [pair], base, tmp_file)]
    disagreements = []
    for o, value in round_opts:
        assert o.chart
        path = "/" + o.chart.replace(".", "/")
        chart_ok = refused is not None and not any(r == path or r.startswith(path + "/") for r in refused)
        try:
            o.from_json(value)  # the table's type: a chart value "5" is text, not the number 5
            typed_ok = True
        except options.Invalid:
            typed_ok = False
        sidecar_ok = typed_ok and objects is not None and sidecar_accepts_rendered(o, objects, tmp_file)
        if chart_ok != sidecar_ok:
            disagreements.append(f"{o.chart}={value!r}: chart {'accepts' if chart_ok else 'refuses'}, "
                                 f"sidecar {'accepts' if sidecar_ok else 'refuses'} ({o.flag})")
    return disagreements


def sweep(helm: str, opts: list[Option], base: dict[str, Any], tmp_file: str) -> list[str]:
    """Round i sets every option to its i-th candidate (one render for many options); returns the disagreements."""
    disagreements = []
    for i in range(max(len(candidates(o)) for o in opts)):
        round_opts = [(o, candidates(o)[i]) for o in opts if i < len(candidates(o))]
        disagreements += judge(helm, round_opts, base, tmp_file)
    return disagreements


def test_candidates_cover_the_boundaries() -> None:
    attempts = [f"{type(v).__name__}:{v!r}" for v in candidates(options.option("--restart-attempts"))]
    for v in (0, -1, 100, 101, 2.5, 3.0, "", "abc", "3", True, None):
        assert f"{type(v).__name__}:{v!r}" in attempts or v is None, v
    assert None in candidates(options.option("--failure-threshold"))
    assert None in candidates(options.option("--failure-threshold"))
    assert None not in candidates(options.option("--grace"))  # tested apart below


def test_chart_and_sidecar_accept_the_same_values(helm: str, tmp_path: Path) -> None:
    connectors_file = tmp_path / "connectors.json"
    connectors_file.write_text("{}")
    needed = set(NEEDS.values())
    alone = [o for o in CHARTED if o.chart in needed]
    together = [o for o in CHARTED if o.chart not in needed]
    disagreements = sweep(helm, together, BASE, str(connectors_file))
    base_without = copy.deepcopy(BASE)
    del base_without["connectorsApply"]
    disagreements += sweep(helm, alone, base_without, str(connectors_file))
    assert not disagreements, "\n".join(disagreements)


def test_the_sweep_finds_the_bug_of_issue_8(helm: str, tmp_path: Path) -> None:
    """The sweep against the schema as it was: failureThreshold 0 and restartAttempts 1000 accepted by the chart,
    refused by the sidecar."""
    old = json.loads(SCHEMA_FILE.read_text())
    node(old, "healthcheck.failureThreshold").update({"minimum": 0})
    node(old, "healthcheck.failureThreshold").pop("exclusiveMinimum")
    node(old, "healthcheck.restartAttempts").pop("maximum")
    chart = tmp_path / "kafka-connect"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("README.md"))
    (chart / "values.schema.json").write_text(json.dumps(old))
    base = {**BASE, "healthcheck": {"failureThreshold": 0, "restartAttempts": 1000}}
    refused = schema_refusals_in(helm, base, chart)
    assert refused == set()  # the old schema let both through...
    objects = render_chart(base, helm=helm, chart=chart, show_only=["templates/deployment.yaml"])
    for flag in ("--failure-threshold", "--restart-attempts"):  # ...and the sidecar refuses each
        assert not sidecar_accepts_rendered(options.option(flag), objects, "")


def schema_refusals_in(helm: str, values: dict[str, Any], chart: Path) -> set[str]:
    try:
        render_chart(values, helm=helm, chart=chart, show_only=["templates/service.yaml"])
    except HelmError as err:
        return set(SCHEMA_ERROR.findall(err.stderr))
    return set()


def test_the_rendered_environment_at_the_bounds_starts_the_sidecar(helm: str) -> None:
    """The whole rendered environment, every value at a bound the schema accepts, through the real parser."""
    at_bounds = {"port": 65535, "probePort": 65534, "pollInterval": 0.1, "grace": 0, "restartAttempts": 100,
                 "restartBackoff": 0,
                 "restartReset": 0, "unresponsiveAfter": 0.5, "herderStuckAfter": 0.5, "requestTimeout": 0.1,
                 "bestEffort": "^audit-", "failureThreshold": 100, "flapWindow": 0.5, "podRestarts": 100,
                 "podRestartWindow": 0.5, "stallAfter": 0.5, "traces": "none", "scope": "cluster", "logFormat": "text",
                 "host": "0.0.0.0"}
    assert set(at_bounds) == {o.chart.removeprefix("healthcheck.") for o in CHARTED
                              if o.chart and o.chart.startswith("healthcheck.")}, "a charted setting is left out"
    objects = render_chart({**BASE, "healthcheck": at_bounds}, helm=helm, show_only=["templates/deployment.yaml"])
    env = {k: v for k, v in env_of(container(one(objects, "Deployment"), "connect-health")).items()
           if isinstance(v, str) and k != "CONNECT_HEALTH_CONNECTORS_FILE"}  # that file is mounted in the pod only
    with environment({**env, "POD_IP": "10.0.0.7"}):
        s = config.parse(["serve"])
    assert isinstance(s, config.ServeSettings)
    h = s.health
    assert (s.port, s.poll_interval, h.grace, h.restart_attempts, h.restart_backoff, h.unresponsive_after) == \
        (65535, 0.1, 0.0, 100, 0.0, 0.5)
    assert (h.restart_reset, h.herder_stuck_after) == (0.0, 0.5)
    assert (h.flap_window, h.pod_restarts, h.pod_restart_window, s.host) == (0.5, 100, 0.5, "0.0.0.0")
    assert (s.connect.request_timeout, h.failure_threshold, h.traces, h.scope, s.log_format) == \
        (0.1, 100.0, "none", "cluster", "text")
    assert h.best_effort is not None and h.best_effort.pattern == "^audit-"


def test_null_for_a_defaulted_value_reaches_the_sidecar_as_its_default(helm: str) -> None:
    """helm drops a key set to null before schema validation, so the schema cannot refuse it: the chart leaves the
    variable out (kafka-connect.sidecar.settingsEnv) and the sidecar uses its own default."""
    nulls = {o.chart.split(".", 1)[1]: None for o in CHARTED
             if o.chart and o.chart.startswith("healthcheck.") and not o.optional and o.flag != "--port"}
    objects = render_chart({**BASE, "healthcheck": nulls}, helm=helm, show_only=["templates/deployment.yaml"])
    for o in CHARTED:
        if o.chart and o.chart.split(".", 1)[1] in nulls:
            assert sidecar_accepts_rendered(o, objects, ""), o.chart


# Python's and Go's (RE2, what helm's `format: regex` uses) syntaxes differ beyond the common subset: the chart
# refuses lookarounds the sidecar would take, and takes Go-only classes the sidecar refuses. docs/sidecar/options.md
# says so.
@pytest.mark.parametrize(("pattern", "chart_ok", "sidecar_ok"), [
    ("^(audit|tmp)-", True, True),
    ("(", False, False),
    ("a(?=b)", False, True),  # Python-only lookahead: the chart is stricter
    (r"\pL", True, False),  # Go-only Unicode class: the sidecar exits 2; write [^\W\d_] instead
])
def test_regex_dialects(helm: str, pattern: str, chart_ok: bool, sidecar_ok: bool) -> None:
    o = options.option("--best-effort")
    values = {**BASE, "healthcheck": {"bestEffort": pattern}}
    assert (schema_refusals(helm, values) == set()) == chart_ok
    objects = rendered(helm, values)
    assert objects is not None and sidecar_accepts_rendered(o, objects, "") == sidecar_ok


# --- declared connectors: state, policy, restartAttempts -------------------------------------------------------

def field_candidates(key: str) -> list[Any]:
    kind = declared.FIELDS[key].kind
    values: list[Any] = ["", None, "abc", True, [1], {"a": 1}, 5]
    if isinstance(kind, Choice):
        values += [*kind.values, kind.values[0].upper()]
    else:
        values += [0, -1, 100, 101, 3.0, 2.5, "3"]
    return values


def test_declared_connectors_agree_with_the_chart(helm: str) -> None:
    disagreements = []
    rounds = max(len(field_candidates(k)) for k in declared.FIELDS)
    for i in range(rounds):
        connectors = {}
        for key in declared.FIELDS:
            cands = field_candidates(key)
            if i < len(cands):
                connectors[f"c-{key.lower()}"] = {"config": {"connector.class": CONNECTOR}, key: cands[i]}
        values = {**BASE, "connectors": connectors}
        refused = schema_refusals(helm, values)
        objects = rendered(helm, values)
        doc = json.loads(one(objects, "ConfigMap")["data"]["connectors.json"]) if objects else {}
        for name, entry in connectors.items():
            key = next(k for k in entry if k != "config")
            chart_ok = refused is not None and not any(r.startswith(f"/connectors/{name}") for r in refused)
            sidecar_ok = True
            for data in ({name: entry}, {name: doc.get(name)}):  # as written by hand, and as the chart renders it
                try:
                    declared.parse(data)
                except declared.DeclarationError:
                    sidecar_ok = False
            if chart_ok != sidecar_ok:
                disagreements.append(f"connectors.{name}.{key}={entry[key]!r}: chart "
                                     f"{'accepts' if chart_ok else 'refuses'}, sidecar "
                                     f"{'accepts' if sidecar_ok else 'refuses'}")
    assert not disagreements, "\n".join(disagreements)
