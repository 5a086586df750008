"""values.schema.json and the generated README: bad values are refused naming the key, docs never drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from .render import BAD_VALUES, CHART, ROOT, HelmError, render_chart

HELM_DOCS = ROOT / ".tools" / "bin" / "helm-docs"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def expectations(path: Path) -> list[str]:
    """The `# expect: <text>` header lines of a bad values file: each must appear in helm's error."""
    wanted = [m.group(1).strip() for m in re.finditer(r"^# expect: (.+)$", path.read_text(), re.M)]
    assert wanted, f"{path.name} has no `# expect:` line"
    return wanted


def test_there_are_enough_negative_cases() -> None:
    assert len(BAD_VALUES) >= 15


@pytest.mark.parametrize("bad", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_bad_values_are_refused_naming_the_key(helm: str, bad: Path) -> None:
    with pytest.raises(HelmError) as err:
        render_chart(values_files=[bad], helm=helm)
    message = err.value.stderr
    for text in expectations(bad):
        assert text in message, f"{text!r} not named in:\n{message}"


@pytest.mark.parametrize("bad", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_bad_files_are_valid_but_for_their_mistake(bad: Path) -> None:
    """A bad file sets a valid bootstrapServers (unless that is its mistake), so its own mistake is what fails."""
    values = yaml.safe_load(bad.read_text())
    if "bootstrap" in bad.stem:
        return
    assert re.fullmatch(r"[^,\s]+:[0-9]+", values["bootstrapServers"])


def test_schema_is_a_valid_draft7_schema_and_accepts_the_defaults_plus_bootstrap() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert not list(validator.iter_errors({**DEFAULTS, "bootstrapServers": "k:9092"}))
    errors = [e.message for e in validator.iter_errors(DEFAULTS)]
    assert any("''" in m or "too short" in m or "does not match" in m for m in errors), errors


def test_missing_bootstrap_servers_is_a_schema_error(helm: str) -> None:
    with pytest.raises(HelmError) as err:
        render_chart(helm=helm)
    assert "bootstrapServers" in err.value.stderr
    assert "schema" in err.value.stderr


def _objects_owned_by_chart(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of schema objects that declare properties but are left open (not strict)."""
    open_paths = []
    if schema.get("type") == "object" and ("properties" in schema or "patternProperties" in schema):
        if schema.get("additionalProperties", True) is not False:
            open_paths.append(path or "/")
    for key, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict):
            open_paths += _objects_owned_by_chart(sub, f"{path}/{key}")
    for sub in schema.get("patternProperties", {}).values():
        open_paths += _objects_owned_by_chart(sub, f"{path}/*")
    for sub in schema.get("oneOf", []):
        open_paths += _objects_owned_by_chart(sub, path)
    if isinstance(schema.get("items"), dict):
        open_paths += _objects_owned_by_chart(schema["items"], f"{path}[]")
    return open_paths


def test_schema_is_strict_wherever_the_chart_owns_the_keys() -> None:
    # Free-form passthroughs (resources, affinity, workerConfig values...) declare no properties: not listed.
    assert _objects_owned_by_chart(SCHEMA) == []


def _leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        out = []
        for key, sub in values.items():
            out += _leaf_paths(sub, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


def _documented_keys() -> set[str]:
    """Keys of values.yaml that carry a helm-docs `# --` comment."""
    documented: set[str] = set()
    stack: list[str] = []
    lines = (CHART / "values.yaml").read_text().splitlines()
    pending = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped or stripped.startswith("- "):
            continue
        match = re.match(r"^( *)([A-Za-z0-9_.\-\"']+):", line)
        if not match:
            continue
        indent = len(match.group(1)) // 2
        stack = stack[:indent] + [match.group(2)]
        if pending:
            documented.add(".".join(stack))
        pending = False
    return documented


def test_every_value_is_documented() -> None:
    documented = _documented_keys()
    undocumented = []
    for leaf in _leaf_paths(DEFAULTS):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            undocumented.append(leaf)
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


def test_readme_is_generated_from_values(tmp_path: Path) -> None:
    """Regenerate the README into a copy of the chart (as `make docs` does) and compare: drift fails."""
    assert HELM_DOCS.is_file(), f"{HELM_DOCS} is missing: run `make tools`"
    copy = tmp_path / "kafka-connect"
    shutil.copytree(CHART, copy)
    (copy / "README.md").unlink()
    proc = subprocess.run(
        [str(HELM_DOCS), "--skip-version-footer"], cwd=copy, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    generated = (copy / "README.md").read_text()
    current = (CHART / "README.md").read_text()
    assert generated == current, "charts/kafka-connect/README.md drifted from values.yaml: run `make docs`"
    rows = [line for line in generated.splitlines() if re.match(r"^\| [a-zA-Z]", line) and "Description" not in line]
    values_rows = rows[rows.index(next(r for r in rows if r.startswith("| affinity "))) :]
    assert len(values_rows) >= 100
    for row in values_rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 4 and cells[3], f"malformed or undocumented row: {row}"
