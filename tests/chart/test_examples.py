"""examples/values-connectors.yaml, the per-connector values file the READMEs install with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .render import KUBE_VERSIONS, ROOT, SIDECAR_IMAGE_VALUES, container, lint_chart, one, render_chart
from .test_scenarios import validate_object

EXAMPLE = ROOT / "examples" / "values-connectors.yaml"
BOOT = {"bootstrapServers": "kafka-bootstrap.kafka.svc:9092"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_example_renders_valid_objects(helm: str, kube_version: str) -> None:
    for obj in render_chart(BOOT, values_files=[EXAMPLE], helm=helm, kube_version=kube_version):
        validate_object(obj, kube_version)


def test_example_lints(helm: str, tmp_path: Path) -> None:
    boot = tmp_path / "boot.yaml"
    boot.write_text(json.dumps(BOOT))
    lint_chart(helm, [SIDECAR_IMAGE_VALUES, EXAMPLE, boot])


def test_example_declares_the_filestream_pair(helm: str) -> None:
    objects = render_chart(BOOT, values_files=[EXAMPLE], helm=helm)
    declared = json.loads(one(objects, "ConfigMap", "rel-kafka-connect-connectors")["data"]["connectors.json"])
    assert set(declared) == {"lines-source", "lines-sink"}
    assert declared["lines-source"]["config"]["connector.class"].endswith("FileStreamSourceConnector")
    assert declared["lines-sink"]["config"]["topics"] == declared["lines-source"]["config"]["topic"]
    command = container(one(objects, "Job"), "apply")["command"]
    assert command[-3:] == ["--prune", "--prune-selector", "^lines-"]
    chart_yaml = (ROOT / "charts" / "kafka-connect" / "Chart.yaml").read_text()
    app_version = next(line.split('"')[1] for line in chart_yaml.splitlines() if line.startswith("appVersion"))
    props = one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"]
    assert f"plugin.path=/opt/kafka/libs/connect-file-{app_version}.jar\n" in props
