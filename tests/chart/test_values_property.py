"""Whatever the schema accepts renders to objects the API server and the kubelet take, or is refused in one line
(issue 19). Each object alone passing its OpenAPI schema (test_scenarios.py) is not enough: names must be unique per
kind, container/volume/mount/port/env names unique in a pod, probes and Service targetPorts must find their ports,
objects must stay under 1 MiB, the heap within the memory limit, names within Kubernetes' length rules.

Values are drawn from the chart's own values.schema.json (the sub-schemas of the keys the chart turns into names,
ports, env, mounts and sizes; `from_schema` below, a small strategy over the JSON-schema keywords the chart uses:
hypothesis-jsonschema 0.23.1 installs but fails on objects with this hypothesis, 6.170), mixed with small pools of
colliding names and ports so that collisions really happen; the whole draw is then checked against the full
schema, as helm does. Each draw is
rendered by the real helm (3 and 4 alternately): a render must satisfy every rule below, a refusal must be one
`fail` line of the chart (never a template crash). Seeded: the same draws every run; 200 renders (about 30 s of CPU;
`pytest --hypothesis-show-statistics` shows how many rendered and what refused the others).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, seed, settings
from hypothesis import strategies as st

from .render import CHART, HelmError, Obj, pod_spec, render_chart
from .settings_docs import SIDECAR_ENV_FILE

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
PROPS: dict[str, Any] = SCHEMA["properties"]
EXAMPLES = 200
MIB = 1024 * 1024
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Kinds whose names become DNS labels (a Service's DNS name; a Job's and a Pod's labels and hostnames).
LABEL_NAMED = {"Service", "Job", "Pod", "Deployment"}
DIGEST = "sha256:" + "0f" * 32
PORTS = [8083, 8090, 9404, 9000]


def sub(path: str, **extra: Any) -> dict[str, Any]:
    """A sub-schema of values.schema.json by dotted path (with extra keywords, e.g. a size cap)."""
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return {**copy.deepcopy(node), **extra}


# Any character a values file (UTF-8 YAML or JSON) can hold: lone surrogates cannot be written to one.
CHARS = st.characters(exclude_categories=["Cs"])


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a JSON schema (the keywords values.schema.json uses) accepts. Objects get a subset of their properties
    and up to `maxProperties` (default 3) pattern-named keys; strings follow `pattern` (and length bounds)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    if "oneOf" in node:
        return st.one_of([from_schema({**{k: v for k, v in node.items() if k != "oneOf"}, **alt})
                          for alt in node["oneOf"]])
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**node, "type": k}) for k in kind if k != "null"])
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum", 0), node.get("maximum", 100000))
    if kind == "number":
        return st.integers(node.get("minimum", 0), node.get("maximum", 100000))
    if kind == "string":
        low, high = node.get("minLength", 0), node.get("maxLength", 40)
        if "pattern" not in node:
            return st.text(CHARS, min_size=low, max_size=high)
        return st.from_regex(node["pattern"], fullmatch=True, alphabet=CHARS).filter(lambda t: low <= len(t) <= high)
    if kind == "array":
        return st.lists(from_schema(node.get("items", {"type": "string"})), min_size=node.get("minItems", 0),
                        max_size=node.get("maxItems", 3))
    if kind == "object" and "minProperties" in node and not node.keys() & {"properties", "patternProperties"}:
        # a free-form map that must not be empty (an offsets item's partition)
        scalar = st.one_of(st.text(CHARS, max_size=10), st.integers(0, 100), st.booleans())
        return st.dictionaries(st.text(CHARS, min_size=1, max_size=10), scalar, min_size=node["minProperties"],
                               max_size=max(3, node["minProperties"]))
    if kind == "object":
        props = node.get("properties", {})
        required = set(node.get("required", []))
        fixed = st.fixed_dictionaries({k: from_schema(props[k]) for k in props if k in required},
                                      optional={k: from_schema(props[k]) for k in props if k not in required})
        patterns = [st.dictionaries(st.from_regex(pat, fullmatch=True, alphabet=CHARS), from_schema(sub_node),
                                    max_size=node.get("maxProperties", 3))
                    for pat, sub_node in node.get("patternProperties", {}).items()]
        return st.tuples(fixed, *patterns).map(lambda parts: {k: v for part in parts[::-1] for k, v in part.items()})
    raise AssertionError(f"no strategy for {node}")


def mostly(good: Any, *bad: Any) -> st.SearchStrategy[Any]:
    """`good` three times in four, else one of `bad`: most draws render, and every refusal still comes up."""
    return st.one_of(st.just(good), st.just(good), st.just(good), st.sampled_from(bad))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def values(draw: st.DrawFn) -> dict[str, Any]:
    v: dict[str, Any] = {"bootstrapServers": "kafka:9092"}

    def put(path: str, strategy: st.SearchStrategy[Any]) -> None:
        value = draw(maybe(strategy))
        if value is None:
            return
        *parents, last = path.split(".")
        here = v
        for p in parents:
            here = here.setdefault(p, {})
        here[last] = value

    put("nameOverride", st.one_of(st.just(""), from_schema(sub("nameOverride"))))
    put("fullnameOverride", st.one_of(st.just(""), from_schema(sub("fullnameOverride"))))
    port = st.one_of(st.sampled_from(PORTS), from_schema(sub("restPort")))
    put("restPort", port)
    put("healthcheck.port", port)
    put("healthcheck.enabled", st.booleans())
    put("metrics.jmxExporter.enabled", mostly(False, True))
    put("metrics.jmxExporter.port", port)
    put("metrics.jmxExporter.image", st.sampled_from([
        {"repository": "r.example.com/jmx"}, {"repository": "r.example.com/jmx", "tag": "1.0.1"},
        {"repository": "r.example.com/jmx", "digest": DIGEST}]))
    put("image", st.fixed_dictionaries({
        "repository": st.sampled_from(["apache/kafka", "confluentinc/cp-kafka-connect", "r.example.com/connect"]),
        "tag": st.sampled_from(["", "3.9.1", "4.3.1", "7.9.0"]),
        "digest": st.sampled_from(["", DIGEST])}))
    put("kafkaVersion", st.sampled_from(["3.9.1", "4.3.1", "4.3.1", ""]))
    put("logging", from_schema(sub("logging", properties={k: sub(f"logging.{k}") for k in ("enabled", "format")})))
    put("heapOpts", mostly("-Xms512m -Xmx512m", "-Xmx256m", "-Xmx768m", "-Xmx1g", "-Xmx2g", ""))
    put("jvmOpts", mostly("-XX:+UseG1GC", "", "-Xmx3g"))
    put("resources", st.sampled_from([{"limits": {"memory": m}} for m in ("512Mi", "1Gi", "2Gi", "1500M", "4G")]
                                     + [{"limits": None}]))
    put("plugins", st.lists(st.fixed_dictionaries({"name": st.sampled_from(["jdbc", "s3"]),
                                                   "image": st.just("p.example.com/plugin:1")}), max_size=3))
    put("secretMounts", st.dictionaries(
        st.sampled_from(["pg", "s3"]),
        st.fixed_dictionaries({"secretName": st.just("creds")},
                              optional={"mountPath": st.sampled_from(["/mnt/x", "/tmp", "/etc/kafka-connect"])}),
        max_size=2))
    put("extraEnv", st.dictionaries(
        mostly("TZ", "MY_VAR", "KAFKA_OPTS", "KAFKA_HEAP_OPTS", "POD_IP", "LOG_DIR", "KAFKA_LOG4J_OPTS"),
        st.just("x"), max_size=3))
    sidecar_env = sorted(json.loads(SIDECAR_ENV_FILE.read_text())) + ["CONNECT_HEALTH_POLL_INTERVAL_JITTER", "POD_IP",
                                                                      "TZ"]
    put("healthcheck.extraEnv", st.dictionaries(mostly("CONNECT_HEALTH_SERVER", *sidecar_env), st.just("waitress"),
                                                max_size=2))
    put("extraVolumes", st.lists(st.fixed_dictionaries({
        "name": st.sampled_from(["data", "tmp", "secret-pg", "plugins"]), "emptyDir": st.just({})}), max_size=2))
    put("extraVolumeMounts", st.lists(st.fixed_dictionaries({
        "name": st.sampled_from(["data", "tmp", "nowhere"]),
        "mountPath": st.sampled_from(["/data", "/tmp", "/opt/kafka/logs"])}), max_size=2))
    put("extraContainers", st.dictionaries(
        st.sampled_from(["exporter", "connect-health", "connect"]),
        st.fixed_dictionaries({"image": st.just("e.example.com/exporter:1"), "ports": st.lists(
            st.fixed_dictionaries({"containerPort": st.sampled_from(PORTS)},
                                  optional={"name": st.sampled_from(["web", "http", "health"])}), max_size=2)}),
        max_size=2))
    put("rbac.events", mostly(False, True))
    put("serviceAccount", from_schema(sub("serviceAccount", properties={
        "create": {"type": "boolean"}, "name": {"enum": ["", "connect", "team-sa"]}})))
    for feature in ("serviceMonitor", "prometheusRule", "grafanaDashboard"):
        put(f"metrics.{feature}.enabled", mostly(False, True))
    put("connectors", from_schema(sub("connectors", maxProperties=3)))
    return v


def merged(base: Any, over: Any) -> Any:
    """helm's merge of a values file onto the chart's defaults (maps merge, everything else replaces; null deletes)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, val in over.items():
            if val is None:
                out.pop(k, None)
            else:
                out[k] = merged(base.get(k), val)
        return out
    return over


def quantity(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "": 1}
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|)", q)
    assert m, q
    return float(m.group(1)) * units[m.group(2)]


def heap_bytes(opts: str) -> float | None:
    found = re.findall(r"-Xmx([0-9]+)([kKmMgGtT]?)", opts)
    if not found:
        return None
    number, unit = found[-1]
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[unit.lower()]


def problems(objects: list[Obj]) -> list[str]:
    """What the API server or the kubelet would refuse, or what would keep a pod from running."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    ports_by_name: dict[str, str] = {}
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if (kind, name) in seen:
            out.append(f"two {kind}s named {name}")
        seen.add((kind, name))
        limit, rule = (63, DNS_LABEL) if kind in LABEL_NAMED else (253, DNS_SUBDOMAIN)
        if len(name) > limit or not rule.fullmatch(name):
            out.append(f"{kind} name {name!r} is not a DNS name of at most {limit}")
        for key, value in (obj["metadata"].get("labels") or {}).items():
            if len(str(value)) > 63 or not LABEL_VALUE.fullmatch(str(value)):
                out.append(f"{kind}/{name}: label {key}={value!r} is not a label value")
        if len(json.dumps(obj).encode()) >= MIB:
            out.append(f"{kind}/{name} is 1 MiB or more")
        if kind == "ConfigMap":
            size = sum(len(k) + len(v.encode()) for k, v in (obj.get("data") or {}).items())
            if size >= MIB:
                out.append(f"ConfigMap {name} holds {size} bytes of data (limit 1 MiB)")
        if kind not in ("Deployment", "Job", "Pod"):
            continue
        pod = pod_spec(obj)
        where = f"{kind}/{name}"
        containers = pod.get("initContainers", []) + pod["containers"]
        volumes = [vol["name"] for vol in pod.get("volumes", [])]
        for what, names in (("container", [c["name"] for c in containers]), ("volume", volumes)):
            for n in {n for n in names if names.count(n) > 1}:
                out.append(f"{where}: two {what}s named {n}")
            out += [f"{where}: {what} name {n!r} is not a DNS label" for n in names
                    if len(n) > 63 or not DNS_LABEL.fullmatch(n)]
        pod_ports: list[tuple[int, str]] = []
        pod_port_names: list[str] = []
        for c in containers:
            paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
            out += [f"{where}/{c['name']}: mountPath {p} twice" for p in {p for p in paths if paths.count(p) > 1}]
            out += [f"{where}/{c['name']}: mount of missing volume {m['name']}" for m in c.get("volumeMounts", [])
                    if m["name"] not in volumes]
            env = [e["name"] for e in c.get("env", [])]
            out += [f"{where}/{c['name']}: env {e} twice" for e in {e for e in env if env.count(e) > 1}]
            own = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for p in c.get("ports", []):
                pod_ports.append((p["containerPort"], p.get("protocol", "TCP")))
                if "name" in p:
                    pod_port_names.append(p["name"])
                    if len(p["name"]) > 15 or not PORT_NAME.fullmatch(p["name"]):
                        out.append(f"{where}/{c['name']}: port name {p['name']!r} is not an IANA service name")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in own:
                    out.append(f"{where}/{c['name']}: {probe} names port {port}, not one of the container's")
                if isinstance(port, int) and port not in {pp for pp, _ in pod_ports} | {
                        p["containerPort"] for cc in containers for p in cc.get("ports", [])}:
                    out.append(f"{where}/{c['name']}: {probe} calls port {port}, which no container declares")
            if c["name"] == "connect" and kind == "Deployment":
                limit_text = (c.get("resources") or {}).get("limits", {}).get("memory")
                env_values = {e["name"]: e.get("value", "") for e in c.get("env", [])}
                for var in ("KAFKA_HEAP_OPTS", "KAFKA_OPTS"):
                    heap = heap_bytes(env_values.get(var, "") or "")
                    if limit_text and heap and heap > 0.75 * quantity(str(limit_text)):
                        out.append(f"{where}: {var} heap {heap} above 75% of the memory limit {limit_text}")
        out += [f"{where}: port {p}/{proto} twice" for p, proto in {x for x in pod_ports if pod_ports.count(x) > 1}]
        out += [f"{where}: port name {n} twice" for n in {n for n in pod_port_names if pod_port_names.count(n) > 1}]
        if kind == "Deployment":
            ports_by_name.update(dict.fromkeys(pod_port_names, name))
    for svc in (o for o in objects if o["kind"] == "Service"):
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort")
            if isinstance(target, str) and target not in ports_by_name:
                out.append(f"Service {svc['metadata']['name']}: targetPort {target} is no port of the workers")
    return out


# A template crash (not a `fail` of the chart): what a refusal must never look like.
CRASH = re.compile(r"error calling|nil pointer|wrong type|can't evaluate|range can't iterate|error converting YAML")


def release_names() -> st.SearchStrategy[str]:
    return st.from_regex(r"[a-z]([-a-z0-9]{0,51}[a-z0-9])?", fullmatch=True)


@seed(19)
# No shrinking: each step is a helm render, and a failure prints its whole draw anyway.
@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(values=values(), release=release_names(), helm=st.sampled_from(["helm3", "helm4"]))
def test_every_value_the_schema_accepts_renders_valid_objects_or_is_refused_in_one_line(
        values: dict[str, Any], release: str, helm: str) -> None:
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged(DEFAULTS, values)))
    assert not errors, f"the strategy drew values the schema refuses: {errors[0].message}"
    event(render_or_refuse(values, release, helm))


def render_or_refuse(values: dict[str, Any], release: str, helm: str) -> str:
    """Render `values`: a render must hold nothing Kubernetes refuses, a refusal must be one `fail` line of the
    chart (never a template crash). Returns what happened: "rendered" or "refused: <the value named first>"."""
    try:
        objects = render_chart(values, helm=helm, release=release)
    except HelmError as err:
        lines = [line for line in err.stderr.splitlines() if line.startswith("Error:")]
        assert len(lines) == 1, err.stderr
        assert not CRASH.search(err.stderr), f"a template crash, not a refusal:\n{err.stderr}"
        assert "execution error at (kafka-connect/templates/" in lines[0], err.stderr
        return "refused: " + lines[0].split("): ", 1)[-1].split(" ", 1)[0]
    found = problems(objects)
    assert not found, f"rendered (helm template {release}, {helm}) what Kubernetes refuses: {found}\n{values}"
    return "rendered"


# Draws the schema accepted that crashed the pod check (templates/_validate.tpl parses the rendered Deployment back:
# a value written into it unquoted, e.g. a Secret's name holding a control character, made YAML it could not parse,
# and the check failed with "nil pointer evaluating interface {}.template"). The first is the property test's own
# draw (seed 19, when the whole suite's modules were loaded); the others put YAML's own syntax into each string the
# Deployment carries. Each is now either refused by the schema naming the key or rendered into valid objects.
CRASHED: dict[str, tuple[dict[str, Any], str]] = {
    "connector-secret-control-character": ({
        "healthcheck": {"port": 11188, "enabled": False}, "metrics": {"jmxExporter": {"port": 56}},
        "heapOpts": "-Xmx768m", "jvmOpts": "-Xmx3g", "resources": {"limits": None},
        "secretMounts": {"s3": {"secretName": "creds"}}, "extraEnv": {"TZ": "x"},
        "extraVolumes": [{"emptyDir": {}, "name": "secret-pg"}],
        "connectors": {
            "Wo-8C2w5HIy0k0ItfjsJw": {
                "offsets": {"action": "set", "request": "\x9e", "offsets": [
                    {"partition": {"åj\U000860d9\U000d1af1Üo\x89xë\t": False, "false": False}, "offset": {}},
                    {"offset": {}, "partition": {"Ó": "\U0003770aB\x06", "\x88û": False}}]},
                "secretName": "J\x15Ä",
                "config": {"connector.class": "\x1e\U0010010c\U000d7c266\x12`\U00097da6\t\U00076414|´eî\x8e·"}},
            "5Ey3018": {"config": {"connector.class": "\U000bfb02\x87\U000983d9]\U000e5705é\U0010d42eÂ"}}}},
        "connectors.Wo-8C2w5HIy0k0ItfjsJw.secretName"),
    "connector-secret-yaml-syntax": (
        {"connectors": {"a": {"config": {"connector.class": "x"}, "secretName": "a: b"}}}, "connectors.a.secretName"),
    "secret-mount-yaml-syntax": ({"secretMounts": {"pg": {"secretName": "{pg"}}}, "secretMounts.pg.secretName"),
    "priority-class-yaml-syntax": ({"priorityClassName": "high: yes"}, "priorityClassName"),
    "image-yaml-syntax": (
        {"image": {"repository": "r.example.com/connect: x", "tag": "4.3.1"}, "kafkaVersion": "4.3.1"}, "image"),
    "log-dir-yaml-syntax": ({"logDir": "/var/log/kafka: #x"}, "logDir"),
    "plugins-dir-yaml-syntax": ({"pluginsDir": "/opt/plugins: &x", "plugins": [
        {"name": "jdbc", "image": "p.example.com/plugin:1"}]}, "pluginsDir"),
    "secret-mount-path-yaml-syntax": (
        {"secretMounts": {"pg": {"secretName": "pg", "mountPath": "/mnt/pg: &x"}}}, "secretMounts.pg.mountPath"),
}


@pytest.mark.parametrize("case", sorted(CRASHED))
def test_values_that_crashed_the_pod_check_render_or_are_refused_naming_the_key(helm: str, case: str) -> None:
    values, key = CRASHED[case]
    values = {"bootstrapServers": "kafka:9092", **values}
    if list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged(DEFAULTS, values))):
        with pytest.raises(HelmError) as err:
            render_chart(values, helm=helm)
        assert not CRASH.search(err.value.stderr), f"a template crash, not a refusal:\n{err.value.stderr}"
        named = [line for line in err.value.stderr.splitlines() if key in line.replace("/", ".")]
        assert len(named) == 1, f"{key} not named on one line of:\n{err.value.stderr}"
        return
    assert render_or_refuse(values, "rel", helm) == "rendered"


def test_the_rules_catch_what_they_are_about() -> None:
    """problems() can fail: a hand-made pod with every mistake is reported for each."""
    pod = {"kind": "Deployment", "metadata": {"name": "x" * 70, "labels": {"a": "-bad-"}}, "spec": {"template": {
        "spec": {"containers": [
            {"name": "connect", "ports": [{"name": "http", "containerPort": 8083}],
             "env": [{"name": "A"}, {"name": "A"}],
             "volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "w", "mountPath": "/a"}],
             "livenessProbe": {"httpGet": {"port": "health"}}},
            {"name": "connect", "ports": [{"name": "http", "containerPort": 8083}]}],
            "volumes": [{"name": "v"}, {"name": "v"}]}}}}
    svc = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"targetPort": "jmx"}]}}
    text = "\n".join(problems([pod, pod, svc]))
    for expected in ("two Deployments", "not a DNS name", "label a=", "two containers named connect",
                     "two volumes named v", "mountPath /a twice", "missing volume w", "env A twice",
                     "names port health", "port 8083/TCP twice", "port name http twice", "targetPort jmx"):
        assert expected in text, (expected, text)


@pytest.mark.parametrize(("opts", "limit", "over"), [("-Xmx2g", "1Gi", True), ("-Xmx700m", "1Gi", False)])
def test_the_heap_rule_reads_xmx_and_quantities(opts: str, limit: str, over: bool) -> None:
    heap = heap_bytes(opts)
    assert heap is not None and (heap > 0.75 * quantity(limit)) is over
