"""Secrets per purpose (issue 19): Kafka's directory/file config providers resolve `${directory:<path>:<key>}` in
every connector config, so anyone who can write a connector config (the REST API) can read every path in their
`allowed.paths` and send it to the connector's target system. Files the JVM itself reads (the REST basic-auth JAAS
and users files) are mounted outside those paths; per-connector Secrets get a directory each."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from .render import CHART, Render, container, one, pod_spec, properties

BOOT = {"bootstrapServers": "kafka:9092"}
PROVIDERS = ("directory", "file")


def rendered(render: Render, values: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    objects = render({**BOOT, **values})
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    return props, one(objects, "Deployment")


def allowed(props: dict[str, str]) -> set[str]:
    paths = {props.get(f"config.providers.{p}.param.allowed.paths") for p in PROVIDERS}
    assert len(paths) == 1, paths
    (joined,) = paths
    return set(joined.split(",")) if joined else set()


def test_a_secret_mount_for_the_jvm_is_mounted_but_not_resolvable(render: Render) -> None:
    props, d = rendered(render, {"secretMounts": {
        "pg": {"secretName": "pg-credentials"},
        "rest-jaas": {"secretName": "connect-rest-jaas", "mountPath": "/mnt/rest", "configProviders": False}}})
    assert allowed(props) == {"/mnt/secrets/pg"}
    mounts = {m["name"]: m["mountPath"] for m in container(d, "connect")["volumeMounts"]}
    assert mounts["secret-rest-jaas"] == "/mnt/rest" and mounts["secret-pg"] == "/mnt/secrets/pg"


def test_only_jvm_secrets_turn_no_file_provider_on(render: Render) -> None:
    props, _ = rendered(render, {"secretMounts": {
        "rest-jaas": {"secretName": "connect-rest-jaas", "configProviders": False}}})
    assert props["config.providers"] == "env"


def test_the_secrets_scenario_keeps_the_rest_jaas_out_of_reach(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "06-secrets-values.yaml"])
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    assert "/mnt/rest" not in props["config.providers.directory.param.allowed.paths"].split(",")


def test_a_connector_gets_its_own_secret_directory(render: Render) -> None:
    connectors = {"orders.cdc": {"config": {"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                                            "database.password": "${directory:/mnt/connectors/orders.cdc:password}"},
                                 "secretName": "orders-db"},
                  "lines": {"config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector"}}}
    props, d = rendered(render, {"connectors": connectors})
    assert allowed(props) == {"/mnt/connectors/orders.cdc"}
    mounts = [m for m in container(d, "connect")["volumeMounts"] if m["mountPath"].startswith("/mnt/connectors/")]
    assert [m["mountPath"] for m in mounts] == ["/mnt/connectors/orders.cdc"]
    assert mounts[0]["readOnly"] is True
    volume = next(v for v in pod_spec(d)["volumes"] if v["name"] == mounts[0]["name"])
    assert volume["secret"]["secretName"] == "orders-db"
    # A DNS label whatever the connector is called (dots, capitals, 249 characters).
    assert len(volume["name"]) <= 63 and volume["name"].replace("-", "").isalnum() and volume["name"].islower()


# --- the worker's own Kafka credentials -------------------------------------------------------------------------

SECURE = {"kafka": {"tls": {"enabled": True, "existingSecret": "kafka-tls", "keystore": {"key": "keystore.p12"}},
                    "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "kafka-user"}}}


def init_container(d: dict[str, Any], name: str = "worker-config") -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod_spec(d).get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in pod_spec(d).get("initContainers", [])]
    return found[0]


def test_the_workers_kafka_credentials_are_not_resolvable_by_connectors(render: Render) -> None:
    props, d = rendered(render, {**SECURE, "secretMounts": {"pg": {"secretName": "pg-credentials"}}})
    # Only the connectors' Secrets are in allowed.paths; the worker's properties reference its own Secrets through
    # markers the worker-config init container resolves, not through a provider a connector could call too.
    assert allowed(props) == {"/mnt/secrets/pg"}
    assert props["sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                         'username="@@kafka-secret:sasl/username@@" '
                                         'password="@@kafka-secret:sasl/password@@";')
    assert props["consumer.ssl.keystore.password"] == "@@kafka-secret:tls/keystore.password@@"
    assert not [k for k, v in props.items() if "/mnt/kafka" in v and "location" not in k]
    connect = {m["name"]: m for m in container(d, "connect")["volumeMounts"]}
    assert "kafka-sasl" not in connect, "the SASL Secret is mounted into the init container only"
    # The stores (ssl.*.location) are read by the worker; their passwords are not next to them.
    assert connect["kafka-tls"]["mountPath"] == "/mnt/kafka/tls"
    assert connect["worker-config"] == {"name": "worker-config", "mountPath": "/etc/kafka-connect", "readOnly": True}
    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
    assert volumes["worker-config"]["emptyDir"]["medium"] == "Memory"
    assert volumes["worker-config-template"]["configMap"]["name"] == "rel-kafka-connect-worker"
    init = init_container(d)
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {"worker-config-template": "/etc/kafka-connect-template", "worker-config": "/etc/kafka-connect",
                      "kafka-tls": "/mnt/kafka/tls", "kafka-sasl": "/mnt/kafka/sasl"}
    assert init["image"] == container(d, "connect")["image"] and init["command"][:2] == ["bash", "-c"]


def test_without_kafka_credentials_the_configmap_is_mounted_as_before(render: Render) -> None:
    _, d = rendered(render, {})
    assert "initContainers" not in pod_spec(d)
    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
    assert volumes["worker-config"]["configMap"]["name"] == "rel-kafka-connect-worker"


def run_worker_config(render: Render, tmp_path: Path, secrets: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    """The init container's own script, run by bash on the rendered ConfigMap and Secret files laid out as the
    kubelet mounts them (paths from the environment variables the script reads)."""
    objects = render({**BOOT, **SECURE})
    script = init_container(one(objects, "Deployment"))["command"][2]
    template, out, mounted = tmp_path / "template", tmp_path / "out", tmp_path / "kafka"
    for d in (template, out):
        d.mkdir()
    for name, text in one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"].items():
        (template / name).write_text(text)
    for key, content in secrets.items():
        (mounted / key).parent.mkdir(parents=True, exist_ok=True)
        (mounted / key).write_bytes(content)
    env = {"PATH": os.environ["PATH"], "WORKER_CONFIG_TEMPLATE": str(template), "WORKER_CONFIG": str(out),
           "KAFKA_SECRETS": str(mounted)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)


SECRETS = {"tls/truststore.password": b"trust", "tls/keystore.password": b"key store", "tls/truststore.p12": b"x",
           "tls/keystore.p12": b"x", "sasl/username": b"connect", "sasl/password": b' p\\a&s#s=:"\t!'}


def test_the_init_container_writes_each_secret_exactly(render: Render, tmp_path: Path) -> None:
    proc = run_worker_config(render, tmp_path, SECRETS)
    assert proc.returncode == 0, proc.stderr
    props = properties((tmp_path / "out" / "connect-distributed.properties").read_text())
    for p in ("", "producer.", "consumer.", "admin."):
        assert props[f"{p}sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                                 'username="connect" password=" p\\a&s#s=:"\t!";')
        assert props[f"{p}ssl.keystore.password"] == "key store"
        assert props[f"{p}ssl.truststore.password"] == "trust"
    assert "@@" not in (tmp_path / "out" / "connect-distributed.properties").read_text()
    assert (tmp_path / "out" / "log4j2.properties").exists(), "the other files of the ConfigMap are copied"
    assert proc.stderr == "" and "p\\a&s" not in proc.stdout, "no secret in the container's log"


def test_a_key_missing_from_the_secret_stops_the_pod_naming_it(render: Render, tmp_path: Path) -> None:
    proc = run_worker_config(render, tmp_path, {k: v for k, v in SECRETS.items() if k != "sasl/password"})
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("add key password to the kafka.sasl Secret (kafka.sasl.existingSecret)")
    assert not (tmp_path / "out" / "connect-distributed.properties").exists()


def test_a_non_ascii_secret_is_refused_not_mangled(render: Render, tmp_path: Path) -> None:
    proc = run_worker_config(render, tmp_path, {**SECRETS, "sasl/password": "pässword".encode()})
    assert proc.returncode == 1 and "non-ASCII" in proc.stderr and "pässword" not in proc.stderr
