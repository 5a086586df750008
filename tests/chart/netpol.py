"""NetworkPolicy ingress semantics as a pure function: may a pod open a connection to another pod on a port?

This stands in for an enforcer where none can run (issue 10: kube-network-policies needs nftables `queue`, which
this kernel lacks), so the rendered (or live) policies' peers are checked instead of packets. It follows
https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the API reference of
NetworkPolicy, LabelSelector and NetworkPolicyPort; only ingress is modelled (the chart writes no egress rules).

Inputs are plain dicts in the shape of the Kubernetes API, camelCase, as rendered YAML parses or as
`kubernetes.client.ApiClient().sanitize_for_serialization(obj)` gives them for live objects:
- a policy: `metadata.namespace` (required: a policy only ever applies to pods of its own namespace),
  `metadata.name`, `spec.podSelector`, `spec.policyTypes`, `spec.ingress[].from[]`, `spec.ingress[].ports[]`;
  objects of another namespace are ignored, so every policy of the cluster may be passed;
- a pod: `metadata.namespace`, `metadata.labels`, `metadata.name` (optional), `spec.containers[].ports[]` (named
  ports of the destination resolve there) and, for a source, `status.podIP`/`status.podIPs` (optional). A
  Deployment's or Job's pod template becomes a pod by adding `metadata.namespace` (see `pod_of`).

Semantics, each as the documentation states it:
- a pod is isolated for ingress when some policy of its namespace selects it (`spec.podSelector`, empty = every
  pod) and has `Ingress` in its policyTypes (absent policyTypes: Ingress always, Egress when egress rules exist);
  a pod that is not isolated accepts every connection; an isolated one only those that some ingress rule of some
  selecting policy admits (the union; `ingress` absent or `[]` admits nothing);
- a rule admits a connection when one of its `ports` matches (none listed = every port) and one of its `from`
  peers selects the source (none listed = every source);
- a port: `protocol` (default TCP) must equal the connection's; `port` absent = every port of that protocol; a
  number, with `endPort` a range (inclusive); a name resolves against the destination pod's container ports of
  that name and protocol;
- a peer: `podSelector` alone = pods of the policy's namespace; `namespaceSelector` alone = every pod of the
  selected namespaces; both = the selected pods of the selected namespaces; `ipBlock` = the source IP within
  `cidr` and outside every `except` (no source IP known: no match);
- a label selector: `matchLabels` AND `matchExpressions` (In, NotIn, Exists, DoesNotExist; NotIn and DoesNotExist
  also match a pod without the key); an empty selector selects everything;
- namespaces always carry `kubernetes.io/metadata.name: <name>` (the API server sets it), so it is added to the
  source namespace's labels here;
- a pod always reaches itself (same namespace and name).
Not modelled: traffic from the destination's node (always allowed by the docs), hostNetwork pods (undefined),
egress. Objects the API server would refuse (an unknown operator, `endPort` with a named port, a peer with
`ipBlock` and a selector, ...) raise PolicyError naming the field.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]
PROTOCOLS = ("TCP", "UDP", "SCTP")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class PolicyError(ValueError):
    """An object the API server would refuse, or one missing a field this check needs; the message names it."""


@dataclass(frozen=True)
class Verdict:
    """Whether a connection is allowed, and why: printable as one line for an e2e failure."""

    allowed: bool
    connection: str  # "team-a/src -> team-a/dst TCP/8083"
    isolated: bool  # some Ingress policy selects the destination pod
    selecting: tuple[str, ...] = ()  # "namespace/name" of those policies
    policy: str | None = None  # the policy whose rule admitted the connection
    rule: int | None = None  # index of that rule in its spec.ingress
    peer: int | None = None  # index of the admitting peer in the rule's `from` (None: the rule admits every source)
    misses: tuple[str, ...] = ()  # when denied: why each rule of each selecting policy did not admit it
    note: str = ""  # a reason outside the rules (a pod reaching itself)

    def __str__(self) -> str:
        if self.note:
            return f"{self.connection}: allowed, {self.note}"
        if not self.isolated:
            return f"{self.connection}: allowed, no Ingress NetworkPolicy selects the destination (not isolated)"
        if self.allowed:
            source = "every source" if self.peer is None else f"from[{self.peer}]"
            return f"{self.connection}: allowed by {self.policy} ingress[{self.rule}] ({source})"
        return (f"{self.connection}: denied, isolated by {', '.join(self.selecting)} and no rule admits it: "
                + "; ".join(self.misses))


def matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels: matchLabels AND matchExpressions; empty selects all, null selects none."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for i, req in enumerate(selector.get("matchExpressions") or []):
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if not key:
            raise PolicyError(f"matchExpressions[{i}] has no key")
        if op in ("In", "NotIn") and not values:
            raise PolicyError(f"matchExpressions[{i}] ({key} {op}) needs values")
        if op in ("Exists", "DoesNotExist") and values:
            raise PolicyError(f"matchExpressions[{i}] ({key} {op}) must have no values")
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            raise PolicyError(f"matchExpressions[{i}] ({key}): unknown operator {op!r} (In, NotIn, Exists, "
                              "DoesNotExist)")
        if not ok:
            return False
    return True


def pod_of(owner: Obj, namespace: str | None = None) -> dict[str, Any]:
    """A pod dict from a Pod, or from a Deployment's/Job's pod template (which carries no namespace: the owner's
    metadata.namespace, or `namespace`, is filled in)."""
    spec = owner.get("spec") or {}
    if "template" in spec:
        pod = copy.deepcopy(dict(spec["template"]))
        pod.setdefault("metadata", {})
    else:
        pod = copy.deepcopy(dict(owner))
    ns = namespace or (owner.get("metadata") or {}).get("namespace")
    if not ns:
        raise PolicyError("pod_of: the owner has no metadata.namespace and none was given")
    pod["metadata"]["namespace"] = ns
    return pod


def _namespace(pod: Obj, role: str) -> str:
    ns = (pod.get("metadata") or {}).get("namespace")
    if not isinstance(ns, str) or not ns:
        raise PolicyError(f"the {role} pod has no metadata.namespace")
    return ns


def _labels(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _name(obj: Obj, namespace: str) -> str:
    return f"{namespace}/{(obj.get('metadata') or {}).get('name') or '<unnamed>'}"


def _protocol(value: Any, where: str) -> str:
    protocol = "TCP" if value is None else value
    if protocol not in PROTOCOLS:
        raise PolicyError(f"{where}: protocol {value!r} is not one of {', '.join(PROTOCOLS)}")
    return str(protocol)


def _policy_types(spec: Obj) -> Sequence[str]:
    types: Sequence[str] | None = spec.get("policyTypes")
    if types:
        return types
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _port_matches(np_port: Obj, dst_pod: Obj, port: int, protocol: str, where: str) -> bool:
    if _protocol(np_port.get("protocol"), where) != protocol:
        return False
    number = np_port.get("port")
    end = np_port.get("endPort")
    if number is None:
        if end is not None:
            raise PolicyError(f"{where}: endPort without port")
        return True
    if isinstance(number, str):
        if end is not None:
            raise PolicyError(f"{where}: endPort with the named port {number!r}")
        return any(
            p.get("name") == number and p.get("containerPort") == port
            and _protocol(p.get("protocol"), f"container {c.get('name')} port {number}") == protocol
            for c in (dst_pod.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
        )
    if end is not None and end < number:
        raise PolicyError(f"{where}: endPort {end} below port {number}")
    return bool(number == port or (end is not None and number <= port <= end))


def _source_ips(src_pod: Obj, src_ip: str | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if src_ip is not None:
        raw = [src_ip]
    else:
        status = src_pod.get("status") or {}
        raw = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")] or (
            [status["podIP"]] if status.get("podIP") else [])
    try:
        return [ipaddress.ip_address(ip) for ip in raw]
    except ValueError as exc:
        raise PolicyError(f"source IP: {exc}") from None


def _peer_matches(peer: Obj, policy_ns: str, src_ns: str, src_labels: Mapping[str, str],
                  src_ns_labels: Mapping[str, str], src_ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
                  where: str) -> bool:
    block = peer.get("ipBlock")
    pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
    if block is not None:
        if pods is not None or namespaces is not None:
            raise PolicyError(f"{where}: ipBlock together with a selector")
        try:
            cidr = ipaddress.ip_network(block["cidr"], strict=False)
            excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"{where}: ipBlock: {exc!r}") from None
        return any(ip in cidr and not any(ip in e for e in excepts if e.version == ip.version)
                   for ip in src_ips if ip.version == cidr.version)
    if pods is None and namespaces is None:
        raise PolicyError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    if namespaces is None:
        in_namespace = src_ns == policy_ns
    else:
        in_namespace = matches(namespaces, src_ns_labels)
    return in_namespace and (pods is None or matches(pods, src_labels))


def allowed(
    policies: Iterable[Obj],
    src_pod: Obj,
    src_namespace_labels: Mapping[str, str],
    dst_pod: Obj,
    dst_namespace: str | None,
    port: int,
    protocol: str = "TCP",
    src_ip: str | None = None,
) -> Verdict:
    """Whether `src_pod` (in a namespace labelled `src_namespace_labels`) may connect to `dst_pod` on `port`.

    `dst_namespace` None takes the destination's metadata.namespace; given, it must agree with it when that is set.
    `src_ip` None takes the source's status.podIPs/podIP (for ipBlock peers). See the module docstring.
    """
    protocol = _protocol(protocol, "connection")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise PolicyError(f"connection: port {port!r} is not a number in 1-65535")
    src_ns = _namespace(src_pod, "source")
    pod_ns = (dst_pod.get("metadata") or {}).get("namespace")
    if dst_namespace is not None and pod_ns and pod_ns != dst_namespace:
        raise PolicyError(f"dst_namespace {dst_namespace!r} differs from the pod's metadata.namespace {pod_ns!r}")
    dst_ns = dst_namespace or _namespace(dst_pod, "destination")
    ns_labels = dict(src_namespace_labels)
    if ns_labels.setdefault(NAMESPACE_NAME_LABEL, src_ns) != src_ns:
        raise PolicyError(f"source namespace labels say {NAMESPACE_NAME_LABEL}={ns_labels[NAMESPACE_NAME_LABEL]} "
                          f"but the pod's namespace is {src_ns}")
    src_labels, dst_labels = _labels(src_pod), _labels(dst_pod)
    connection = f"{_name(src_pod, src_ns)} -> {_name(dst_pod, dst_ns)} {protocol}/{port}"
    src_name, dst_name = (src_pod.get("metadata") or {}).get("name"), (dst_pod.get("metadata") or {}).get("name")
    if src_name and src_ns == dst_ns and src_name == dst_name:
        return Verdict(True, connection, isolated=False, note="a pod always reaches itself")
    src_ips = _source_ips(src_pod, src_ip)

    selecting: list[tuple[str, str, Obj]] = []  # (name, namespace, spec) of the Ingress policies selecting dst
    for policy in policies:
        kind = policy.get("kind")
        if kind is not None and kind != "NetworkPolicy":
            raise PolicyError(f"expected NetworkPolicy objects, got a {kind}")
        policy_ns = (policy.get("metadata") or {}).get("namespace")
        if not policy_ns:
            raise PolicyError(f"NetworkPolicy {_name(policy, '?')} has no metadata.namespace")
        spec = policy.get("spec") or {}
        if policy_ns == dst_ns and "Ingress" in _policy_types(spec) and matches(spec.get("podSelector") or {},
                                                                                  dst_labels):
            selecting.append((_name(policy, policy_ns), policy_ns, spec))
    if not selecting:
        return Verdict(True, connection, isolated=False)
    names = tuple(name for name, _, _ in selecting)
    misses: list[str] = []
    for name, policy_ns, spec in selecting:
        rules = spec.get("ingress") or []
        if not rules:
            misses.append(f"{name} has no ingress rules (denies all)")
        for r, rule in enumerate(rules):
            where = f"{name} ingress[{r}]"
            ports = rule.get("ports") or []
            if ports and not any(_port_matches(p, dst_pod, port, protocol, f"{where} ports[{i}]")
                                 for i, p in enumerate(ports)):
                misses.append(f"{where}: {protocol}/{port} is not among its ports "
                              + ", ".join(f"{p.get('protocol', 'TCP')}/{p.get('port', '*')}" for p in ports))
                continue
            peers = rule.get("from") or []
            if not peers:
                return Verdict(True, connection, True, names, name, r, None)
            for i, peer in enumerate(peers):
                if _peer_matches(peer, policy_ns, src_ns, src_labels, ns_labels, src_ips, f"{where} from[{i}]"):
                    return Verdict(True, connection, True, names, name, r, i)
            misses.append(f"{where}: none of its {len(peers)} peers selects the source")
    return Verdict(False, connection, True, names, misses=tuple(misses))
