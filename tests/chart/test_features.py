"""Everything around the worker: security defaults, plugins, secrets, monitoring, PDB, NetworkPolicy, passthroughs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .render import CHART, SCENARIOS, Obj, Render, by_kind, container, env_of, one, pod_spec, properties

BOOT = {"bootstrapServers": "kafka:9092"}
SCENARIO_IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]
# The sidecar's metric names (contract), which every alert and dashboard query must use.
CONTRACT_METRICS = {
    "connect_health_worker_reachable",
    "connect_health_probe_healthy",
    "connect_health_connector_state",
    "connect_health_task_state",
    "connect_health_connector_failed",
    "connect_health_restarts_total",
    "connect_health_poll_duration_seconds",
    "connect_health_drift",
    "connect_health_tasks",
    "connect_health_task_stalled",  # issue 21: RUNNING tasks without progress (progress.py)
}


def chart_containers(objects: list[Obj]) -> Iterator[tuple[Obj, dict[str, Any]]]:
    """(owner, container) for every container the chart itself defines (extraContainers excluded)."""
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job", "Pod"):
            continue
        spec = pod_spec(obj)
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["name"] in ("log-shipper",):
                continue
            yield obj, c


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_hardened_by_default(render: Render, scenario: Path) -> None:
    objects = render(values_files=[scenario])
    seen = 0
    for owner, c in chart_containers(objects):
        seen += 1
        ident = f"{owner['kind']}/{owner['metadata']['name']}/{c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, ident
        assert sc.get("readOnlyRootFilesystem") is True, ident
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], ident
        assert not sc.get("privileged"), ident
        pod = pod_spec(owner)
        assert pod["securityContext"]["runAsNonRoot"] is True, ident
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, ident
        assert pod["automountServiceAccountToken"] is False, ident
    assert seen >= 2
    for sa in by_kind(objects, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_writable_dirs_are_emptydirs(render: Render) -> None:
    d = one(render(BOOT), "Deployment")
    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(d, "connect")["volumeMounts"]}
    for path in ("/tmp", "/opt/kafka/logs"):
        assert "emptyDir" in volumes[mounts[path]], path
    sidecar_mounts = {m["mountPath"]: m["name"] for m in container(d, "connect-health")["volumeMounts"]}
    assert "emptyDir" in volumes[sidecar_mounts["/tmp"]]
    # The image's appuser (uid 1000) must be numeric for runAsNonRoot to be checkable.
    assert pod_spec(d)["securityContext"]["runAsUser"] == 1000


def test_sidecar_absent_when_disabled(render: Render) -> None:
    objects = render({**BOOT, "healthcheck": {"enabled": False}, "networkPolicy": {"enabled": True}})
    d = one(objects, "Deployment")
    assert [c["name"] for c in pod_spec(d)["containers"]] == ["connect"]
    assert all(not v["name"].startswith(("health-", "connect-auth")) for v in pod_spec(d)["volumes"])
    assert [p["name"] for p in one(objects, "Service")["spec"]["ports"]] == ["http"]
    assert len(one(objects, "NetworkPolicy")["spec"]["ingress"]) == 1
    assert one(objects, "Pod")["spec"]["containers"][0]["command"][-1] == "http://rel-kafka-connect:8083/health"
    assert "CONNECT_HEALTH_" not in json.dumps(objects)


def test_sidecar_settings_become_env(render: Render) -> None:
    d = one(
        render(
            {
                **BOOT,
                "healthcheck": {
                    "scope": "cluster",
                    "pollInterval": 2,
                    "grace": 120,
                    "restartAttempts": 0,
                    "restartBackoff": 15,
                    "restartReset": 900,
                    "unresponsiveAfter": 45,
                    "herderStuckAfter": 1800,
                    "requestTimeout": 3,
                    "bestEffort": "^sandbox-",
                    "failureThreshold": 25,
                    "flapWindow": 90,
                    "podRestarts": 0,
                    "podRestartWindow": 7200,
                    "traces": "none",
                    "logFormat": "text",
                    "extraEnv": {"CONNECT_HEALTH_WORKER_ID": "$(POD_IP):8083"},
                    "image": {"repository": "registry/ch", "tag": "0.2.0"},
                },
            }
        ),
        "Deployment",
    )
    sidecar = container(d, "connect-health")
    assert sidecar["image"] == "registry/ch:0.2.0"
    # the state file's folder is an emptyDir of the pod: it outlives both containers' restarts (sharedFate)
    tmp = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == tmp["name"])
    assert sidecar["command"] == ["connect-health", "serve"]
    env = env_of(sidecar)
    assert {k: v for k, v in env.items() if k.startswith("CONNECT_HEALTH_")} == {
        "CONNECT_HEALTH_CONNECT_URL": "http://127.0.0.1:8083",
        "CONNECT_HEALTH_STATE_FILE": "/tmp/connect-health-state.json",  # on the health-tmp emptyDir
        "CONNECT_HEALTH_PORT": "8090",
        "CONNECT_HEALTH_PROBE_PORT": "8091",  # the kubelet's probes on their own listener
        "CONNECT_HEALTH_SCOPE": "cluster",
        "CONNECT_HEALTH_POLL_INTERVAL": "2",
        "CONNECT_HEALTH_GRACE": "120",
        "CONNECT_HEALTH_RESTART_ATTEMPTS": "0",
        "CONNECT_HEALTH_RESTART_BACKOFF": "15",
        "CONNECT_HEALTH_RESTART_RESET": "900",
        "CONNECT_HEALTH_UNRESPONSIVE_AFTER": "45",
        "CONNECT_HEALTH_HERDER_STUCK_AFTER": "1800",
        "CONNECT_HEALTH_REQUEST_TIMEOUT": "3",
        "CONNECT_HEALTH_BEST_EFFORT": "^sandbox-",
        "CONNECT_HEALTH_FAILURE_THRESHOLD": "25",
        "CONNECT_HEALTH_FLAP_WINDOW": "90",
        "CONNECT_HEALTH_POD_RESTARTS": "0",
        "CONNECT_HEALTH_POD_RESTART_WINDOW": "7200",
        "CONNECT_HEALTH_STALL_AFTER": "300",  # inert without metrics.jmxExporter (no CONNECT_HEALTH_WORKER_METRICS_URL)
        "CONNECT_HEALTH_TRACES": "none",
        "CONNECT_HEALTH_LOG_FORMAT": "text",
        "CONNECT_HEALTH_WORKER_ID": "$(POD_IP):8083",
    }
    defaults = env_of(container(one(render(BOOT), "Deployment"), "connect-health"))
    assert "CONNECT_HEALTH_BEST_EFFORT" not in defaults and "CONNECT_HEALTH_FAILURE_THRESHOLD" not in defaults
    assert "CONNECT_HEALTH_CONNECT_USER" not in defaults


def test_plugins_are_copied_by_init_containers(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "05-plugins-values.yaml"])
    d = one(objects, "Deployment")
    inits = pod_spec(d)["initContainers"]
    assert [c["name"] for c in inits] == ["plugin-debezium-postgres", "plugin-s3-sink"]
    assert inits[0]["image"] == "registry.example.com/connect-plugins/debezium-postgres:3.6.1"
    assert inits[0]["command"] == ["cp", "-R", "/plugins/.", "/mnt/plugin/"]
    assert inits[1]["command"] == ["cp", "-R", "/usr/share/plugins/s3-sink/.", "/mnt/plugin/"]
    assert inits[1]["imagePullPolicy"] == "Always"
    assert inits[0]["volumeMounts"] == [{"name": "plugins", "mountPath": "/mnt/plugin", "subPath": "debezium-postgres"}]
    assert inits[0]["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}}
    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
    assert volumes["plugins"] == {"name": "plugins", "emptyDir": {}}
    assert {"name": "plugins", "mountPath": "/opt/kafka/plugins", "readOnly": True} in container(d, "connect")[
        "volumeMounts"
    ]
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    assert props["plugin.path"] == "/opt/kafka/plugins,/opt/kafka/libs/connect-file-4.3.1.jar"


def test_plugin_command_override(render: Render) -> None:
    d = one(
        render(
            {**BOOT, "plugins": [{"name": "p", "image": "i:1", "command": ["sh", "-c", "unzip /p.zip -d /mnt/plugin"]}]}
        ),
        "Deployment",
    )
    assert pod_spec(d)["initContainers"][0]["command"] == ["sh", "-c", "unzip /p.zip -d /mnt/plugin"]
    d = one(render(BOOT), "Deployment")
    assert "initContainers" not in pod_spec(d)
    assert all(v["name"] != "plugins" for v in pod_spec(d)["volumes"])


def test_secret_mounts_and_config_providers(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "06-secrets-values.yaml"])
    d = one(objects, "Deployment")
    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
    assert volumes["secret-pg"]["secret"] == {"secretName": "pg-credentials", "defaultMode": 0o440}
    assert volumes["secret-rest-jaas"]["secret"] == {"secretName": "connect-rest-jaas", "defaultMode": 256}
    assert volumes["kafka-tls"]["secret"] == {"secretName": "kafka-client-tls", "defaultMode": 0o440}
    mounts = {m["name"]: m for m in container(d, "connect")["volumeMounts"]}
    assert mounts["secret-pg"] == {"name": "secret-pg", "mountPath": "/mnt/secrets/pg", "readOnly": True}
    assert mounts["secret-rest-jaas"]["mountPath"] == "/mnt/rest"
    assert mounts["kafka-tls"] == {"name": "kafka-tls", "mountPath": "/mnt/kafka/tls", "readOnly": True}
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    assert props["config.providers"] == "directory,env,file"
    assert (
        props["config.providers.directory.class"] == "org.apache.kafka.common.config.provider.DirectoryConfigProvider"
    )
    assert props["config.providers.file.class"] == "org.apache.kafka.common.config.provider.FileConfigProvider"
    for provider in ("directory", "file"):
        # /mnt/rest (the REST basic-auth JAAS and users files) is mounted with configProviders: false, and the
        # worker's own /mnt/kafka/tls passwords are resolved by the worker-config init container.
        assert props[f"config.providers.{provider}.param.allowed.paths"] == "/mnt/secrets/pg"
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SSL"
        assert props[f"{prefix}ssl.truststore.password"] == "@@kafka-secret:tls/truststore.password@@"


def test_two_secret_mounts_on_one_path_are_refused(render: Render) -> None:
    from .render import HelmError

    with pytest.raises(HelmError, match=r"secretMounts\.b: mountPath /mnt/x is already used by secretMounts\.a"):
        render(
            {
                **BOOT,
                "secretMounts": {
                    "a": {"secretName": "a", "mountPath": "/mnt/x"},
                    "b": {"secretName": "b", "mountPath": "/mnt/x"},
                },
            }
        )


def test_pdb(render: Render) -> None:
    pdb = one(render(values_files=[CHART / "ci" / "04-three-replicas-pdb-values.yaml"]), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    pdb = one(
        render({**BOOT, "replicaCount": 3,
                "podDisruptionBudget": {"enabled": True, "minAvailable": "50%", "maxUnavailable": None}}),
        "PodDisruptionBudget",
    )
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert not by_kind(render(BOOT), "PodDisruptionBudget")


def test_three_replicas_spread(render: Render) -> None:
    d = one(render(values_files=[CHART / "ci" / "04-three-replicas-pdb-values.yaml"]), "Deployment")
    assert d["spec"]["replicas"] == 3
    constraint = pod_spec(d)["topologySpreadConstraints"][0]
    # A constraint without labelSelector gets the workers' selector.
    assert constraint["labelSelector"] == {"matchLabels": d["spec"]["selector"]["matchLabels"]}
    term = pod_spec(d)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "rel"  # via tpl


def test_network_policy(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "09-platform-team-values.yaml"])
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rest, health = policy["spec"]["ingress"]
    assert rest["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rest["from"][0] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kafka-connect", "app.kubernetes.io/instance": "rel"}}
    }
    assert rest["from"][1] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform-tools"}}}
    assert health["ports"] == [{"port": "health", "protocol": "TCP"}, {"port": "probes", "protocol": "TCP"}]
    assert health["from"] == [
        rest["from"][0],  # the release's own pods: the helm test pod calls /readyz through the Service
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]
    open_health = one(render({**BOOT, "networkPolicy": {"enabled": True}}), "NetworkPolicy")["spec"]["ingress"][1]
    assert "from" not in open_health, "empty healthFrom allows every source"
    assert not by_kind(render(BOOT), "NetworkPolicy")


def test_platform_passthroughs(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "09-platform-team-values.yaml"])
    d = one(objects, "Deployment")
    pod = pod_spec(d)
    connect = container(d, "connect")
    assert connect["image"] == "registry.example.com/mirror/apache/kafka@sha256:" + "0123456789abcdef" * 4
    assert pod["imagePullSecrets"] == [{"name": "registry-example-com"}]
    assert pod["priorityClassName"] == "platform-critical"
    assert pod["nodeSelector"] == {"node-pool": "connect"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    env = env_of(connect)
    assert env["TZ"] == "UTC"
    assert env["RELEASE_NAME"] == "rel"  # through tpl
    assert env["KAFKA_JMX_OPTS"] == {"configMapKeyRef": {"name": "jmx-settings", "key": "opts"}}
    assert {"name": "jmx-exporter-config", "mountPath": "/etc/jmx-exporter", "readOnly": True} in connect[
        "volumeMounts"
    ]
    assert {"name": "jmx-exporter-config", "configMap": {"name": "jmx-exporter-config"}} in pod["volumes"]
    shipper = container(d, "log-shipper")
    assert shipper["args"] == ["--config", "/etc/fluent-bit/rel.conf"]  # through tpl
    assert [c["name"] for c in pod["containers"]] == ["connect", "connect-health", "log-shipper"]
    sa = one(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/orders-connect"
    }
    assert d["spec"]["template"]["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_extra_containers_as_template_strings(render: Render) -> None:
    d = one(
        render(
            {
                **BOOT,
                "extraContainers": {
                    "b-exporter": 'image: exporter:1\nargs: ["--target={{ .Release.Name }}"]',
                    "a-proxy": {"image": "proxy:2"},
                },
            }
        ),
        "Deployment",
    )
    names = [c["name"] for c in pod_spec(d)["containers"]]
    assert names == ["connect", "connect-health", "a-proxy", "b-exporter"]
    assert container(d, "b-exporter")["args"] == ["--target=rel"]


def test_service_account_can_be_external(render: Render) -> None:
    objects = render({**BOOT, "serviceAccount": {"create": False, "name": "shared"}})
    assert not by_kind(objects, "ServiceAccount")
    assert pod_spec(one(objects, "Deployment"))["serviceAccountName"] == "shared"
    objects = render({**BOOT, "serviceAccount": {"create": False}})
    assert pod_spec(one(objects, "Deployment"))["serviceAccountName"] == "default"


def test_cp_kafka_connect_override(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "08-cp-kafka-connect-values.yaml"])
    connect = container(one(objects, "Deployment"), "connect")
    assert connect["image"] == "confluentinc/cp-kafka-connect:8.0.0"
    assert connect["command"] == ["/usr/bin/connect-distributed", "/etc/kafka-connect/connect-distributed.properties"]
    assert env_of(connect)["LOG_DIR"] == "/var/log/kafka-connect"
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    assert props["plugin.path"] == "/usr/share/java,/usr/share/confluent-hub-components"


class TestMonitoring:
    @pytest.fixture
    def objects(self, render: Render) -> list[Obj]:
        return render(values_files=[CHART / "ci" / "07-monitoring-values.yaml"])

    def test_service_monitor_scrapes_the_sidecar(self, objects: list[Obj]) -> None:
        sm = one(objects, "ServiceMonitor")
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert sm["spec"]["namespaceSelector"] == {"matchNames": ["team-a"]}
        (endpoint,) = sm["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == (
            "health",
            "/metrics",
            "15s",
            "5s",
        )
        assert endpoint["metricRelabelings"][0]["action"] == "drop"
        service = one(objects, "Service")
        assert "health" in [p["name"] for p in service["spec"]["ports"]]
        assert all(service["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())

    def test_alerts(self, objects: list[Obj]) -> None:
        rule = one(objects, "PrometheusRule")
        (group,) = rule["spec"]["groups"]
        alerts = {r["alert"]: r for r in group["rules"]}
        assert set(alerts) == {
            "KafkaConnectConnectorFailed",
            "KafkaConnectConnectorNeedsAction",
            "KafkaConnectWorkerUnreachable",
            "KafkaConnectRestartRateHigh",
            "KafkaConnectDrift",  # the scenario's additionalRules
            "KafkaConnectSidecarDown",
            "KafkaConnectConnectorDrift",
            "KafkaConnectUnassigned",
            "KafkaConnectTaskStalled",
        }
        sel = 'namespace="team-a", job="rel-kafka-connect"'
        assert alerts["KafkaConnectSidecarDown"]["expr"] == f'up{{{sel}, endpoint="health"}} == 0'
        assert alerts["KafkaConnectUnassigned"]["expr"] == (
            f'max by (namespace, job, connector) (connect_health_task_state{{{sel}, state="UNASSIGNED"}} or '
            f'connect_health_connector_state{{{sel}, state="UNASSIGNED"}}) == 1')
        assert alerts["KafkaConnectConnectorFailed"]["expr"] == (
            f'max by (namespace, job, connector) (connect_health_connector_failed{{{sel}, policy="critical"}}) == 1'
        )
        assert alerts["KafkaConnectWorkerUnreachable"]["expr"] == f"connect_health_worker_reachable{{{sel}}} == 0"
        assert alerts["KafkaConnectRestartRateHigh"]["expr"] == (
            "sum by (namespace, job, connector) "
            f'(rate(connect_health_restarts_total{{{sel}, outcome="requested"}}[1h])) * 3600 > 10'
        )
        assert alerts["KafkaConnectConnectorFailed"]["labels"] == {"severity": "critical"}
        assert alerts["KafkaConnectRestartRateHigh"]["labels"] == {"severity": "warning"}
        # Prometheus templates survive helm's templating.
        assert "{{ $labels.connector }}" in alerts["KafkaConnectConnectorFailed"]["annotations"]["summary"]
        for alert in alerts.values():
            for metric in re.findall(r"connect_health_[a-z_]+", alert["expr"]):
                assert metric in CONTRACT_METRICS, metric

    def test_alerts_can_be_switched_off(self, render: Render) -> None:
        rule = one(
            render(
                {
                    **BOOT,
                    "metrics": {
                        "serviceMonitor": {"enabled": True},
                        "prometheusRule": {
                            "enabled": True,
                            "alerts": {"workerUnreachable": {"enabled": False}, "restartRate": {"enabled": False},
                                       "targetDown": {"enabled": False}, "drift": {"enabled": False},
                                       "unassigned": {"enabled": False}, "taskStalled": {"enabled": False},
                                       "connectorNeedsAction": {"enabled": False}},
                        }
                    },
                }
            ),
            "PrometheusRule",
        )
        assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == ["KafkaConnectConnectorFailed"]

    def test_dashboard(self, objects: list[Obj]) -> None:
        cm = one(objects, "ConfigMap", "rel-kafka-connect-dashboard")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Kafka"}
        (key,) = cm["data"]
        dashboard = json.loads(cm["data"][key])
        assert dashboard["title"] == "Kafka Connect / team-a / rel-kafka-connect"
        assert re.fullmatch(r"connect-health-[0-9a-f]{12}", dashboard["uid"])
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        used = {m.removesuffix("_bucket") for e in exprs for m in re.findall(r"connect_health_[a-z_]+", e)}
        assert used <= CONTRACT_METRICS and len(used) >= 7, used
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])

    def test_monitoring_is_off_by_default(self, render: Render) -> None:
        kinds = {o["kind"] for o in render(BOOT)}
        assert kinds == {"ServiceAccount", "ConfigMap", "Service", "Deployment", "Pod"}
