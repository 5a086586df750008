"""Connectors declared in values (issue 4): the ConfigMap, the sidecar's view of it, and the apply hook Job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .render import CHART, SIDECAR_IMAGE, Obj, Render, by_kind, container, env_of, one, pod_spec

# Connect's own sink groups (connect-<name>): what these tests compare predates sinkConsumerGroups
# (tests/chart/test_identity.py covers the groups the chart gives).
BOOT = {"bootstrapServers": "kafka:9092", "sinkConsumerGroups": "connect"}
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
CONNECTORS = {
    "lines-source": {"config": {"connector.class": SOURCE, "file": "/tmp/in.txt", "topic": "lines", "tasks.max": 1}},
    "lines-sink": {
        "config": {
            "connector.class": SINK,
            "topics": "lines",
            "file": "/tmp/out.txt",
            "db.password": "${directory:/mnt/secrets/pg:password}",
            "errors.tolerance": "all",
            "errors.retry.timeout": 600000000,
            "value.converter.schemas.enable": False,
        },
        "state": "paused",
        "policy": "best-effort",
    },
}


def declared(objects: list[Obj]) -> dict[str, Any]:
    cm = one(objects, "ConfigMap", "rel-kafka-connect-connectors")
    assert set(cm["data"]) == {"connectors.json"}
    doc: dict[str, Any] = json.loads(cm["data"]["connectors.json"])
    return doc


def test_configmap_holds_the_declarations_with_defaults_filled_in(render: Render) -> None:
    doc = declared(render({**BOOT, "connectors": CONNECTORS}))
    assert doc == {
        "lines-source": {
            "config": {"connector.class": SOURCE, "file": "/tmp/in.txt", "topic": "lines", "tasks.max": "1"},
            "state": "running",
            "policy": "critical",
        },
        "lines-sink": {
            "config": {
                "connector.class": SINK,
                "topics": "lines",
                "file": "/tmp/out.txt",
                "db.password": "${directory:/mnt/secrets/pg:password}",
                "errors.tolerance": "all",
                "errors.retry.timeout": "600000000",
                "value.converter.schemas.enable": "false",
            },
            "state": "paused",
            "policy": "best-effort",
        },
    }


def test_connectors_scenario(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "10-connectors-values.yaml"])
    doc = declared(objects)
    assert doc["sandbox-sink"]["state"] == "stopped" and doc["sandbox-sink"]["policy"] == "best-effort"
    assert doc["sandbox-sink"]["config"]["transforms.route.regex"] == r"(.*)-\d+"
    assert doc["sandbox-sink"]["config"]["errors.retry.timeout"] == "600000000"
    assert doc["file-source"]["config"]["tasks.max"] == "1"


def test_sidecar_reads_the_declarations(render: Render) -> None:
    d = one(render({**BOOT, "connectors": CONNECTORS}), "Deployment")
    sidecar = container(d, "connect-health")
    assert env_of(sidecar)["CONNECT_HEALTH_CONNECTORS_FILE"] == "/etc/connect-health/connectors.json"
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "connectors")
    assert mount == {"name": "connectors", "mountPath": "/etc/connect-health", "readOnly": True}
    assert "subPath" not in mount, "a subPath mount is never refreshed by the kubelet"
    volume = next(v for v in pod_spec(d)["volumes"] if v["name"] == "connectors")
    assert volume["configMap"]["name"] == "rel-kafka-connect-connectors"
    assert all(m["name"] != "connectors" for m in container(d, "connect")["volumeMounts"])


def test_apply_job_is_a_post_install_upgrade_and_rollback_hook(render: Render) -> None:
    job = one(render({**BOOT, "connectors": CONNECTORS}), "Job")
    meta = job["metadata"]
    assert meta["name"] == "rel-kafka-connect-connectors-apply"
    assert meta["annotations"]["helm.sh/hook"] == "post-install,post-upgrade,post-rollback"
    assert set(meta["annotations"]["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    assert meta["labels"]["app.kubernetes.io/component"] == "connectors-apply"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 270 and spec["backoffLimit"] == 0
    pod = pod_spec(job)
    assert pod["restartPolicy"] == "Never"
    apply = container(job, "apply")
    assert apply["image"] == SIDECAR_IMAGE
    assert apply["command"] == [
        "connect-health",
        "apply",
        "--connect-url",
        "http://rel-kafka-connect-apply:8083",
        "--wait",
        "180",
    ]
    # The declared connectors file, auth and shared settings come as the CLI's environment twins, as in the sidecar.
    assert env_of(apply) == {
        "CONNECT_HEALTH_CONNECTORS_FILE": "/etc/connect-health/connectors.json",
        "CONNECT_HEALTH_REQUEST_TIMEOUT": "5",
        "CONNECT_HEALTH_LOG_FORMAT": "json",
    }
    assert {"name": "connectors", "mountPath": "/etc/connect-health", "readOnly": True} in apply["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == "connectors")
    assert volume["configMap"]["name"] == "rel-kafka-connect-connectors"


def test_apply_options_from_values(render: Render) -> None:
    job = one(
        render(
            {
                **BOOT,
                "restPort": 9083,
                "connectors": CONNECTORS,
                "connectorsApply": {
                    "prune": True,
                    "pruneSelector": "^lines-",
                    "wait": 120,
                    "activeDeadlineSeconds": 300,
                    "backoffLimit": 1,
                },
            }
        ),
        "Job",
    )
    command = container(job, "apply")["command"]
    assert command[command.index("--connect-url") + 1] == "http://rel-kafka-connect-apply:9083"
    assert command[command.index("--wait") + 1] == "120"
    assert command[-3:] == ["--prune", "--prune-selector", "^lines-"]
    assert job["spec"]["activeDeadlineSeconds"] == 300 and job["spec"]["backoffLimit"] == 1


def test_auth_reaches_the_job_and_the_sidecar(render: Render) -> None:
    objects = render(
        {
            **BOOT,
            "connectors": CONNECTORS,
            "healthcheck": {"auth": {"username": "ops", "existingSecret": "connect-rest", "passwordKey": "pw"}},
        }
    )
    for owner, name in ((one(objects, "Job"), "apply"), (one(objects, "Deployment"), "connect-health")):
        c = container(owner, name)
        assert {"name": "connect-auth", "mountPath": "/etc/connect-health-auth", "readOnly": True} in c["volumeMounts"]
        secret = next(v for v in pod_spec(owner)["volumes"] if v["name"] == "connect-auth")["secret"]
        assert secret == {"secretName": "connect-rest", "defaultMode": 0o440, "items": [{"key": "pw", "path": "pw"}]}
        env = env_of(c)
        assert env["CONNECT_HEALTH_CONNECT_USER"] == "ops"
        assert env["CONNECT_HEALTH_CONNECT_PASSWORD_FILE"] == "/etc/connect-health-auth/pw"


def test_nothing_declared_renders_no_configmap_job_or_sidecar_flag(render: Render) -> None:
    objects = render(BOOT)
    assert not by_kind(objects, "Job")
    assert [c["metadata"]["name"] for c in by_kind(objects, "ConfigMap")] == ["rel-kafka-connect-worker"]
    sidecar = container(one(objects, "Deployment"), "connect-health")
    assert "CONNECT_HEALTH_CONNECTORS_FILE" not in env_of(sidecar)
    assert all(m["name"] != "connectors" for m in sidecar["volumeMounts"])


def test_apply_can_be_turned_off_while_the_sidecar_still_reports_drift(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "connectorsApply": {"enabled": False}})
    assert not by_kind(objects, "Job")
    assert declared(objects)
    assert "CONNECT_HEALTH_CONNECTORS_FILE" in env_of(container(one(objects, "Deployment"), "connect-health"))


def test_prune_with_nothing_declared_applies_an_empty_declaration(render: Render) -> None:
    objects = render({**BOOT, "connectorsApply": {"prune": True, "pruneSelector": "^tmp-"}})
    assert declared(objects) == {}
    assert "--prune" in container(one(objects, "Job"), "apply")["command"]


def test_apply_job_runs_without_the_sidecar(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "healthcheck": {"enabled": False}})
    assert one(objects, "Job")
    assert declared(objects)
    assert [c["name"] for c in pod_spec(one(objects, "Deployment"))["containers"]] == ["connect"]


@pytest.mark.parametrize(
    "value",
    [
        "${directory:/mnt/secrets/pg:password}",
        "${file:/mnt/secrets/a.properties:k}",
        "${env:HOME}",
        "{{ .Release.Name }}",
    ],
)
def test_config_values_pass_through_untouched(render: Render, value: str) -> None:
    doc = declared(render({**BOOT, "connectors": {"c": {"config": {"connector.class": SINK, "x": value}}}}))
    assert doc["c"]["config"]["x"] == value


def test_a_per_connector_restart_ladder_reaches_the_sidecar_only_where_declared(render: Render) -> None:
    debezium = "io.debezium.connector.postgresql.PostgresConnector"
    connectors = {**CONNECTORS, "cdc": {"config": {"connector.class": debezium}, "restartAttempts": 0}}
    doc = declared(render({**BOOT, "connectors": connectors}))
    assert doc["cdc"]["restartAttempts"] == 0
    assert "restartAttempts" not in doc["lines-sink"] and "restartAttempts" not in doc["lines-source"]
