"""Many releases: examples/umbrella depends on kafka-connect twice under two aliases; nothing may collide."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from .render import (
    CHART,
    KUBE_VERSIONS,
    NEWEST_KUBE,
    UMBRELLA,
    Obj,
    by_kind,
    lint_chart,
    pod_spec,
    render_chart,
    run_helm,
)
from .test_scenarios import validate_object

ALIASES = ("orders-connect", "payments-connect")


@pytest.fixture(scope="session")
def umbrella(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/umbrella whose file:// dependency points at this checkout's chart, with its
    dependencies built offline (the repository never holds a packaged chart)."""
    copy = tmp_path_factory.mktemp(f"umbrella-{helm}") / "umbrella"
    shutil.copytree(UMBRELLA, copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    chart_yaml = copy / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    for dep in meta["dependencies"]:
        assert dep["repository"] == "file://../../charts/kafka-connect", dep
        assert (UMBRELLA / dep["repository"].removeprefix("file://")).resolve() == CHART
        dep["repository"] = f"file://{CHART}"
    chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    run_helm(helm, "dependency", "update", str(copy))
    packaged = list((copy / "charts").glob("kafka-connect-*.tgz"))
    assert len(packaged) == 1
    return copy


def render_umbrella(helm: str, umbrella: Path, kube_version: str = NEWEST_KUBE) -> list[Obj]:
    """The umbrella's objects; its values set the sidecar image of both aliases themselves."""
    return render_chart(
        helm=helm, chart=umbrella, release="platform", kube_version=kube_version, sidecar_image=False, identity=False
    )


@pytest.fixture(scope="session")
def objects(helm: str, umbrella: Path) -> list[Obj]:
    return render_umbrella(helm, umbrella)


def test_both_aliases_render(objects: list[Obj]) -> None:
    deployments = {d["metadata"]["name"] for d in by_kind(objects, "Deployment")}
    assert deployments == {f"platform-{alias}" for alias in ALIASES}


def test_no_two_objects_share_kind_and_name(objects: list[Obj]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        seen[key] = seen.get(key, 0) + 1
    assert {k: n for k, n in seen.items() if n > 1} == {}
    assert len(objects) >= 16


def test_selectors_never_select_the_other_release(objects: list[Obj]) -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind(objects, "Deployment")}
    selecting = [(o, o["spec"]["selector"]) for o in by_kind(objects, "Service")]
    selecting += [(o, o["spec"]["selector"]["matchLabels"]) for o in by_kind(objects, "Deployment")]
    selecting += [(o, o["spec"]["selector"]["matchLabels"]) for o in by_kind(objects, "PodDisruptionBudget")]
    selecting += [(o, o["spec"]["podSelector"]["matchLabels"]) for o in by_kind(objects, "NetworkPolicy")]
    assert len(selecting) >= 6
    for obj, selector in selecting:
        chosen = [name for name, labels in pods.items() if all(labels.get(k) == v for k, v in selector.items())]
        # the apply Job's Service (<fullname>-apply) selects its own release's workers
        own = obj["metadata"]["name"].removesuffix("-apply") if obj["kind"] == "Service" else obj["metadata"]["name"]
        assert chosen == [own], f"{obj['kind']}/{obj['metadata']['name']} selects {chosen}"


def test_connect_clusters_are_independent(objects: list[Obj]) -> None:
    props = {}
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].endswith("-worker"):
            text = cm["data"]["connect-distributed.properties"]
            props[cm["metadata"]["name"]] = dict(
                line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
            )
    assert len(props) == 2
    group_ids = {p["group.id"] for p in props.values()}
    topics = {
        p[k] for p in props.values() for k in ("config.storage.topic", "offset.storage.topic", "status.storage.topic")
    }
    assert group_ids == set(ALIASES)
    assert len(topics) == 6
    # Each cluster's apply Job talks to its own apply Service, with its own declarations.
    for job in by_kind(objects, "Job"):
        alias = job["metadata"]["name"].removeprefix("platform-").removesuffix("-connectors-apply")
        command = pod_spec(job)["containers"][0]["command"]
        assert command[command.index("--connect-url") + 1] == f"http://platform-{alias}-apply:8083"
        volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "connectors")
        assert volume["configMap"]["name"] == f"platform-{alias}-connectors"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_umbrella_objects_validate(helm: str, umbrella: Path, kube_version: str) -> None:
    for obj in render_umbrella(helm, umbrella, kube_version):
        validate_object(obj, kube_version)


def test_umbrella_lints(helm: str, umbrella: Path) -> None:
    lint_chart(helm, chart=umbrella)


def test_one_sink_name_in_both_clusters_gets_two_consumer_groups(objects: list[Obj]) -> None:
    """Connect would name both sinks' group connect-orders-sink: two clusters splitting one topic's partitions."""
    groups = {}
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].endswith("-connectors"):
            declared = json.loads(cm["data"]["connectors.json"])
            groups[cm["metadata"]["name"]] = declared["orders-sink"]["config"]["consumer.override.group.id"]
    assert groups == {f"platform-{alias}-connectors": f"{alias}-orders-sink" for alias in ALIASES}
