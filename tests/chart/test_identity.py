"""The Connect cluster's identity (issue 19): `groupId` is required and the internal topics follow it, never the
release name, `fullnameOverride` or the namespace, so renaming any of those can never silently start an empty Connect
cluster (source connectors losing their offsets). Sink connectors' consumer groups belong to their cluster, and an
existing sink's group never changes unless the values say so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .render import HelmError, Render, one, properties

BOOT = {"bootstrapServers": "kafka:9092"}
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
TOPIC_KEYS = ("config.storage.topic", "offset.storage.topic", "status.storage.topic")


def worker_props(render: Render, values: dict[str, Any], **kw: Any) -> dict[str, str]:
    objects = render({**BOOT, **values}, show_only=["templates/configmap.yaml"], **kw)
    return properties(one(objects, "ConfigMap")["data"]["connect-distributed.properties"])


def declared(render: Render, values: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The connectors the apply Job creates and the sidecar compares (connectors.json)."""
    objects = render({**BOOT, **values}, show_only=["templates/connectors-configmap.yaml"], **kw)
    data: dict[str, Any] = json.loads(one(objects, "ConfigMap")["data"]["connectors.json"])
    return data


def refusal(render: Render, values: dict[str, Any], **kw: Any) -> str:
    """The one line of helm's error naming the mistake."""
    with pytest.raises(HelmError) as err:
        render(values, **kw)
    lines = [line for line in err.value.stderr.splitlines() if "execution error" in line]
    assert len(lines) == 1, err.value.stderr
    return lines[0]


# --- (1) identity is explicit --------------------------------------------------------------------------------

def test_group_id_is_required_and_the_refusal_says_how_to_keep_an_existing_cluster(render: Render) -> None:
    line = refusal(render, {**BOOT, "groupId": ""})
    assert "groupId is required" in line
    # The former default of this release (namespace team-a, release rel), to keep its connectors and offsets.
    assert "groupId: team-a-rel-kafka-connect" in line
    assert "rel-kafka-connect-worker" in line


def test_the_refusal_names_the_former_default_of_the_release_at_hand(render: Render) -> None:
    line = refusal(render, {**BOOT, "groupId": "", "fullnameOverride": "orders"}, namespace="data")
    assert "groupId: data-orders" in line


def test_topics_derive_from_the_group_id(render: Render) -> None:
    props = worker_props(render, {"groupId": "orders-connect"})
    assert props["group.id"] == "orders-connect"
    topics = [props[k] for k in TOPIC_KEYS]
    assert topics == ["orders-connect-configs", "orders-connect-offsets", "orders-connect-status"]


@pytest.mark.parametrize(
    "rename",
    [
        {"release": "rel2"},
        {"namespace": "team-b"},
        {"values": {"fullnameOverride": "connect"}},
        {"values": {"nameOverride": "kc"}},
    ],
    ids=["release", "namespace", "fullnameOverride", "nameOverride"],
)
def test_renaming_the_release_keeps_the_connect_cluster(render: Render, rename: dict[str, Any]) -> None:
    values = {"groupId": "orders-connect", **rename.get("values", {})}
    kw = {k: v for k, v in rename.items() if k != "values"}
    before = worker_props(render, {"groupId": "orders-connect"})
    after = worker_props(render, values, **kw)
    for key in ("group.id", *TOPIC_KEYS):
        assert after[key] == before[key], key


def test_topic_names_set_explicitly_stay(render: Render) -> None:
    topics = {"config": {"name": "old-configs"}, "offset": {"name": "old-offsets"}, "status": {"name": "old-status"}}
    props = worker_props(render, {"groupId": "orders-connect", "internalTopics": topics})
    assert [props[k] for k in TOPIC_KEYS] == ["old-configs", "old-offsets", "old-status"]


# --- (2) sink consumer groups belong to their cluster --------------------------------------------------------

def sink(topic: str = "orders", **extra: Any) -> dict[str, Any]:
    return {"config": {"connector.class": SINK, "topics": topic, "file": "/tmp/out.txt"}, **extra}


def source() -> dict[str, Any]:
    return {"config": {"connector.class": SOURCE, "topic": "lines", "file": "/tmp/in.txt"}}


def test_a_declared_sink_needs_its_consumer_group_chosen(render: Render) -> None:
    line = refusal(render, {**BOOT, "connectors": {"orders-sink": sink(), "lines": source()}})
    assert "connectors.orders-sink" in line and "sinkConsumerGroups" in line
    # Both choices, with the group each gives, and what changing a running sink's group costs.
    assert "cluster" in line and "team-a-rel-kafka-connect-orders-sink" in line
    assert "connect" in line and "connect-orders-sink" in line
    assert "position" in line


def test_cluster_mode_scopes_each_sinks_group_to_the_group_id(render: Render) -> None:
    values = {"groupId": "orders-connect", "sinkConsumerGroups": "cluster",
              "connectors": {"archive": sink(), "by-regex": {"config": {"connector.class": SINK,
                                                                        "topics.regex": "orders-.*"}},
                             "lines": source()}}
    connectors = declared(render, values)
    assert connectors["archive"]["config"]["consumer.override.group.id"] == "orders-connect-archive"
    assert connectors["by-regex"]["config"]["consumer.override.group.id"] == "orders-connect-by-regex"
    assert not any(k.startswith("consumer.override.") for k in connectors["lines"]["config"])


def test_connect_mode_keeps_connects_own_group_names(render: Render) -> None:
    connectors = declared(render, {"sinkConsumerGroups": "connect", "connectors": {"archive": sink()}})
    assert "consumer.override.group.id" not in connectors["archive"]["config"]
    assert "connector.client.config.override.policy=None" in worker_text(
        render, {"sinkConsumerGroups": "connect", "connectors": {"archive": sink()}})


def test_one_sink_keeps_its_group_while_the_others_move(render: Render) -> None:
    """An existing sink is pinned by name; consumerGroup alone needs no chart-level mode."""
    values: dict[str, Any] = {"connectors": {"old-sink": sink(consumerGroup="connect-old-sink")}}
    assert declared(render, values)["old-sink"]["config"]["consumer.override.group.id"] == "connect-old-sink"
    values = {"sinkConsumerGroups": "cluster",
              "connectors": {"old-sink": sink(consumerGroup="connect-old-sink"), "new-sink": sink()}}
    connectors = declared(render, values)
    assert connectors["old-sink"]["config"]["consumer.override.group.id"] == "connect-old-sink"
    assert connectors["new-sink"]["config"]["consumer.override.group.id"] == "team-a-rel-kafka-connect-new-sink"
    # The group is part of what the sidecar compares and the apply Job sends: nothing else carries consumerGroup.
    assert "consumerGroup" not in connectors["old-sink"]


def test_a_group_override_in_the_config_is_kept(render: Render) -> None:
    mine = sink()
    mine["config"]["consumer.override.group.id"] = "archive-v1"
    connectors = declared(render, {"connectors": {"archive": mine}})
    assert connectors["archive"]["config"]["consumer.override.group.id"] == "archive-v1"
    mine = sink(consumerGroup="archive-v2")
    mine["config"]["consumer.override.group.id"] = "archive-v1"
    line = refusal(render, {**BOOT, "connectors": {"archive": mine}})
    assert "connectors.archive.consumerGroup" in line and "consumer.override.group.id" in line


def test_two_releases_declaring_one_sink_name_never_share_a_group(render: Render) -> None:
    groups = {
        declared(render, {"groupId": gid, "sinkConsumerGroups": "cluster", "connectors": {"archive": sink()}},
                 release=gid)["archive"]["config"]["consumer.override.group.id"]
        for gid in ("team-a-archive", "team-b-archive")
    }
    assert len(groups) == 2


# --- the narrowest client override policy that allows what the chart renders ----------------------------------

def worker_text(render: Render, values: dict[str, Any]) -> str:
    objects = render({**BOOT, **values}, show_only=["templates/configmap.yaml"])
    text: str = one(objects, "ConfigMap")["data"]["connect-distributed.properties"]
    return text


def policy(render: Render, values: dict[str, Any]) -> tuple[str, str | None]:
    props = properties(worker_text(render, values))
    return (props["connector.client.config.override.policy"],
            props.get("connector.client.config.override.allowlist"))


CLUSTER_SINK = {"sinkConsumerGroups": "cluster", "connectors": {"archive": sink()}}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, ("None", None)),
        (CLUSTER_SINK, ("Allowlist", "group.id")),
        ({**CLUSTER_SINK, "kafkaVersion": "4.2.0"}, ("Allowlist", "group.id")),
        # Before 4.2 nothing narrower than All lets a connector set group.id.
        ({**CLUSTER_SINK, "kafkaVersion": "4.1.1"}, ("All", None)),
        ({**CLUSTER_SINK, "image": {"tag": "3.6.2"}}, ("All", None)),
        # An image whose Kafka version the chart does not know: the policy every supported Kafka has.
        ({**CLUSTER_SINK, "image": {"repository": "registry.example.com/my-connect"}, "logging": {"format": "log4j2"}},
         ("All", None)),
        ({"sinkConsumerGroups": "connect", "connectors": {"archive": sink()}}, ("None", None)),
        # Overrides in declared configs are allowed, and only those.
        ({"sinkConsumerGroups": "cluster", "connectors": {"archive": {"config": {
            "connector.class": SINK, "topics": "t", "consumer.override.max.poll.records": 50,
            "producer.override.linger.ms": 5}}}},
         ("Allowlist", "group.id,linger.ms,max.poll.records")),
        # For connectors created outside the values.
        ({"connectorClientOverrides": ["auto.offset.reset"]}, ("Allowlist", "auto.offset.reset")),
        ({"connectorClientOverrides": ["*"]}, ("All", None)),
        # Only principals: Principal before 4.2 (deprecated from 4.2, where Allowlist does the same).
        ({"connectorClientOverrides": ["sasl.jaas.config"], "kafkaVersion": "3.9.1"}, ("Principal", None)),
        ({"connectorClientOverrides": ["sasl.jaas.config"]}, ("Allowlist", "sasl.jaas.config")),
    ],
    ids=["nothing", "cluster-4.3", "cluster-4.2", "cluster-4.1", "cluster-3.6", "cluster-unknown", "connect",
         "declared-overrides", "listed", "star", "principal-3.9", "principal-4.3"],
)
def test_override_policy_is_the_narrowest_for_the_kafka_version(
    render: Render, values: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    assert policy(render, values) == expected


@pytest.mark.parametrize(
    "key", ["connector.client.config.override.policy", "connector.client.config.override.allowlist"]
)
def test_the_policy_is_not_a_worker_config_value(render: Render, key: str) -> None:
    line = refusal(render, {**BOOT, "workerConfig": {key: "All"}})
    assert f"workerConfig.{key}" in line and "connectorClientOverrides" in line


def test_the_documented_upgrade_keeps_the_cluster_and_its_sinks_groups(render: Render) -> None:
    """README "Upgrading": the former default as groupId, and `connect` for sinks that already run, render the same
    group.id, topics and sink configs as the chart did when both were derived (group.id <namespace>-<full name>,
    Connect's connect-<connector>)."""
    connectors = {"archive": sink(), "lines": source()}
    upgraded = {"groupId": "team-a-rel-kafka-connect", "sinkConsumerGroups": "connect", "connectors": connectors}
    props = worker_props(render, upgraded)
    assert props["group.id"] == "team-a-rel-kafka-connect"
    assert [props[k] for k in TOPIC_KEYS] == [f"team-a-rel-kafka-connect-{s}" for s in ("configs", "offsets", "status")]
    configs = {name: c["config"] for name, c in declared(render, upgraded).items()}
    assert configs == {"archive": {k: str(v) for k, v in sink()["config"].items()},
                       "lines": {k: str(v) for k, v in source()["config"].items()}}
    # Without the second value the upgrade is refused, never silently moved to <groupId>-archive.
    line = refusal(render, {**BOOT, "groupId": "team-a-rel-kafka-connect", "connectors": connectors})
    assert "sinkConsumerGroups" in line
