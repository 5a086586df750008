"""Secrets per purpose (issue 19): Kafka's directory/file config providers resolve `${directory:<path>:<key>}` in
every connector config, so anyone who can write a connector config (the REST API) can read every path in their
`allowed.paths` and send it to the connector's target system. Files the JVM itself reads (the REST basic-auth JAAS
and users files) are mounted outside those paths; per-connector Secrets get a directory each."""

from __future__ import annotations

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
