"""Connectors' lifecycle under Helm, Argo CD and Flux (issue 20), the chart's side.

- the apply Job runs on rollback too, and once under Argo CD (its own hook annotation, which makes Argo CD ignore
  Helm's: gitops-engine pkg/sync/hook/hook.go, `Types`);
- the Job reaches unready workers through the `<fullname>-apply` Service (publishNotReadyAddresses);
- offsets declared per connector, the `<fullname>-connector-requests` ConfigMap recording done requests, and the
  Role and token of whoever writes it;
- drift correction (connectorsReconcile): the sidecar's switches, its Lease and its rights; no hook at all when the
  Job is off.
Every rendered object is validated against the Kubernetes schemas (oldest and newest supported minors).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .netpol import allowed, pod_of
from .render import (
    KUBE_VERSIONS,
    NAMESPACE,
    HelmError,
    Obj,
    Render,
    by_kind,
    container,
    env_of,
    one,
    pod_spec,
)
from .test_refusals import error_line
from .test_scenarios import validate_object

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
BOOT = {"bootstrapServers": "kafka:9092", "sinkConsumerGroups": "cluster"}
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
CONNECTORS: dict[str, Any] = {"lines-sink": {"config": {"connector.class": SINK, "topics": "lines",
                                                        "file": "/tmp/out.txt"}}}
RESET = {"request": "2026-12-06 reprocess", "action": "reset"}
SET = {"request": "r1", "action": "set",
       "offsets": [{"partition": {"kafka_topic": "lines", "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]}
REQUESTS = "rel-kafka-connect-connector-requests"
APPLY_SERVICE = "rel-kafka-connect-apply"
LEASE = "rel-kafka-connect-reconcile"


def with_offsets(offsets: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {**BOOT, "connectors": {"lines-sink": {**CONNECTORS["lines-sink"], "offsets": offsets}}, **more}


def validate_all(objects: list[Obj]) -> None:
    for kube in KUBE_VERSIONS:
        for obj in objects:
            validate_object(obj, kube)


def hooks(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if "helm.sh/hook" in o["metadata"].get("annotations", {})
            or "argocd.argoproj.io/hook" in o["metadata"].get("annotations", {})]


def mounts_token(c: dict[str, Any]) -> bool:
    return any(m["mountPath"] == TOKEN_DIR for m in c.get("volumeMounts", []))


# --- (1) the apply Job runs on rollback, and once under Argo CD ----------------------------------------------------

def test_apply_job_runs_after_install_upgrade_and_rollback_and_once_under_argo_cd(render: Render) -> None:
    job = one(render({**BOOT, "connectors": CONNECTORS}), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"].split(",") == ["post-install", "post-upgrade", "post-rollback"]
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    # Argo CD maps post-install/post-upgrade to PostSync by itself; its own annotation replaces Helm's (so a Job is
    # never run twice) and its delete policy keeps a failed Job for its log, like Helm's.
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert set(annotations["argocd.argoproj.io/hook-delete-policy"].split(",")) == {
        "BeforeHookCreation", "HookSucceeded"}


# --- (2) the Job reaches unready workers -------------------------------------------------------------------------

def test_the_apply_service_includes_unready_workers_and_the_job_calls_it(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "restPort": 9083})
    main, apply = one(objects, "Service", "rel-kafka-connect"), one(objects, "Service", APPLY_SERVICE)
    assert apply["spec"]["publishNotReadyAddresses"] is True
    assert apply["spec"]["type"] == "ClusterIP"
    assert apply["spec"]["selector"] == main["spec"]["selector"]
    assert apply["spec"]["ports"] == [{"name": "http", "port": 9083, "targetPort": "http", "protocol": "TCP"}]
    assert "publishNotReadyAddresses" not in main["spec"], "clients of the main Service still see Ready pods only"
    command = container(one(objects, "Job"), "apply")["command"]
    assert command[command.index("--connect-url") + 1] == f"http://{APPLY_SERVICE}:9083"
    validate_all(objects)


def test_no_apply_service_without_the_job(render: Render) -> None:
    assert not [s for s in by_kind(render(BOOT), "Service") if s["metadata"]["name"] == APPLY_SERVICE]
    off = render({**BOOT, "connectors": CONNECTORS, "connectorsApply": {"enabled": False}})
    assert [s["metadata"]["name"] for s in by_kind(off, "Service")] == ["rel-kafka-connect"]


def test_the_network_policy_admits_the_job_on_the_port_the_apply_service_targets(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "networkPolicy": {"enabled": True}})
    service = one(objects, "Service", APPLY_SERVICE)
    worker = pod_of(one(objects, "Deployment"))
    assert all(worker["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    (port,) = service["spec"]["ports"]
    ports = [p for c in worker["spec"]["containers"] for p in c.get("ports", [])]
    target = next(p for p in ports if p["name"] == port["targetPort"])
    job_pod = pod_of(one(objects, "Job"))
    verdict = allowed(by_kind(objects, "NetworkPolicy"), job_pod, {}, worker, None, target["containerPort"])
    assert verdict.allowed, verdict
    outsider = {"metadata": {"namespace": "elsewhere", "name": "x", "labels": {}}}
    assert not allowed(by_kind(objects, "NetworkPolicy"), outsider, {}, worker, None, target["containerPort"]).allowed


# --- (3) offsets as code ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("offsets", [RESET, SET], ids=["reset", "set"])
def test_offsets_are_rendered_into_the_declared_connector(render: Render, offsets: dict[str, Any]) -> None:
    objects = render(with_offsets(offsets))
    doc = json.loads(one(objects, "ConfigMap", "rel-kafka-connect-connectors")["data"]["connectors.json"])
    assert doc["lines-sink"]["offsets"] == offsets
    validate_all(objects)


def test_no_offsets_key_when_none_declared(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS})
    doc = json.loads(one(objects, "ConfigMap", "rel-kafka-connect-connectors")["data"]["connectors.json"])
    assert "offsets" not in doc["lines-sink"]
    assert not [o for o in objects if o["metadata"]["name"] == REQUESTS]
    assert not by_kind(objects, "Role")


def test_requests_configmap_is_empty_and_kept(render: Render) -> None:
    cm = one(render(with_offsets(RESET)), "ConfigMap", REQUESTS)
    assert cm["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # Argo CD: Delete=false
    # kept by Argo CD too when a later revision no longer renders it (no offsets declared, reconcile off)
    assert cm["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    assert not cm.get("data"), "rendered empty: the writers own its data, an upgrade must not wipe it"
    assert cm["metadata"]["namespace"] == NAMESPACE


def test_the_job_alone_may_write_the_requests_configmap(render: Render) -> None:
    objects = render(with_offsets(RESET))
    role = one(objects, "Role", REQUESTS)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [REQUESTS],
                              "verbs": ["get", "update", "patch"]}]
    binding = one(objects, "RoleBinding", REQUESTS)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": REQUESTS}
    job = one(objects, "Job")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod_spec(job)["serviceAccountName"],
                                    "namespace": NAMESPACE}]
    assert pod_spec(job)["automountServiceAccountToken"] is False
    apply = container(job, "apply")
    assert mounts_token(apply)
    env = env_of(apply)
    assert env["CONNECT_HEALTH_REQUESTS_CONFIGMAP"] == REQUESTS
    assert env["CONNECT_HEALTH_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # without reconcile the workers get neither the token nor the switches
    deployment = one(objects, "Deployment")
    assert not any(mounts_token(c) for c in pod_spec(deployment)["containers"])
    assert "CONNECT_HEALTH_REQUESTS_CONFIGMAP" not in env_of(container(deployment, "connect-health"))
    validate_all(objects)


@pytest.mark.parametrize(("offsets", "fragments"), [
    ({"request": "r", "action": "set"}, ["connectors.lines-sink.offsets", "set", "offsets"]),
    ({**RESET, "offsets": SET["offsets"]}, ["connectors.lines-sink.offsets", "reset", "offsets"]),
], ids=["set-without-offsets", "reset-with-offsets"])
def test_offsets_actions_are_checked(render: Render, offsets: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(HelmError) as err:
        render(with_offsets(offsets))
    line = error_line(err.value.stderr, fragments[0])
    for fragment in fragments[1:]:
        assert fragment in line, line


@pytest.mark.parametrize("offsets", [
    {"request": "", "action": "reset"},
    {"action": "reset"},
    {"request": "r", "action": "rewind"},
    {"request": "r", "action": "reset", "extra": 1},
    {"request": "r", "action": "set", "offsets": [{"partition": {"a": 1}}]},
    {"request": "r", "action": "set", "offsets": []},
    {"request": "r", "action": "set", "offsets": [{"partition": {}, "offset": {"kafka_offset": 0}}]},
    {"request": "   ", "action": "reset"},
    {"request": "r" * 254, "action": "reset"},
], ids=["empty-request", "no-request", "unknown-action", "unknown-key", "item-without-offset", "empty-offsets",
        "empty-partition", "blank-request", "request-too-long"])
def test_malformed_offsets_are_refused_by_the_schema(render: Render, offsets: dict[str, Any]) -> None:
    with pytest.raises(HelmError) as err:
        render(with_offsets(offsets))
    assert "schema" in err.value.stderr and "lines-sink" in err.value.stderr, err.value.stderr


def test_offsets_without_the_apply_job_are_refused(render: Render) -> None:
    """The sidecars' drift correction never runs an offsets action (a one-shot request is the Job's): declared with
    the Job off it would silently never happen."""
    with pytest.raises(HelmError) as err:
        render(with_offsets(RESET, connectorsApply={"enabled": False}, connectorsReconcile={"enabled": True}))
    assert "connectorsApply.enabled" in error_line(err.value.stderr, "connectors.lines-sink.offsets")


@pytest.mark.parametrize("version", ["3.5.2", "3.5.0"])
def test_offsets_on_kafka_before_3_6_are_refused(render: Render, version: str) -> None:
    with pytest.raises(HelmError) as err:
        render(with_offsets(RESET, kafkaVersion=version))
    line = error_line(err.value.stderr, "connectors.lines-sink.offsets")
    assert version in line and "3.6" in line, line


@pytest.mark.parametrize("version", ["3.6.0", "3.9.1"])
def test_offsets_on_kafka_3_6_and_later_render(render: Render, version: str) -> None:
    assert one(render(with_offsets(RESET, kafkaVersion=version)), "ConfigMap", REQUESTS)


def test_requests_rbac_refused_on_the_default_service_account(render: Render) -> None:
    with pytest.raises(HelmError) as err:
        render(with_offsets(RESET, serviceAccount={"create": False}))
    line = error_line(err.value.stderr, "serviceAccount.name")
    assert "default" in line, line
    named = render(with_offsets(RESET, serviceAccount={"create": False, "name": "connect"}))
    assert one(named, "RoleBinding", REQUESTS)["subjects"][0]["name"] == "connect"


# --- (4) drift correction ----------------------------------------------------------------------------------------

def reconcile(**more: Any) -> dict[str, Any]:
    return {**BOOT, "connectors": CONNECTORS, "connectorsReconcile": {"enabled": True}, **more}


def test_reconcile_switches_the_sidecar_on_with_its_lease(render: Render) -> None:
    objects = render(reconcile())
    deployment = one(objects, "Deployment")
    sidecar = container(deployment, "connect-health")
    env = env_of(sidecar)
    assert env["CONNECT_HEALTH_RECONCILE"] == "1"
    assert env["CONNECT_HEALTH_RECONCILE_LEASE"] == LEASE
    assert env["CONNECT_HEALTH_RECONCILE_LEASE_DURATION"] == "15"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}, "the Lease holder's identity"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "the Lease's namespace"
    # `serve` has no --requests-configmap: drift correction never runs an offsets action (only the Job does)
    assert not {"CONNECT_HEALTH_REQUESTS_CONFIGMAP", "CONNECT_HEALTH_NAMESPACE"} & set(env)
    assert mounts_token(sidecar)
    pod = pod_spec(deployment)
    assert pod["automountServiceAccountToken"] is False
    assert not any(mounts_token(c) for c in pod["containers"] if c["name"] != "connect-health")
    assert not mounts_token(container(one(objects, "Job"), "apply")), "no offsets declared: nothing to record"
    validate_all(objects)


def test_reconcile_with_offsets_leaves_the_requests_to_the_job(render: Render) -> None:
    objects = render(with_offsets(RESET, connectorsReconcile={"enabled": True}))
    sidecar = container(one(objects, "Deployment"), "connect-health")
    assert "CONNECT_HEALTH_REQUESTS_CONFIGMAP" not in env_of(sidecar)
    apply = container(one(objects, "Job"), "apply")
    assert env_of(apply)["CONNECT_HEALTH_REQUESTS_CONFIGMAP"] == REQUESTS and mounts_token(apply)
    assert one(objects, "Role", REQUESTS) and one(objects, "ConfigMap", REQUESTS)
    validate_all(objects)


def test_the_requests_configmap_is_no_setting_of_the_sidecar(render: Render) -> None:
    """--requests-configmap is `apply`'s alone: in healthcheck.extraEnv the sidecar would ignore it."""
    with pytest.raises(HelmError) as err:
        render(reconcile(healthcheck={"extraEnv": {"CONNECT_HEALTH_REQUESTS_CONFIGMAP": REQUESTS}}))
    line = error_line(err.value.stderr, "healthcheck.extraEnv.CONNECT_HEALTH_REQUESTS_CONFIGMAP")
    assert "not a connect-health setting" in line, line


def test_lease_duration_from_values_and_bounded_like_the_sidecars_flag(render: Render) -> None:
    objects = render(reconcile(connectorsReconcile={"enabled": True, "leaseDurationSeconds": 30}))
    assert env_of(container(one(objects, "Deployment"), "connect-health"))[
        "CONNECT_HEALTH_RECONCILE_LEASE_DURATION"] == "30"
    with pytest.raises(HelmError, match="leaseDurationSeconds"):
        render(reconcile(connectorsReconcile={"enabled": True, "leaseDurationSeconds": 2}))


def test_reconcile_off_by_default(render: Render) -> None:
    sidecar = container(one(render({**BOOT, "connectors": CONNECTORS}), "Deployment"), "connect-health")
    assert not {"CONNECT_HEALTH_RECONCILE", "CONNECT_HEALTH_RECONCILE_LEASE"} & set(env_of(sidecar))
    assert not mounts_token(sidecar)


def test_reconcile_rbac_is_one_lease(render: Render) -> None:
    objects = render(reconcile())
    role = one(objects, "Role", LEASE)
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [LEASE],
         "verbs": ["get", "update"]},
        # create cannot be limited by name (the name is not known before the object exists)
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    binding = one(objects, "RoleBinding", LEASE)
    assert binding["roleRef"]["name"] == LEASE
    assert binding["subjects"][0]["name"] == pod_spec(one(objects, "Deployment"))["serviceAccountName"]
    # no offsets declared: no requests to record, so neither the ConfigMap nor rights on it
    assert [r["metadata"]["name"] for r in by_kind(objects, "Role")] == [LEASE]
    assert not [o for o in objects if o["metadata"]["name"] == REQUESTS]


def test_reconcile_without_the_apply_job_renders_no_hook_at_all(render: Render) -> None:
    objects = render(reconcile(connectorsApply={"enabled": False}, tests={"enabled": False}))
    assert hooks(objects) == []
    assert not by_kind(objects, "Job")
    assert not [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == APPLY_SERVICE]
    assert env_of(container(one(objects, "Deployment"), "connect-health"))["CONNECT_HEALTH_RECONCILE"] == "1"
    assert one(objects, "ConfigMap", "rel-kafka-connect-connectors")
    validate_all(objects)


def test_reconcile_with_events_mounts_one_token(render: Render) -> None:
    objects = render(reconcile(rbac={"events": True}))
    deployment = one(objects, "Deployment")
    sidecar = container(deployment, "connect-health")
    assert len([m for m in sidecar["volumeMounts"] if m["mountPath"] == TOKEN_DIR]) == 1
    names = [e["name"] for e in sidecar["env"]]
    assert len(names) == len(set(names))
    validate_all(objects)


def test_reconcile_needs_the_sidecar_and_a_named_service_account(render: Render) -> None:
    with pytest.raises(HelmError) as err:
        render(reconcile(healthcheck={"enabled": False}))
    assert "healthcheck.enabled" in error_line(err.value.stderr, "connectorsReconcile")
    with pytest.raises(HelmError) as err:
        render(reconcile(serviceAccount={"create": False}))
    assert "default" in error_line(err.value.stderr, "serviceAccount.name")
