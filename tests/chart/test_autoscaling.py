"""autoscaling: an autoscaling/v2 HorizontalPodAutoscaler for the workers (issue 20), coherent with the PDB.

With the HPA on, the Deployment renders no `replicas`: the HPA owns the field, and a rendered value would be set back
by every `helm upgrade` (Helm 4's server-side apply owns it) and by every Argo CD sync (self-heal fights the HPA).
"""

from __future__ import annotations

from typing import Any

import pytest

from .render import KUBE_VERSIONS, HelmError, Render, by_kind, one
from .test_refusals import error_line
from .test_scenarios import validate_object

BOOT = {"bootstrapServers": "kafka:9092"}


def scaled(**autoscaling: Any) -> dict[str, Any]:
    return {**BOOT, "autoscaling": {"enabled": True, **autoscaling}}


def test_off_by_default(render: Render) -> None:
    objects = render(BOOT)
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    assert one(objects, "Deployment")["spec"]["replicas"] == 1


def test_hpa_targets_the_deployment_with_a_slow_scale_down(render: Render) -> None:
    objects = render(scaled(minReplicas=2, maxReplicas=5, targetCPUUtilizationPercentage=70,
                            targetMemoryUtilizationPercentage=85))
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    deployment = one(objects, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Resource",
         "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 85}}},
    ]
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 600
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}], "one worker at a time"
    assert "replicas" not in deployment["spec"], "the HPA owns spec.replicas"
    for kube in KUBE_VERSIONS:
        validate_object(hpa, kube)
        validate_object(deployment, kube)


def test_defaults_cpu_only(render: Render) -> None:
    hpa = one(render(scaled()), "HorizontalPodAutoscaler")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 4


def test_behavior_is_the_users(render: Render) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 900}, "scaleUp": {"stabilizationWindowSeconds": 60}}
    hpa = one(render({**BOOT, "autoscaling": {"enabled": True, "behavior": behavior}}), "HorizontalPodAutoscaler")
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60


REFUSED: dict[str, tuple[dict[str, Any], list[str]]] = {
    "min-above-max": (scaled(minReplicas=5, maxReplicas=3), ["autoscaling.minReplicas", "maxReplicas"]),
    "no-target": (scaled(targetCPUUtilizationPercentage=None),
                  ["autoscaling", "targetCPUUtilizationPercentage", "targetMemoryUtilizationPercentage"]),
    "pdb-min-available-blocks-at-min": (
        {**scaled(minReplicas=2), "podDisruptionBudget": {"enabled": True, "minAvailable": 2, "maxUnavailable": None}},
        ["podDisruptionBudget.minAvailable", "autoscaling.minReplicas"]),
    "pdb-percentage-blocks-at-min": (
        {**scaled(minReplicas=3), "podDisruptionBudget": {"enabled": True, "minAvailable": "100%",
                                                          "maxUnavailable": None}},
        ["podDisruptionBudget.minAvailable", "autoscaling.minReplicas"]),
    "cpu-target-without-cpu-request": (
        {**scaled(), "healthcheck": {"resources": {"requests": {"cpu": None}}}},
        ["autoscaling.targetCPUUtilizationPercentage", "connect-health", "cpu"]),
    "memory-target-without-memory-request": (
        {**scaled(targetMemoryUtilizationPercentage=80), "resources": {"requests": {"memory": None}}},
        ["autoscaling.targetMemoryUtilizationPercentage", "connect", "memory"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_contradictions_are_refused_in_one_line(render: Render, case: str) -> None:
    values, fragments = REFUSED[case]
    with pytest.raises(HelmError) as err:
        render(values)
    line = error_line(err.value.stderr, fragments[0])
    for fragment in fragments[1:]:
        assert fragment in line, f"{fragment!r} not in: {line}"


def test_a_pdb_that_leaves_room_at_min_replicas_renders(render: Render) -> None:
    objects = render({**scaled(minReplicas=3), "replicaCount": 1,
                      "podDisruptionBudget": {"enabled": True, "minAvailable": 2, "maxUnavailable": None}})
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3


@pytest.mark.parametrize("autoscaling", [
    {"enabled": True, "minReplicas": 0},
    {"enabled": True, "maxReplicas": 0},
    {"enabled": True, "targetCPUUtilizationPercentage": 0},
    {"enabled": True, "behaviour": {}},
], ids=["min-zero", "max-zero", "cpu-zero", "typo"])
def test_the_schema_refuses_bad_autoscaling_values(render: Render, autoscaling: dict[str, Any]) -> None:
    with pytest.raises(HelmError, match="autoscaling|Replicas|Utilization|behaviour"):
        render({**BOOT, "autoscaling": autoscaling})
