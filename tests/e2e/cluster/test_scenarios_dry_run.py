"""Every ci/ scenario of the chart, rendered by the real helm and sent to the real API server as a server-side dry
run (what `kubectl apply --dry-run=server` does): the server runs its validation and admission on each object
without storing it, so names, ports, env and volumes that pass the tests' OpenAPI schemas but that the server
refuses fail here (issue 19).

The prometheus-operator kinds (ServiceMonitor, PrometheusRule) need their CRDs: the node has none, so the test
registers minimal ones (any spec accepted: tests/chart/crd_schemas.py checks the spec strictly) and removes those it
registered. No pod starts, nothing is stored: one render and a few dozen API calls per scenario.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelp import ROOT, Kube, helm
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

CHART = ROOT / "charts" / "kafka-connect"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
SIDECAR_IMAGE = ROOT / "tests" / "chart" / "sidecar-image-values.yaml"
NAMESPACE = "e2e-dry-run"
CRDS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


def crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }


@pytest.fixture(scope="module")
def api(kube: Kube) -> Iterator[dynamic.DynamicClient]:
    dyn = dynamic.DynamicClient(kube.api_client)  # type: ignore[no-untyped-call]
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    mine = []
    for kind, plural in CRDS.items():
        try:
            crds.create(body=crd(kind, plural))
            mine.append(f"{plural}.monitoring.coreos.com")
        except ApiException as e:
            if e.status != 409:  # already there (a cluster with the operator): use it as it is
                raise
    core = client.CoreV1Api(kube.api_client)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as e:
        if e.status != 409:
            raise
    dyn.resources.invalidate_cache()
    try:
        yield dyn
    finally:
        core.delete_namespace(NAMESPACE)
        for name in mine:
            crds.delete(name=name)


def resource(api: dynamic.DynamicClient, obj: dict[str, Any]) -> Any:
    """The API resource of an object, waiting briefly for a CRD just registered to be served."""
    for _ in range(30):
        try:
            return api.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            time.sleep(1)
            api.resources.invalidate_cache()
    raise AssertionError(f"the API server serves no {obj['apiVersion']} {obj['kind']}")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name.removesuffix("-values.yaml") for p in SCENARIOS])
def test_the_api_server_accepts_every_object_of_the_scenario(api: dynamic.DynamicClient, scenario: Path) -> None:
    out = helm("template", "dry", str(CHART), "--namespace", NAMESPACE, "-f", str(SIDECAR_IMAGE),
               "-f", str(scenario))
    objects = [o for o in yaml.safe_load_all(out) if o]
    assert objects
    refused = []
    for obj in objects:
        try:
            resource(api, obj).create(body=obj, namespace=NAMESPACE, dry_run="All")
        except ApiException as e:
            refused.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.status} {e.body}")
    assert not refused, "\n".join(refused)
