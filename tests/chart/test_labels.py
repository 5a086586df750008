"""Labels and selectors: the app.kubernetes.io set everywhere; selectors only name, instance and component."""

from __future__ import annotations

from .render import CHART, Obj, Render, by_kind, one, pod_spec

SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
ALL_ON = {
    "bootstrapServers": "kafka:9092",
    "podLabels": {"team": "orders", "app.kubernetes.io/version-pinned": "yes"},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "connectors": {"c": {"config": {"connector.class": "org.example.C"}}},
}


def selectors(objects: list[Obj]) -> list[tuple[str, dict[str, str]]]:
    """(kind, selector labels) of everything that selects the worker pods."""
    out = []
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "Service":
            out.append((obj["kind"], spec["selector"]))
        elif obj["kind"] in ("Deployment", "PodDisruptionBudget", "ServiceMonitor"):
            out.append((obj["kind"], spec["selector"]["matchLabels"]))
        elif obj["kind"] == "NetworkPolicy":
            out.append((obj["kind"], spec["podSelector"]["matchLabels"]))
    return out


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_use_only_name_instance_component(render: Render) -> None:
    objects = render(ALL_ON)
    found = selectors(objects)
    assert {kind for kind, _ in found} == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
    }
    expected = {
        "app.kubernetes.io/name": "kafka-connect",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/component": "worker",
    }
    for kind, selector in found:
        assert selector == expected, kind
        assert set(selector) <= SELECTOR_KEYS


def test_pod_labels_carry_the_full_set_and_user_labels_but_selectors_do_not(render: Render) -> None:
    objects = render(ALL_ON)
    d = one(objects, "Deployment")
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "orders"
    assert labels["app.kubernetes.io/version"] == "4.3.1"
    assert labels["helm.sh/chart"] == "kafka-connect-0.1.0"
    assert matches(d["spec"]["selector"]["matchLabels"], labels)
    assert "team" not in d["spec"]["selector"]["matchLabels"]


def test_only_worker_pods_are_selected(render: Render) -> None:
    """The test pod and the connectors Job share name and instance; the component keeps them out of the
    Service, the PDB and the ReplicaSet."""
    objects = render(ALL_ON)
    worker_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    job_labels = one(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    test_labels = one(objects, "Pod")["metadata"]["labels"]
    for kind, selector in selectors(objects):
        assert matches(selector, worker_labels), kind
        assert not matches(selector, job_labels), kind
        assert not matches(selector, test_labels), kind
    # ... but the NetworkPolicy lets every pod of the release reach the REST port.
    rest_rule = one(objects, "NetworkPolicy")["spec"]["ingress"][0]
    release_peer = rest_rule["from"][0]["podSelector"]["matchLabels"]
    assert all(matches(release_peer, labels) for labels in (worker_labels, job_labels, test_labels))


def test_version_label_follows_the_image_tag_and_stays_out_of_selectors(render: Render) -> None:
    objects = render({"bootstrapServers": "kafka:9092", "image": {"tag": "4.2.0"}})
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == "4.2.0", obj["kind"]
    for _, selector in selectors(objects):
        assert "app.kubernetes.io/version" not in selector


def test_name_overrides(render: Render) -> None:
    objects = render({"bootstrapServers": "kafka:9092", "nameOverride": "connect"})
    assert one(objects, "Deployment")["metadata"]["name"] == "rel-connect"
    assert one(objects, "Service")["spec"]["selector"]["app.kubernetes.io/name"] == "connect"
    objects = render({"bootstrapServers": "kafka:9092", "fullnameOverride": "orders"})
    names = {o["metadata"]["name"] for o in objects}
    assert names == {"orders", "orders-worker", "orders-test-readyz"}
    # A release already named after the chart is not doubled.
    objects = render({"bootstrapServers": "kafka:9092"}, release="kafka-connect-prod")
    assert one(objects, "Deployment")["metadata"]["name"] == "kafka-connect-prod"


def test_platform_scenario_keeps_user_labels_out_of_selectors(render: Render) -> None:
    objects = render(values_files=[CHART / "ci" / "09-platform-team-values.yaml"])
    d = one(objects, "Deployment")
    assert d["metadata"]["name"] == "orders-connect"
    assert set(d["spec"]["selector"]["matchLabels"]) == SELECTOR_KEYS
    assert d["spec"]["template"]["metadata"]["labels"]["team"] == "orders"
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        assert set(pdb["spec"]["selector"]["matchLabels"]) == SELECTOR_KEYS
    assert pod_spec(d)["serviceAccountName"] == "orders-connect"
