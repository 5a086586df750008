"""Every ci/*-values.yaml scenario: helm lint --strict, and every rendered object valid for Kubernetes.

Objects are validated strictly (unknown fields are errors) against the OpenAPI schemas of the oldest and newest
Kubernetes minors the chart supports, as shipped offline by kubernetes-validate; the two prometheus-operator kinds
against the CRD schemas in crd_schemas.py. A kind with no schema fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from .crd_schemas import CRD_SCHEMAS
from .render import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    NEWEST_KUBE,
    OLDEST_KUBE,
    SCENARIOS,
    HelmError,
    lint_chart,
    render_chart,
)

SCENARIO_IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STANDARD_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
}


def validate_object(obj: dict[str, Any], kube_version: str) -> None:
    crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd_schema is not None:
        jsonschema.Draft202012Validator(crd_schema).validate(obj)
        return
    kubernetes_validate.validate(obj, kube_version, strict=True)


def test_required_scenarios_exist() -> None:
    wanted = {
        "minimal",
        "sidecar-disabled",
        "shared-fate",
        "three-replicas-pdb",
        "plugins",
        "secrets",
        "monitoring",
        "cp-kafka-connect",
        "platform-team",
        "connectors",
        "production",
    }
    have = {re.sub(r"^\d+-", "", name) for name in SCENARIO_IDS}
    assert wanted <= have, f"missing scenarios: {sorted(wanted - have)}"
    minimal = yaml.safe_load((CHART / "ci" / "01-minimal-values.yaml").read_text())
    image = {"image": {"repository": minimal["healthcheck"]["image"]["repository"]}}
    assert minimal == {"bootstrapServers": minimal["bootstrapServers"], "groupId": minimal["groupId"],
                       "healthcheck": image}, (
        "the minimal scenario sets only bootstrapServers, groupId and the sidecar image the source chart leaves empty"
    )


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_lint_strict(helm: str, scenario: Path, kube_version: str) -> None:
    out = lint_chart(helm, [scenario], kube_version=kube_version)
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_objects_validate_strictly(helm: str, scenario: Path, kube_version: str) -> None:
    objects = render_chart(values_files=[scenario], helm=helm, kube_version=kube_version)
    assert objects, "nothing rendered"
    errors = []
    for obj in objects:
        try:
            validate_object(obj, kube_version)
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
        except jsonschema.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} @ {list(exc.absolute_path)}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_objects_named_labelled_and_namespaced(helm: str, scenario: Path) -> None:
    objects = render_chart(values_files=[scenario], helm=helm)
    seen = set()
    for obj in objects:
        meta = obj["metadata"]
        ident = (obj["kind"], meta["name"])
        assert ident not in seen, f"duplicate {ident}"
        seen.add(ident)
        assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63, ident
        assert meta.get("namespace") == NAMESPACE, f"{ident} not in the release namespace"
        labels = meta.get("labels", {})
        missing = (
            STANDARD_LABELS
            - labels.keys()
            - ({"app.kubernetes.io/component"} if obj["kind"] == "ServiceAccount" else set())
        )
        assert not missing, f"{ident} lacks {sorted(missing)}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "rel"


def test_a_bad_object_fails_validation() -> None:
    """The validator itself rejects what the chart must never render (guards against a no-op validation)."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c", "livenessProbe": {"enabled": True}}]}},
        },
    }
    for version in KUBE_VERSIONS:
        with pytest.raises(jsonschema.ValidationError, match="enabled"):
            validate_object(deployment, version)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "severity": "x"}]}]},
    }
    with pytest.raises(jsonschema.ValidationError, match="severity"):
        validate_object(rule, NEWEST_KUBE)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, NEWEST_KUBE)


def test_kube_version_below_the_supported_range_is_refused(helm: str) -> None:
    with pytest.raises(HelmError, match="kubeVersion"):
        render_chart(values={"bootstrapServers": "k:9092"}, helm=helm, kube_version="1.24.0")
    assert render_chart(values={"bootstrapServers": "k:9092"}, helm=helm, kube_version=OLDEST_KUBE)
