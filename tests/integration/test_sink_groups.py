"""Sink consumer groups owned by the cluster (issue 19), on a REAL worker started on the chart's rendered properties.

The chart is rendered by the real helm with `groupId` and `sinkConsumerGroups: cluster`; the worker starts on its
worker properties (the override policy the chart picked for the Kafka version: `Allowlist` of `group.id` on 4.x,
`All` on 3.6, the narrowest each has), and the declared sink is created with exactly the config of the rendered
connectors ConfigMap (what the apply Job sends). The sink must consume as `<groupId>-<connector>`, never as
Connect's `connect-<connector>`, which a second release declaring the same name would share; and on Kafka >= 4.2 a
connector overriding anything else is refused by Connect, naming the policy.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import launcher
import pytest
from chart.render import one, properties, render_chart
from launcher.fetch import kafka_libs
from launcher.jvm import java_command
from launcher.kafka_security import PropertiesWorker
from launcher.pins import is_legacy_kafka
from probing import wait_for

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


# Kafka's AdminClient listing the consumer groups: the fetched jars hold the clients, not the CLI tools module
# (run by the JDK's source launcher, one file, on both Kafka versions).
LIST_GROUPS = """
import org.apache.kafka.clients.admin.Admin;
import java.util.Map;
public class ListGroups {
    public static void main(String[] args) throws Exception {
        try (Admin admin = Admin.create(Map.<String, Object>of("bootstrap.servers", args[0]))) {
            for (var g : admin.listConsumerGroups().all().get()) System.out.println(g.groupId());
        }
    }
}
"""


def consumer_groups(version: str, bootstrap: str, workdir: Path) -> set[str]:
    source = workdir / "ListGroups.java"
    source.write_text(LIST_GROUPS)
    cmd = java_command(version, "256m", "broker", str(source), [bootstrap])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-1000:]
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def test_a_declared_sink_consumes_as_its_clusters_group(
        stack: launcher.Stack, kafka_version: str, workdir: Path) -> None:
    """On the session's broker (conftest `stack`), beside its own worker: another Connect cluster, as on a shared
    Kafka."""
    broker = stack.broker
    group = f"groups-{kafka_version.replace('.', '-')}"
    out_file = workdir / "out.txt"
    values = {
        "bootstrapServers": broker.bootstrap, "groupId": group, "restPort": launcher.free_port(),
        "kafkaVersion": kafka_version, "sinkConsumerGroups": "cluster",
        "internalTopics": {"config": {"replicationFactor": 1},
                           "offset": {"replicationFactor": 1, "partitions": 1},
                           "status": {"replicationFactor": 1, "partitions": 1}},
        "pluginPath": [str(kafka_libs(kafka_version) / f"connect-file-{kafka_version}.jar")],
        "workerConfig": {"key.converter.schemas.enable": False, "value.converter.schemas.enable": False},
        "logging": {"enabled": False},
        "connectors": {"archive": {"config": {"connector.class": SINK, "tasks.max": 1, "topics": "orders",
                                              "file": str(out_file)}}},
    }
    objects = render_chart(values, show_only=["templates/configmap.yaml", "templates/connectors-configmap.yaml"])
    props = properties(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"])
    declared = json.loads(one(objects, "ConfigMap", "rel-kafka-connect-connectors")["data"]["connectors.json"])
    legacy = is_legacy_kafka(kafka_version)
    assert props["connector.client.config.override.policy"] == ("All" if legacy else "Allowlist")
    if not legacy:
        assert props["connector.client.config.override.allowlist"] == "group.id"
    assert declared["archive"]["config"]["consumer.override.group.id"] == f"{group}-archive"
    props["listeners"] = props["listeners"].replace("http://:", "http://127.0.0.1:")

    worker = PropertiesWorker(workdir, props, kafka_version, env={"POD_IP": "127.0.0.1"})
    try:
        worker.start()
    except launcher.StackError as e:
        pytest.fail(f"the worker on the chart's properties did not start: {e}", pytrace=False)
    try:
        src = workdir / "in.txt"
        src.write_text("".join(f"order {i}\n" for i in range(5)))
        worker.put_connector("orders-src", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                            "topic": "orders"}, timeout=60)
        worker.put_connector("archive", declared["archive"]["config"], timeout=60)
        worker.wait_connector_state("archive", timeout=90)
        wait_for(lambda: out_file.exists() and out_file.read_text().count("\n") >= 5, 90, "5 records archived")

        groups = consumer_groups(kafka_version, broker.bootstrap, workdir)
        assert f"{group}-archive" in groups and "connect-archive" not in groups, groups

        # The narrowest policy: anything but group.id is refused on Kafka >= 4.2 (Allowlist); 3.x has only All.
        probe = {"connector.class": SINK, "name": "probe", "topics": "orders", "file": str(workdir / "p.txt"),
                 "consumer.override.group.id": "probe", "consumer.override.bootstrap.servers": "elsewhere:9092"}
        status, body = worker.request("PUT", f"/connector-plugins/{SINK}/config/validate", probe, timeout=30)
        assert status == 200, body
        errors = {c["value"]["name"]: c["value"]["errors"] for c in body["configs"] if c["value"]["errors"]}
        if legacy:
            assert "consumer.override.bootstrap.servers" not in errors, errors
        else:
            assert errors["consumer.override.bootstrap.servers"] == [
                "The 'Allowlist' policy does not allow 'bootstrap.servers' to be overridden in the connector "
                "configuration."], errors
            assert "consumer.override.group.id" not in errors, errors
    finally:
        worker.stop()
