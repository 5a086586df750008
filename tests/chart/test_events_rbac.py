"""rbac.events: the sidecar may post Events on its pod (connect_health.events); off by default (log lines only)."""

from __future__ import annotations

import pytest

from .render import CHART, NAMESPACE, NEWEST_KUBE, OLDEST_KUBE, Obj, Render, by_kind, container, env_of, one, pod_spec
from .test_scenarios import validate_object

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MINIMAL = [CHART / "ci" / "01-minimal-values.yaml"]


@pytest.fixture
def on(render: Render) -> list[Obj]:
    return render({"rbac": {"events": True}}, values_files=MINIMAL)


def test_off_by_default_no_role_no_token_no_switch(render: Render) -> None:
    objects = render(values_files=MINIMAL)
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    deployment = one(objects, "Deployment")
    sidecar = container(deployment, "connect-health")
    assert "CONNECT_HEALTH_KUBERNETES_EVENTS" not in env_of(sidecar)
    assert all(m["mountPath"] != TOKEN_DIR for m in sidecar.get("volumeMounts", []))


def test_role_allows_creating_events_in_the_namespace_only(on: list[Obj]) -> None:
    role, binding = one(on, "Role"), one(on, "RoleBinding")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    sa = one(on, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    for kube in (OLDEST_KUBE, NEWEST_KUBE):
        validate_object(role, kube)
        validate_object(binding, kube)
        validate_object(one(on, "Deployment"), kube)


def test_only_the_sidecar_gets_the_token_and_the_pod_names(on: list[Obj]) -> None:
    deployment = one(on, "Deployment")
    pod = pod_spec(deployment)
    assert pod["automountServiceAccountToken"] is False  # Connect never gets a token
    sidecar = container(deployment, "connect-health")
    env = env_of(sidecar)
    assert env["CONNECT_HEALTH_KUBERNETES_EVENTS"] == "true"
    assert {k: env[k]["fieldRef"]["fieldPath"] for k in ("POD_NAME", "POD_NAMESPACE", "POD_UID")} == {
        "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_UID": "metadata.uid"}
    (mount,) = [m for m in sidecar["volumeMounts"] if m["mountPath"] == TOKEN_DIR]
    assert mount["readOnly"] is True
    others = [c for c in pod["containers"] if c["name"] != "connect-health"]
    assert others and all(m["mountPath"] != TOKEN_DIR for c in others for m in c.get("volumeMounts", []))
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert {s["configMap"]["name"] for s in sources if "configMap" in s} == {"kube-root-ca.crt"}
