"""Values that would render objects the API server rejects, or pods that cannot run, are refused at render (issue 19).

Each case is refused by the real helm (3 and 4) with one line naming the value and what to do instead; the accepted
neighbours of each case render. templates/_validate.tpl holds the checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .render import HelmError, Render, container, env_of, one, pod_spec

BOOT = {"bootstrapServers": "kafka:9092", "sinkConsumerGroups": "cluster"}  # sinks below: their groups chosen
DIGEST = "sha256:" + "ab" * 32
JMX_IMAGE = {"repository": "registry.example.com/jmx-prometheus-javaagent", "tag": "1.0.1"}
CONNECTOR = {"config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "topics": "t"}}

REFUSED: dict[str, tuple[dict[str, Any], list[str]]] = {
    # --- ports ----------------------------------------------------------------------------------------------------
    "rest-port-is-sidecar-port": ({"restPort": 8090}, ["restPort", "healthcheck.port", "8090"]),
    "jmx-port-is-rest-port": (
        {"metrics": {"jmxExporter": {"enabled": True, "port": 8083, "image": JMX_IMAGE}}},
        ["metrics.jmxExporter.port", "restPort", "8083"],
    ),
    "extra-container-port-is-rest-port": (
        {"extraContainers": {"exporter": {"image": "exporter:1", "ports": [{"containerPort": 8083}]}}},
        ["extraContainers.exporter", "8083"],
    ),
    "extra-container-port-name-is-http": (
        {"extraContainers": {"exporter": {"image": "exporter:1", "ports": [{"name": "http", "containerPort": 9000}]}}},
        ["extraContainers.exporter", "port name http"],
    ),
    # --- env names ------------------------------------------------------------------------------------------------
    "extra-env-kafka-opts": ({"extraEnv": {"KAFKA_OPTS": "-Dx=1"}}, ["extraEnv.KAFKA_OPTS", "jvmOpts"]),
    "extra-env-heap": ({"extraEnv": {"KAFKA_HEAP_OPTS": "-Xmx256m"}}, ["extraEnv.KAFKA_HEAP_OPTS", "heapOpts"]),
    "extra-env-log4j": ({"extraEnv": {"KAFKA_LOG4J_OPTS": "-Dx"}}, ["extraEnv.KAFKA_LOG4J_OPTS", "logging"]),
    "extra-env-pod-ip": ({"extraEnv": {"POD_IP": "1.2.3.4"}}, ["extraEnv.POD_IP"]),
    "sidecar-env-set-by-chart": (
        {"healthcheck": {"extraEnv": {"CONNECT_HEALTH_GRACE": "10"}}},
        ["healthcheck.extraEnv.CONNECT_HEALTH_GRACE", "healthcheck.grace"],
    ),
    "sidecar-env-unknown": (
        {"healthcheck": {"extraEnv": {"CONNECT_HEALTH_POLL_INTERVAL_JITTER": "1"}}},
        ["healthcheck.extraEnv.CONNECT_HEALTH_POLL_INTERVAL_JITTER", "not a connect-health setting"],
    ),
    # --- container, volume and mount names ------------------------------------------------------------------------
    "extra-container-named-like-the-sidecar": (
        {"extraContainers": {"connect-health": {"image": "x:1"}}},
        ["container name connect-health", "extraContainers"],
    ),
    "two-plugins-one-name": (
        {"plugins": [{"name": "jdbc", "image": "a:1"}, {"name": "jdbc", "image": "b:1"}]},
        ["container name plugin-jdbc", "plugins"],
    ),
    "extra-volume-named-tmp": (
        {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]},
        ["volume name tmp", "extraVolumes"],
    ),
    "secret-mount-named-like-extra-volume": (
        {"secretMounts": {"pg": {"secretName": "pg"}}, "extraVolumes": [{"name": "secret-pg", "emptyDir": {}}]},
        ["volume name secret-pg", "extraVolumes"],
    ),
    "extra-mount-on-tmp": (
        {"extraVolumes": [{"name": "data", "emptyDir": {}}],
         "extraVolumeMounts": [{"name": "data", "mountPath": "/tmp"}]},
        ["mountPath /tmp", "container connect", "extraVolumeMounts"],
    ),
    "secret-mount-on-config-dir": (
        {"secretMounts": {"pg": {"secretName": "pg", "mountPath": "/etc/kafka-connect"}}},
        ["mountPath /etc/kafka-connect", "container connect"],
    ),
    "extra-mount-without-volume": (
        {"extraVolumeMounts": [{"name": "nowhere", "mountPath": "/data"}]},
        ["volumeMount nowhere", "no volume", "extraVolumes"],
    ),
    # --- heap -----------------------------------------------------------------------------------------------------
    "heap-above-limit": ({"heapOpts": "-Xms512m -Xmx2g"}, ["heapOpts", "-Xmx2g", "resources.limits.memory 1Gi"]),
    "heap-at-90-percent": ({"heapOpts": "-Xmx900m"}, ["heapOpts", "-Xmx900m", "75%"]),
    "heap-in-jvm-opts": ({"jvmOpts": "-XX:+UseG1GC -Xmx1024M"}, ["jvmOpts", "-Xmx1024M"]),
    # --- Kafka version and logging --------------------------------------------------------------------------------
    "digest-without-kafka-version": (
        {"image": {"digest": DIGEST}},
        ["kafkaVersion", "logging.format", "apache/kafka@" + DIGEST],
    ),
    "cp-image-without-kafka-version": (
        {"image": {"repository": "confluentinc/cp-kafka-connect", "tag": "7.9.0"}},
        ["kafkaVersion", "logging.format", "confluentinc/cp-kafka-connect:7.9.0"],
    ),
    # --- JMX agent ------------------------------------------------------------------------------------------------
    "jmx-on-stock-image": (
        {"metrics": {"jmxExporter": {"enabled": True}}},
        ["metrics.jmxExporter.image.repository", "apache/kafka"],
    ),
    "jmx-image-unpinned": (
        {"metrics": {"jmxExporter": {"enabled": True, "image": {"repository": "r.example.com/jmx"}}}},
        ["metrics.jmxExporter.image.tag", "digest", "latest"],
    ),
    # --- events RBAC ----------------------------------------------------------------------------------------------
    "events-rbac-on-default-service-account": (
        {"rbac": {"events": True}, "serviceAccount": {"create": False}},
        ["rbac.events", "serviceAccount.name", "default"],
    ),
    # --- alerts ---------------------------------------------------------------------------------------------------
    "alerts-without-service-monitor": (
        {"metrics": {"prometheusRule": {"enabled": True}}},
        ["metrics.prometheusRule", "metrics.serviceMonitor.enabled"],
    ),
}


def error_line(stderr: str, fragment: str) -> str:
    """The one line of helm's error holding `fragment`; everything the user must read is on it."""
    lines = [line for line in stderr.splitlines() if fragment in line]
    assert len(lines) == 1, f"{fragment!r} on {len(lines)} lines of:\n{stderr}"
    return lines[0]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_in_one_line_naming_the_value(render: Render, case: str) -> None:
    values, fragments = REFUSED[case]
    with pytest.raises(HelmError) as err:
        render({**BOOT, **values})
    line = error_line(err.value.stderr, fragments[0])
    for fragment in fragments[1:]:
        assert fragment in line, f"{fragment!r} not in: {line}"


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [(0.10, "image.tag"), (4, "image.tag")],
    ids=["float", "integer"],
)
@pytest.mark.parametrize("where", ["image", "healthcheck.image", "metrics.jmxExporter.image"])
def test_numeric_tags_are_refused_by_the_schema(render: Render, where: str, tag: float, fragment: str) -> None:
    values: dict[str, Any] = {**BOOT}
    here = values
    for part in where.split("."):
        here = here.setdefault(part, {})
    here["tag"] = tag
    with pytest.raises(HelmError) as err:
        render(values)
    assert "tag" in err.value.stderr and "string" in err.value.stderr, err.value.stderr


# --- the accepted neighbours ---------------------------------------------------------------------------------------


def test_distinct_ports_and_an_extra_container_port_render(render: Render) -> None:
    objects = render({**BOOT, "restPort": 8084, "healthcheck": {"port": 8083},
                      "extraContainers": {"exporter": {"image": "exporter:1", "ports": [{"containerPort": 9000}]}}})
    spec = pod_spec(one(objects, "Deployment"))
    assert container(one(objects, "Deployment"), "connect")["ports"][0]["containerPort"] == 8084
    assert [c["name"] for c in spec["containers"]] == ["connect", "connect-health", "exporter"]


def test_a_real_sidecar_setting_in_extra_env_renders(render: Render) -> None:
    objects = render({**BOOT, "healthcheck": {"extraEnv": {"CONNECT_HEALTH_SERVER": "waitress"}}})
    assert env_of(container(one(objects, "Deployment"), "connect-health"))["CONNECT_HEALTH_SERVER"] == "waitress"


def test_kafka_log4j_opts_is_the_users_when_the_chart_renders_no_logging(render: Render) -> None:
    objects = render({**BOOT, "logging": {"enabled": False}, "extraEnv": {"KAFKA_LOG4J_OPTS": "-Dx"}})
    assert env_of(container(one(objects, "Deployment"), "connect"))["KAFKA_LOG4J_OPTS"] == "-Dx"


@pytest.mark.parametrize(
    ("heap", "limit"),
    [("-Xmx768m", "1Gi"), ("-Xmx1g", "2Gi"), ("-Xmx3072m", "4096Mi"), ("-Xmx1400000k", "2G"), ("-Xmx4g", None)],
)
def test_heap_within_75_percent_of_the_limit_renders(render: Render, heap: str, limit: str | None) -> None:
    resources: dict[str, Any] = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": None}
    if limit:
        resources["limits"] = {"memory": limit}
    objects = render({**BOOT, "heapOpts": heap, "resources": resources})
    assert env_of(container(one(objects, "Deployment"), "connect"))["KAFKA_HEAP_OPTS"] == heap


@pytest.mark.parametrize(
    "values",
    [
        {"image": {"digest": DIGEST}, "kafkaVersion": "3.9.1"},
        {"image": {"digest": DIGEST}, "logging": {"format": "log4j2"}},
        {"image": {"digest": DIGEST}, "logging": {"enabled": False}},
        {"image": {"repository": "confluentinc/cp-kafka-connect", "tag": "7.9.0"}, "kafkaVersion": "3.9.0"},
    ],
    ids=["kafka-version", "log-format", "no-logging", "cp-with-version"],
)
def test_an_unknown_image_renders_once_the_version_or_format_is_given(render: Render, values: dict[str, Any]) -> None:
    assert one(render({**BOOT, **values}), "Deployment")


def test_jmx_with_a_pinned_agent_image_renders(render: Render) -> None:
    image = {"repository": JMX_IMAGE["repository"], "digest": DIGEST}
    objects = render({**BOOT, "metrics": {"jmxExporter": {"enabled": True, "image": image}}})
    init = pod_spec(one(objects, "Deployment"))["initContainers"]
    assert [c["image"] for c in init] == [f"{JMX_IMAGE['repository']}@{DIGEST}"]


def test_jmx_on_an_own_image_holding_the_agent_renders(render: Render) -> None:
    objects = render({**BOOT, "image": {"repository": "registry.example.com/connect-with-agent", "tag": "4.1.0"},
                      "kafkaVersion": "4.1.0", "metrics": {"jmxExporter": {"enabled": True}}})
    assert "-javaagent:" in env_of(container(one(objects, "Deployment"), "connect"))["KAFKA_OPTS"]


def test_events_rbac_with_a_named_service_account_renders(render: Render) -> None:
    objects = render({**BOOT, "rbac": {"events": True}, "serviceAccount": {"create": False, "name": "connect"}})
    assert one(objects, "RoleBinding")["subjects"][0]["name"] == "connect"


# --- names ---------------------------------------------------------------------------------------------------------

EVERYTHING: dict[str, Any] = {
    **BOOT,
    "connectors": {"a": CONNECTOR},
    "rbac": {"events": True},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
}


# DNS-1123 labels: a Service's name is a DNS name; a Job's and a Pod's reach labels (job-name) and hostnames.
NAME_LIMIT = {"Service": 63, "Job": 63, "Pod": 63, "Deployment": 63}


@pytest.mark.parametrize("length", [20, 48, 49, 53])
def test_long_release_names_never_give_two_objects_of_one_kind_one_name(helm: str, length: int) -> None:
    from .render import render_chart

    release = ("r" * length)[:length]
    objects = render_chart(EVERYTHING, helm=helm, release=release)
    seen: dict[tuple[str, str], int] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        seen[key] = seen.get(key, 0) + 1
        assert len(obj["metadata"]["name"]) <= NAME_LIMIT.get(obj["kind"], 253), key
    assert {k: n for k, n in seen.items() if n > 1} == {}
    # The worker's ConfigMap and the dashboard's stay distinct and each keeps its role in its name.
    names = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap")
    assert any(n.endswith("-worker") for n in names) and any(n.endswith("-dashboard") for n in names), names
    volume = next(v for v in pod_spec(one(objects, "Deployment"))["volumes"] if v["name"] == "worker-config")
    assert volume["configMap"]["name"].endswith("-worker")


def test_short_names_are_unchanged(render: Render) -> None:
    objects = render(EVERYTHING)
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"} >= {
        "rel-kafka-connect-worker", "rel-kafka-connect-dashboard"}


def test_the_sidecar_env_table_is_generated() -> None:
    from connect_health import options

    from .settings_docs import SIDECAR_ENV_FILE, sidecar_env

    table = json.loads(SIDECAR_ENV_FILE.read_text())
    assert table == sidecar_env(), "files/sidecar-env.json drifted: run tests/chart/settings_docs.py"
    serve = {o.env for o in options.for_command("serve")}
    assert set(table) == serve | {"CONNECT_HEALTH_CONNECT_PASSWORD"}
    assert table["CONNECT_HEALTH_GRACE"] == "healthcheck.grace" and table["CONNECT_HEALTH_SERVER"] == ""
    assert "CONNECT_HEALTH_OUTPUT" not in table  # a `check` flag: serve never reads it
