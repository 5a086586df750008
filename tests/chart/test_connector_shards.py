"""Declarations beyond one ConfigMap (issue 19): the API server refuses a ConfigMap whose data passes 1 MiB, which one
ConfigMap of ~766 Debezium-sized connectors does. The chart splits them into shards by size, mounted through one
projected volume as a directory the sidecar and the apply Job read (connect_health.declared.load_dir)."""

from __future__ import annotations

import importlib.util
import json

from .render import ROOT, Obj, Render, by_kind, container, env_of, one, pod_spec

# The Debezium-sized declaration bench/chart_template_bench.py times (one generator for the test and the bench).
_spec = importlib.util.spec_from_file_location("chart_template_bench", ROOT / "bench" / "chart_template_bench.py")
assert _spec and _spec.loader
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
debezium = _bench.debezium

BOOT = {"bootstrapServers": "kafka:9092"}
MIB = 1024 * 1024
DIR = "/etc/connect-health"


def data_bytes(cm: Obj) -> int:
    """What the API server counts against a ConfigMap's 1 MiB: every key and value of data."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in cm.get("data", {}).items())


def shards(objects: list[Obj]) -> list[Obj]:
    return [cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "connectors"]


def test_one_thousand_debezium_connectors_render_in_configmaps_under_1_mib(render: Render) -> None:
    declared = {f"orders-cdc-{i:04d}": debezium(i) for i in range(1000)}
    objects = render({**BOOT, "connectors": declared})
    cms = shards(objects)
    assert len(cms) >= 2
    seen: dict[str, str] = {}
    for cm in cms:
        assert data_bytes(cm) < MIB, (cm["metadata"]["name"], data_bytes(cm))
        assert len(json.dumps(cm).encode()) < MIB
        for key, text in cm["data"].items():
            for name in json.loads(text):
                assert name not in seen, f"{name} in {seen.get(name)} and {key}"
                seen[name] = key
    assert sorted(seen) == sorted(declared)
    # The first shard keeps the contract's name and key; the others follow it.
    names = [cm["metadata"]["name"] for cm in cms]
    assert names[0] == "rel-kafka-connect-connectors" and names[1] == "rel-kafka-connect-connectors-2"
    assert set(cms[1]["data"]) == {"connectors-2.json"}

    # The sidecar and the apply Job read the directory, mounted from every shard through one projected volume.
    for owner, name in ((one(objects, "Deployment"), "connect-health"), (one(objects, "Job"), "apply")):
        c = container(owner, name)
        assert env_of(c)["CONNECT_HEALTH_CONNECTORS_FILE"] == DIR
        assert {"name": "connectors", "mountPath": DIR, "readOnly": True} in c["volumeMounts"]
        volume = next(v for v in pod_spec(owner)["volumes"] if v["name"] == "connectors")
        assert [s["configMap"]["name"] for s in volume["projected"]["sources"]] == names


def test_few_connectors_stay_one_configmap_read_as_one_file(render: Render) -> None:
    objects = render({**BOOT, "connectors": {f"orders-cdc-{i:04d}": debezium(i) for i in range(3)}})
    (cm,) = shards(objects)
    assert set(cm["data"]) == {"connectors.json"}
    sidecar = container(one(objects, "Deployment"), "connect-health")
    assert env_of(sidecar)["CONNECT_HEALTH_CONNECTORS_FILE"] == f"{DIR}/connectors.json"


def test_characters_yaml_refuses_are_escaped_and_read_back(render: Render) -> None:
    """JSON leaves U+007F-U+009F and U+FFFE/U+FFFF raw, which a YAML block refuses (found by test_values_property)."""
    text = "a\ufffeb\u0085c\u007f"
    objects = render({**BOOT, "connectors": {"c": {"config": {"connector.class": text}}}})
    (cm,) = shards(objects)
    assert json.loads(cm["data"]["connectors.json"])["c"]["config"]["connector.class"] == text
