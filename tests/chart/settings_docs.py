"""The parts of the chart's values.schema.json and of README.md that are derived from the sidecar's option table.

    .tools/venv/bin/python tests/chart/settings_docs.py     # rewrite them from connect_health.options

Also charts/kafka-connect/files/sidecar-env.json, the environment twins `connect-health serve` reads (what
healthcheck.extraEnv may name).

Only the table's fragments of the schema (every value the chart passes straight to the sidecar, and the keys of
declared connectors the sidecar reads) and the README block between the markers are rewritten; nothing else in
either file changes. tests/chart/test_settings_agree.py fails when either drifts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connect_health import declared, options

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "charts" / "kafka-connect" / "values.schema.json"
README = ROOT / "README.md"
SIDECAR_ENV_FILE = ROOT / "charts" / "kafka-connect" / "files" / "sidecar-env.json"
# Settings of `serve` the chart sets without a healthcheck value of their own: the value that sets them instead.
CHART_SET = {"--connect-url": "restPort (the chart points the sidecar at its worker)",
             "--kubernetes-events": "rbac.events", "--connectors-file": "connectors",
             "--reconcile": "connectorsReconcile.enabled", "--reconcile-lease": "connectorsReconcile.enabled",
             "--reconcile-lease-duration": "connectorsReconcile.leaseDurationSeconds"}
BEGIN = "<!-- sidecar flags: generated from connect_health.options by tests/chart/settings_docs.py -->"
END = "<!-- end of sidecar flags -->"


def fragments() -> dict[str, dict[str, Any]]:
    """{path in the schema: the table's schema}, paths like healthcheck.grace or connectors.*.state."""
    out = dict(options.chart_schema())
    out.update({f"connectors.*.{key}": field.schema() for key, field in declared.FIELDS.items()})
    return out


def sidecar_env() -> dict[str, str]:
    """{environment twin: the chart value that sets it, or "" when only healthcheck.extraEnv can}, for every setting
    of `connect-health serve`: templates/_validate.tpl refuses other CONNECT_HEALTH_* names in healthcheck.extraEnv
    (the sidecar would ignore them) and those the chart already sets."""
    out = {o.env: o.chart or CHART_SET.get(o.flag, "") for o in options.for_command("serve")}
    out[options.ENV_PREFIX + "CONNECT_PASSWORD"] = ""
    return dict(sorted(out.items()))


def node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    here = schema
    for part in path.split("."):
        if part == "*":
            (here,) = here["patternProperties"].values()
        else:
            here = here["properties"][part]
    return here


def readme_block(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md has no {BEGIN} ... {END} block")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    for path, want in fragments().items():
        *parent, last = path.split(".")
        holder = node(schema, ".".join(parent)) if parent else schema
        holder["properties"][last] = want
    SCHEMA_FILE.write_text(json.dumps(schema, indent=2) + "\n")
    SIDECAR_ENV_FILE.write_text(json.dumps(sidecar_env(), indent=2) + "\n")
    text = README.read_text()
    old = readme_block(text)
    README.write_text(text.replace(f"{BEGIN}\n{old}", f"{BEGIN}\n{options.markdown_table()}", 1))


if __name__ == "__main__":
    write()
