"""The worker properties rendered from values, the pod around them, and the checksum that rolls the pods."""

from __future__ import annotations

from typing import Any

import pytest

from .render import CHART, HelmError, Render, container, env_of, one, pod_spec, properties

BOOT = {"bootstrapServers": "kafka-0:9092,kafka-1:9092"}


def worker_props(
    render: Render, values: dict[str, Any] | None = None, name: str = "rel-kafka-connect-worker", **kw: Any
) -> dict[str, str]:
    cm = one(render({**BOOT, **(values or {})}, **kw), "ConfigMap", name)
    return properties(cm["data"]["connect-distributed.properties"])


def checksum(render: Render, values: dict[str, Any]) -> str:
    d = one(render({**BOOT, **values}, show_only=["templates/deployment.yaml"]), "Deployment")
    value: str = d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    return value


def test_defaults(render: Render) -> None:
    props = worker_props(render)
    assert props == {
        "bootstrap.servers": "kafka-0:9092,kafka-1:9092",
        "group.id": "team-a-rel-kafka-connect",
        "listeners": "http://:8083",
        "rest.advertised.listener": "http",
        "rest.advertised.host.name": "${env:POD_IP}",
        "rest.advertised.port": "8083",
        "config.storage.topic": "team-a-rel-kafka-connect-configs",
        "config.storage.replication.factor": "3",
        "offset.storage.topic": "team-a-rel-kafka-connect-offsets",
        "offset.storage.replication.factor": "3",
        "offset.storage.partitions": "25",
        "status.storage.topic": "team-a-rel-kafka-connect-status",
        "status.storage.replication.factor": "3",
        "status.storage.partitions": "5",
        # No connector declares a client override: none is allowed (tests/chart/test_identity.py).
        "connector.client.config.override.policy": "None",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "config.providers": "env",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "config.providers.env.param.allowlist.pattern": "^POD_IP$",
    }


def test_pod_ip_reaches_the_worker_through_the_env_provider(render: Render) -> None:
    d = one(render(BOOT), "Deployment")
    connect = container(d, "connect")
    assert env_of(connect)["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env_of(container(d, "connect-health"))["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert connect["command"] == [
        "/opt/kafka/bin/connect-distributed.sh",
        "/etc/kafka-connect/connect-distributed.properties",
    ]
    mount = next(m for m in connect["volumeMounts"] if m["name"] == "worker-config")
    assert mount == {"name": "worker-config", "mountPath": "/etc/kafka-connect", "readOnly": True}
    volume = next(v for v in pod_spec(d)["volumes"] if v["name"] == "worker-config")
    assert volume["configMap"]["name"] == "rel-kafka-connect-worker"
    assert connect["image"] == "apache/kafka:4.3.1"


def test_topics_group_and_converters_from_values(render: Render) -> None:
    props = worker_props(
        render,
        {
            "groupId": "orders",
            "internalTopics": {
                "config": {"replicationFactor": -1},
                "offset": {"name": "_offsets", "partitions": 50},
                "status": {"replicationFactor": 1},
            },
            "keyConverter": "org.apache.kafka.connect.storage.StringConverter",
            "valueConverter": "io.confluent.connect.avro.AvroConverter",
        },
    )
    assert props["group.id"] == "orders"
    assert props["config.storage.topic"] == "orders-configs"
    assert props["config.storage.replication.factor"] == "-1"
    assert props["offset.storage.topic"] == "_offsets"
    assert props["offset.storage.partitions"] == "50"
    assert props["status.storage.topic"] == "orders-status"
    assert props["status.storage.replication.factor"] == "1"
    assert props["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert props["value.converter"] == "io.confluent.connect.avro.AvroConverter"


def test_worker_config_values_reach_connect_exactly(render: Render) -> None:
    """Large integers stay integers (helm reads them as float64), backslashes and line breaks survive."""
    worker_config = {
        "offset.flush.timeout.ms": 10000000,
        "producer.max.request.size": 104857600,
        "consumer.fetch.max.wait.ms": 500,
        "task.shutdown.graceful.timeout.ms": 5000.0,
        "producer.compression.gzip.level": 0.5,
        "value.converter.schemas.enable": False,
        "transforms.route.regex": r"(.*)-\d+",
        "producer.sasl.jaas.config": (
            'org.apache.kafka.common.security.plain.PlainLoginModule required username="u"\n'
            ' password="${file:/mnt/secrets/kafka/jaas:password}";'
        ),
        "client.id": " leading space",
    }
    props = worker_props(render, {"workerConfig": worker_config})
    assert props["offset.flush.timeout.ms"] == "10000000"
    assert props["producer.max.request.size"] == "104857600"
    assert props["consumer.fetch.max.wait.ms"] == "500"
    assert props["task.shutdown.graceful.timeout.ms"] == "5000"
    assert props["producer.compression.gzip.level"] == "0.5"
    assert props["value.converter.schemas.enable"] == "false"
    assert props["transforms.route.regex"] == r"(.*)-\d+"
    assert props["producer.sasl.jaas.config"] == worker_config["producer.sasl.jaas.config"]
    assert props["client.id"] == " leading space"


def test_values_files_integers_are_not_rendered_in_exponent_form(render: Render) -> None:
    props = worker_props(
        render, values_files=[CHART / "ci" / "09-platform-team-values.yaml"], name="orders-connect-worker"
    )
    assert props["producer.max.request.size"] == "10485760"
    assert props["scheduled.rebalance.max.delay.ms"] == "120000"


@pytest.mark.parametrize(
    "key,use",
    [
        ("bootstrap.servers", "bootstrapServers"),
        ("group.id", "groupId"),
        ("listeners", "restPort"),
        ("rest.advertised.host.name", "pod IP"),
        ("plugin.path", "pluginPath"),
        ("config.providers", "configProviders"),
        ("offset.storage.topic", "internalTopics.offset.name"),
    ],
)
def test_keys_owned_by_the_chart_are_refused_in_worker_config(render: Render, key: str, use: str) -> None:
    with pytest.raises(HelmError) as err:
        render({**BOOT, "workerConfig": {key: "x"}})
    assert f"workerConfig.{key}" in err.value.stderr and use in err.value.stderr


def test_config_provider_params_go_through_config_providers(render: Render) -> None:
    with pytest.raises(HelmError, match=r"workerConfig\.config\.providers\.vault\.class"):
        render({**BOOT, "workerConfig": {"config.providers.vault.class": "x"}})
    props = worker_props(
        render,
        {
            "configProviders": {
                "vault": {
                    "class": "com.github.jcustenborder.kafka.config.vault.VaultConfigProvider",
                    "params": {"vault.address": "https://vault:8200", "max.retries": 5},
                }
            }
        },
    )
    assert props["config.providers"] == "env,vault"
    assert props["config.providers.vault.class"] == "com.github.jcustenborder.kafka.config.vault.VaultConfigProvider"
    assert props["config.providers.vault.param.vault.address"] == "https://vault:8200"
    assert props["config.providers.vault.param.max.retries"] == "5"


def test_heap_jvm_options_and_log_dir(render: Render) -> None:
    d = one(
        render({**BOOT, "heapOpts": "-Xms2g -Xmx2g", "jvmOpts": "-XX:+UseG1GC", "logDir": "/var/log/connect",
                "resources": {"limits": {"memory": "3Gi"}}}),
        "Deployment",
    )
    connect = container(d, "connect")
    env = env_of(connect)
    assert env["KAFKA_HEAP_OPTS"] == "-Xms2g -Xmx2g"
    assert env["KAFKA_OPTS"] == "-XX:+UseG1GC"
    assert env["LOG_DIR"] == "/var/log/connect"
    assert {"name": "logs", "mountPath": "/var/log/connect"} in connect["volumeMounts"]
    assert "KAFKA_OPTS" not in env_of(container(one(render(BOOT), "Deployment"), "connect"))


class TestChecksum:
    def test_changes_with_the_worker_config(self, render: Render) -> None:
        base = checksum(render, {})
        assert len(base) == 64
        assert checksum(render, {"workerConfig": {"offset.flush.interval.ms": 10000}}) != base
        assert checksum(render, {"bootstrapServers": "other:9092"}) != base
        assert checksum(render, {"groupId": "other"}) != base
        assert checksum(render, {"secretMounts": {"pg": {"secretName": "pg"}}}) != base
        assert checksum(render, {"plugins": [{"name": "p", "image": "i:1"}]}) != base

    def test_stays_with_unrelated_values(self, render: Render) -> None:
        base = checksum(render, {})
        for values in (
            {"replicaCount": 3},
            {"podAnnotations": {"a": "b"}},
            {"healthcheck": {"grace": 60}},
            {"resources": {"requests": {"cpu": "2"}}},
            {"connectors": {"c": {"config": {"connector.class": "org.example.C"}}}},
            {"healthcheck": {"enabled": False}},
        ):
            assert checksum(render, values) == base, values

    def test_user_pod_annotations_are_kept(self, render: Render) -> None:
        d = one(render({**BOOT, "podAnnotations": {"prometheus.io/scrape": "false"}}), "Deployment")
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "false" and "checksum/config" in annotations
