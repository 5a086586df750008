"""The NetworkPolicy ingress model (netpol.py): each rule of the documented semantics, one case it admits and one
it refuses, so a wrong implementation fails here before it misjudges the chart's policy."""

from __future__ import annotations

from typing import Any

import pytest

from .netpol import PolicyError, Verdict, allowed, matches, pod_of

NS = "team-a"
WORKER = {"app": "connect", "tier": "worker"}


def pod(labels: dict[str, str] | None = None, ns: str = NS, name: str | None = None,
        ports: list[dict[str, Any]] | None = None, ip: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "labels": labels or {}}
    if name:
        meta["name"] = name
    p: dict[str, Any] = {"metadata": meta, "spec": {"containers": [{"name": "c", "ports": ports or []}]}}
    if ip:
        p["status"] = {"podIP": ip}
    return p


DST = pod(WORKER, name="worker-0", ports=[
    {"name": "http", "containerPort": 8083, "protocol": "TCP"},
    {"name": "health", "containerPort": 8090},  # protocol defaults to TCP
    {"name": "dns", "containerPort": 5353, "protocol": "UDP"}])


def policy(*ingress: dict[str, Any], name: str = "np", ns: str = NS, select: dict[str, Any] | None = None,
           types: list[str] | None = None, no_ingress: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "connect"}} if select is None else select}
    if types is not None:
        spec["policyTypes"] = types
    if not no_ingress:
        spec["ingress"] = list(ingress)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def check(policies: list[dict[str, Any]], src: dict[str, Any], port: int = 8083,
          ns_labels: dict[str, str] | None = None, protocol: str = "TCP", src_ip: str | None = None,
          dst: dict[str, Any] = DST) -> Verdict:
    return allowed(policies, src, ns_labels or {}, dst, None, port, protocol=protocol, src_ip=src_ip)


def from_pods(**labels: str) -> dict[str, Any]:
    return {"from": [{"podSelector": {"matchLabels": labels}}]}


# --- label selectors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {}, True),  # empty selects all
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchLabels": {"a": "1", "b": "2"}}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "3"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),  # absent key matches
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
    # matchLabels AND matchExpressions, and the expressions ANDed among themselves
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1", "b": "x"}, True),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"b": "x"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "DoesNotExist"}]},
     {"a": "1", "b": "1"}, False),
])
def test_label_selector(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert matches(selector, labels) is expected


def test_null_selector_selects_nothing() -> None:
    assert matches(None, {"a": "1"}) is False


@pytest.mark.parametrize(("req", "message"), [
    ({"key": "a", "operator": "Equals", "values": ["1"]}, "unknown operator 'Equals'"),
    ({"key": "a", "operator": "In", "values": []}, r"\(a In\) needs values"),
    ({"key": "a", "operator": "Exists", "values": ["1"]}, r"\(a Exists\) must have no values"),
])
def test_selectors_the_api_server_refuses_are_named(req: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        matches({"matchExpressions": [req]}, {"a": "1"})


def test_policy_selector_with_expressions_decides_isolation() -> None:
    np = policy(select={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["worker"]}]})
    assert not check([np], pod()).allowed  # selected: isolated, no rules
    other = pod({"app": "connect", "tier": "web"}, name="web-0")
    assert check([np], pod(), dst=other).allowed  # NotIn the selection: not isolated


# --- isolation -------------------------------------------------------------------------------------------------

def test_no_policy_selecting_the_pod_allows_everything() -> None:
    v = check([policy(select={"matchLabels": {"app": "other"}})], pod({"x": "y"}, ns="elsewhere"))
    assert v.allowed and not v.isolated and v.selecting == ()
    assert "not isolated" in str(v)


def test_a_policy_of_another_namespace_does_not_isolate() -> None:
    assert check([policy(ns="team-b")], pod()).allowed
    assert not check([policy(ns=NS)], pod()).allowed


@pytest.mark.parametrize("ingress_field", [[], None])
def test_empty_or_absent_ingress_with_policy_type_ingress_denies_all(ingress_field: list[Any] | None) -> None:
    np = policy(types=["Ingress"], no_ingress=ingress_field is None)
    v = check([np], pod(WORKER))
    assert not v.allowed and v.isolated and v.selecting == (f"{NS}/np",)
    assert "has no ingress rules (denies all)" in str(v)


def test_absent_policy_types_mean_ingress() -> None:
    assert not check([policy(no_ingress=True)], pod()).allowed


def test_an_egress_only_policy_does_not_isolate_for_ingress() -> None:
    np = policy(types=["Egress"], no_ingress=True)
    np["spec"]["egress"] = [{"to": [{"podSelector": {}}]}]
    assert check([np], pod()).allowed
    np["spec"]["policyTypes"] = ["Ingress", "Egress"]
    assert not check([np], pod()).allowed


def test_union_of_the_selecting_policies() -> None:
    a = policy(from_pods(role="a"), name="a")
    b = policy(from_pods(role="b"), name="b", select={})
    v = check([a, b], pod({"role": "b"}))
    assert v.allowed and v.policy == f"{NS}/b" and v.rule == 0 and v.peer == 0
    assert v.selecting == (f"{NS}/a", f"{NS}/b")
    assert str(v) == f"{NS}/<unnamed> -> {NS}/worker-0 TCP/8083: allowed by {NS}/b ingress[0] (from[0])"
    v = check([a, b], pod({"role": "c"}))
    assert not v.allowed
    assert v.misses == (f"{NS}/a ingress[0]: none of its 1 peers selects the source",
                        f"{NS}/b ingress[0]: none of its 1 peers selects the source")
    assert str(v).startswith(f"{NS}/<unnamed> -> {NS}/worker-0 TCP/8083: denied, isolated by {NS}/a, {NS}/b")


def test_a_pod_always_reaches_itself() -> None:
    v = check([policy()], DST)
    assert v.allowed and "reaches itself" in str(v)
    assert not check([policy()], pod(WORKER, name="worker-1")).allowed


# --- rules: from and ports -------------------------------------------------------------------------------------

def test_rule_without_from_admits_every_source_on_its_ports() -> None:
    np = policy({"ports": [{"port": 8083}]})
    v = check([np], pod({"any": "thing"}, ns="far", ip="192.0.2.7"), ns_labels={"team": "z"})
    assert v.allowed and v.peer is None and "(every source)" in str(v)
    assert not check([np], pod(), port=8090).allowed


def test_rule_without_ports_admits_every_port() -> None:
    np = policy(from_pods(role="client"))
    assert check([np], pod({"role": "client"}), port=12345).allowed
    assert check([np], pod({"role": "client"}), port=5353, protocol="UDP").allowed
    assert not check([np], pod({"role": "other"}), port=12345).allowed


def test_an_empty_rule_admits_everything() -> None:
    assert check([policy({})], pod(ns="far"), port=1).allowed


def test_numeric_port_and_default_protocol_tcp() -> None:
    np = policy({"ports": [{"port": 8083}]})
    assert check([np], pod()).allowed
    assert not check([np], pod(), port=8084).allowed
    v = check([np], pod(), protocol="UDP")
    assert not v.allowed and "UDP/8083 is not among its ports TCP/8083" in str(v)


def test_protocol_udp() -> None:
    np = policy({"ports": [{"port": 5353, "protocol": "UDP"}]})
    assert check([np], pod(), port=5353, protocol="UDP").allowed
    assert not check([np], pod(), port=5353).allowed


def test_named_port_resolves_against_the_destination_containers() -> None:
    np = policy({"ports": [{"port": "health", "protocol": "TCP"}]})
    assert check([np], pod(), port=8090).allowed  # container port "health" without protocol is TCP
    assert not check([np], pod(), port=8083).allowed  # 8083 is "http", not "health"
    other = pod(WORKER, name="w", ports=[{"name": "health", "containerPort": 9000}])
    assert check([np], pod(), port=9000, dst=other).allowed  # resolved per destination pod
    assert not check([np], pod(), port=8090, dst=other).allowed
    nameless = pod(WORKER, name="n", ports=[{"containerPort": 8090}])
    assert not check([np], pod(), port=8090, dst=nameless).allowed


def test_named_port_matches_the_container_ports_protocol() -> None:
    assert check([policy({"ports": [{"port": "dns", "protocol": "UDP"}]})], pod(), 5353, protocol="UDP").allowed
    assert not check([policy({"ports": [{"port": "dns"}]})], pod(), 5353).allowed  # the policy says TCP, dns is UDP


def test_end_port_range_is_inclusive() -> None:
    np = policy({"ports": [{"port": 8000, "endPort": 8090}]})
    assert check([np], pod(), port=8000).allowed and check([np], pod(), port=8090).allowed
    assert not check([np], pod(), port=8091).allowed and not check([np], pod(), port=7999).allowed


def test_protocol_without_port_admits_every_port_of_that_protocol() -> None:
    np = policy({"ports": [{"protocol": "UDP"}]})
    assert check([np], pod(), port=40000, protocol="UDP").allowed
    assert not check([np], pod(), port=40000).allowed


# --- peers -----------------------------------------------------------------------------------------------------

def test_pod_selector_alone_means_the_policys_namespace() -> None:
    np = policy(from_pods(role="client"))
    assert check([np], pod({"role": "client"})).allowed
    assert not check([np], pod({"role": "client"}, ns="team-b")).allowed  # same labels, other namespace
    assert not check([np], pod({"role": "server"})).allowed


def test_namespace_selector_alone_means_every_pod_there() -> None:
    np = policy({"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]})
    assert check([np], pod({"whatever": "x"}, ns="ops"), ns_labels={"team": "ops"}).allowed
    assert not check([np], pod({"whatever": "x"}, ns="dev"), ns_labels={"team": "dev"}).allowed
    assert not check([np], pod({"whatever": "x"}), ns_labels={}).allowed  # not even the policy's own namespace


def test_empty_namespace_selector_means_every_namespace() -> None:
    np = policy({"from": [{"namespaceSelector": {}}]})
    assert check([np], pod(ns="anywhere")).allowed
    own = policy({"from": [{"podSelector": {}}]})  # whereas an empty podSelector alone: the policy's namespace
    assert check([own], pod()).allowed
    assert not check([own], pod(ns="anywhere")).allowed


def test_namespace_and_pod_selector_together_are_anded() -> None:
    np = policy({"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}},
                           "podSelector": {"matchLabels": {"role": "scraper"}}}]})
    assert check([np], pod({"role": "scraper"}, ns="ops"), ns_labels={"team": "ops"}).allowed
    assert not check([np], pod({"role": "other"}, ns="ops"), ns_labels={"team": "ops"}).allowed
    assert not check([np], pod({"role": "scraper"}, ns="dev"), ns_labels={"team": "dev"}).allowed
    # ... whereas two peers are ORed
    either = policy({"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                              {"podSelector": {"matchLabels": {"role": "scraper"}}}]})
    assert check([either], pod({"role": "other"}, ns="ops"), ns_labels={"team": "ops"}).allowed


def test_namespaces_carry_their_name_label() -> None:
    np = policy({"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]})
    assert check([np], pod(ns="monitoring")).allowed
    assert not check([np], pod(ns="monitoring-2")).allowed
    with pytest.raises(PolicyError, match="say kubernetes.io/metadata.name=other but the pod's namespace is mon"):
        check([np], pod(ns="mon"), ns_labels={"kubernetes.io/metadata.name": "other"})


def test_ip_block_with_except() -> None:
    np = policy({"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.5.0/24"]}}]})
    assert check([np], pod(ns="far"), src_ip="10.0.4.9").allowed
    assert not check([np], pod(ns="far"), src_ip="10.0.5.9").allowed  # in except
    assert not check([np], pod(ns="far"), src_ip="10.1.0.1").allowed  # outside cidr
    assert not check([np], pod(ns="far"), src_ip="fd00::1").allowed  # other family
    assert not check([np], pod(ns="far")).allowed  # no IP known: an ipBlock cannot match
    assert check([np], pod(ns="far", ip="10.0.0.1")).allowed  # the source's status.podIP
    assert not check([np], pod(ns="far", ip="10.0.0.1"), src_ip="10.9.0.1").allowed  # src_ip wins


# --- inputs the API server would refuse, and pods from templates -----------------------------------------------

@pytest.mark.parametrize(("rule", "message"), [
    ({"ports": [{"port": "http", "endPort": 9000}]}, r"ingress\[0\] ports\[0\]: endPort with the named port 'http'"),
    ({"ports": [{"port": 9000, "endPort": 8000}]}, "endPort 8000 below port 9000"),
    ({"ports": [{"port": 8083, "protocol": "tcp"}]}, "protocol 'tcp' is not one of TCP, UDP, SCTP"),
    ({"from": [{}]}, r"from\[0\]: a peer needs podSelector, namespaceSelector or ipBlock"),
    ({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}, "ipBlock together with a selector"),
    ({"from": [{"ipBlock": {"cidr": "ten"}}]}, "ipBlock"),
])
def test_invalid_policies_are_named(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        check([policy(rule)], pod(), src_ip="10.0.0.1")


def test_invalid_inputs_are_named() -> None:
    with pytest.raises(PolicyError, match="the source pod has no metadata.namespace"):
        allowed([], {"metadata": {}}, {}, DST, None, 8083)
    with pytest.raises(PolicyError, match="dst_namespace 'x' differs"):
        allowed([], pod(), {}, DST, "x", 8083)
    with pytest.raises(PolicyError, match="port 0 is not a number"):
        allowed([], pod(), {}, DST, None, 0)
    with pytest.raises(PolicyError, match="expected NetworkPolicy objects, got a Pod"):
        allowed([DST | {"kind": "Pod"}], pod(), {}, DST, None, 8083)
    with pytest.raises(PolicyError, match="has no metadata.namespace"):
        allowed([{"kind": "NetworkPolicy", "metadata": {"name": "np"}, "spec": {}}], pod(), {}, DST, None, 8083)


def test_pod_of_a_template_takes_the_owners_namespace() -> None:
    deployment: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": "d", "namespace": "team-c"},
                                  "spec": {"template": {"metadata": {"labels": WORKER}, "spec": DST["spec"]}}}
    worker = pod_of(deployment)
    assert worker["metadata"] == {"labels": WORKER, "namespace": "team-c"}
    assert "namespace" not in deployment["spec"]["template"]["metadata"]  # a copy
    assert check([policy({"ports": [{"port": "http"}]}, ns="team-c")], pod(ns="team-c"), dst=worker).allowed
    assert not check([policy({"ports": [{"port": "http"}]}, ns="team-c")], pod(ns="team-c"), 8090, dst=worker).allowed
    with pytest.raises(PolicyError, match="no metadata.namespace and none was given"):
        pod_of({"spec": {"template": {"metadata": {}}}})


def test_live_objects_through_the_kubernetes_clients_serializer() -> None:
    """The cluster e2e passes live objects as `ApiClient().sanitize_for_serialization` gives them: camelCase
    dicts with unset fields left out (a peer without podSelector, a policy with policyTypes defaulted)."""
    from kubernetes import client as k

    def sanitize(obj: object) -> Any:
        return k.ApiClient().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    np = sanitize(k.V1NetworkPolicy(
        metadata=k.V1ObjectMeta(name="live", namespace=NS),
        spec=k.V1NetworkPolicySpec(
            pod_selector=k.V1LabelSelector(match_labels={"app": "connect"}), policy_types=["Ingress"],
            ingress=[k.V1NetworkPolicyIngressRule(
                ports=[k.V1NetworkPolicyPort(port="http", protocol="TCP")],
                _from=[k.V1NetworkPolicyPeer(namespace_selector=k.V1LabelSelector(
                    match_expressions=[k.V1LabelSelectorRequirement(key="team", operator="In", values=["ops"])]))],
            ), k.V1NetworkPolicyIngressRule(_from=[k.V1NetworkPolicyPeer(ip_block=k.V1IPBlock(cidr="10.9.0.0/16"))])],
        )))
    assert "podSelector" not in np["spec"]["ingress"][0]["from"][0]  # null, not {}: every pod of those namespaces
    dst = sanitize(k.V1Pod(
        metadata=k.V1ObjectMeta(name="w-0", namespace=NS, labels=WORKER),
        spec=k.V1PodSpec(containers=[k.V1Container(
            name="connect", ports=[k.V1ContainerPort(name="http", container_port=8083, protocol="TCP")])])))
    src = sanitize(k.V1Pod(metadata=k.V1ObjectMeta(name="s", namespace="ops", labels={}),
                           status=k.V1PodStatus(pod_ip="10.8.0.4")))
    assert allowed([np], src, {"team": "ops"}, dst, NS, 8083).allowed
    assert not allowed([np], src, {"team": "dev"}, dst, NS, 8083).allowed
    assert allowed([np], src, {"team": "dev"}, dst, NS, 8083, src_ip="10.9.1.1").allowed  # the ipBlock rule
    src["status"]["podIP"] = "10.9.0.4"
    assert allowed([np], src, {"team": "dev"}, dst, NS, 9999).allowed  # the ipBlock rule has no ports: all
