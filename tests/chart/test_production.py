"""Issue 13, the chart on a production Kafka: TLS/SASL for every client, logs, worker metrics, safer defaults, the
apply Job's deadline, the NetworkPolicy. Every render runs under Helm 3 and 4 (the `render` fixture); the
production scenario (ci/11-production-values.yaml) is also validated strictly by test_scenarios.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .netpol import Verdict, allowed, pod_of
from .render import CHART, HelmError, Render, by_kind, container, env_of, one, pod_spec, properties

BOOT = {"bootstrapServers": "kafka-0:9093"}
PREFIXES = ("", "producer.", "consumer.", "admin.")
PRODUCTION = CHART / "ci" / "11-production-values.yaml"
WORKER_CM = "rel-kafka-connect-worker"


def worker_cm(render: Render, values: dict[str, Any] | None = None, **kw: Any) -> dict[str, str]:
    data: dict[str, str] = one(render({**BOOT, **(values or {})}, **kw), "ConfigMap", WORKER_CM)["data"]
    return data


def props_of(render: Render, values: dict[str, Any]) -> dict[str, str]:
    return properties(worker_cm(render, values)["connect-distributed.properties"])


def connect_env(render: Render, values: dict[str, Any]) -> dict[str, Any]:
    return env_of(container(one(render({**BOOT, **values}), "Deployment"), "connect"))


# --- (1) TLS and SASL reach the worker and every connector client ----------------------------------------------

def test_tls_reaches_the_worker_and_every_client_prefix(render: Render) -> None:
    props = props_of(render, {"kafka": {"tls": {"enabled": True, "existingSecret": "kafka-ca"}}})
    for p in PREFIXES:
        assert props[f"{p}security.protocol"] == "SSL"
        assert props[f"{p}ssl.truststore.location"] == "/mnt/kafka/tls/truststore.p12"
        assert props[f"{p}ssl.truststore.type"] == "PKCS12"
        assert props[f"{p}ssl.truststore.password"] == "@@kafka-secret:tls/truststore.password@@"
        assert props[f"{p}ssl.endpoint.identification.algorithm"] == "https"
        assert f"{p}ssl.keystore.location" not in props and f"{p}sasl.mechanism" not in props
    # The worker-config init container resolves the password: no config provider is on for connectors to call.
    assert props["config.providers"] == "env"


def test_tls_secret_is_mounted_read_only_and_never_copied(render: Render) -> None:
    objects = render({**BOOT, "kafka": {"tls": {"enabled": True, "existingSecret": "kafka-ca"}}})
    d = one(objects, "Deployment")
    assert {"name": "kafka-tls", "secret": {"secretName": "kafka-ca", "defaultMode": 0o440}} in pod_spec(d)["volumes"]
    mounts = container(d, "connect")["volumeMounts"]
    assert {"name": "kafka-tls", "mountPath": "/mnt/kafka/tls", "readOnly": True} in mounts
    assert not by_kind(objects, "Secret"), "the chart never writes a Secret of its own"


def test_tls_without_a_secret_trusts_the_jvm_cas(render: Render) -> None:
    objects = render({**BOOT, "kafka": {"tls": {"enabled": True, "endpointIdentificationAlgorithm": ""}}})
    props = properties(one(objects, "ConfigMap", WORKER_CM)["data"]["connect-distributed.properties"])
    assert props["consumer.security.protocol"] == "SSL"
    assert props["consumer.ssl.endpoint.identification.algorithm"] == ""
    assert not any("truststore" in k for k in props)
    assert all(v["name"] != "kafka-tls" for v in pod_spec(one(objects, "Deployment"))["volumes"])


def test_client_certificate(render: Render) -> None:
    props = props_of(render, {"kafka": {"tls": {
        "enabled": True, "existingSecret": "user", "truststore": {"key": "ca.crt", "type": "PEM", "passwordKey": ""},
        "keystore": {"key": "user.p12", "passwordKey": "user.password", "keyPasswordKey": "key.password"}}}})
    for p in PREFIXES:
        assert props[f"{p}ssl.truststore.type"] == "PEM" and f"{p}ssl.truststore.password" not in props
        assert props[f"{p}ssl.keystore.location"] == "/mnt/kafka/tls/user.p12"
        assert props[f"{p}ssl.keystore.password"] == "@@kafka-secret:tls/user.password@@"
        assert props[f"{p}ssl.key.password"] == "@@kafka-secret:tls/key.password@@"


@pytest.mark.parametrize(("mechanism", "module"), [
    ("PLAIN", "org.apache.kafka.common.security.plain.PlainLoginModule"),
    ("SCRAM-SHA-256", "org.apache.kafka.common.security.scram.ScramLoginModule"),
    ("SCRAM-SHA-512", "org.apache.kafka.common.security.scram.ScramLoginModule"),
])
@pytest.mark.parametrize("tls", [False, True])
def test_sasl_user_and_password(render: Render, mechanism: str, module: str, tls: bool) -> None:
    objects = render({**BOOT, "kafka": {"tls": {"enabled": tls, "existingSecret": "ca" if tls else ""},
                                        "sasl": {"mechanism": mechanism, "existingSecret": "connect-user"}}})
    props = properties(one(objects, "ConfigMap", WORKER_CM)["data"]["connect-distributed.properties"])
    jaas = (f'{module} required username="@@kafka-secret:sasl/username@@" '
            'password="@@kafka-secret:sasl/password@@";')
    for p in PREFIXES:
        assert props[f"{p}security.protocol"] == ("SASL_SSL" if tls else "SASL_PLAINTEXT")
        assert props[f"{p}sasl.mechanism"] == mechanism
        assert props[f"{p}sasl.jaas.config"] == jaas
    d = one(objects, "Deployment")
    volume = {"name": "kafka-sasl", "secret": {"secretName": "connect-user", "defaultMode": 0o440}}
    assert volume in pod_spec(d)["volumes"]
    # Mounted into the worker-config init container only (tests/chart/test_secret_purposes.py), and no config
    # provider a connector config could call reads it.
    init = next(c for c in pod_spec(d)["initContainers"] if c["name"] == "worker-config")
    assert {"name": "kafka-sasl", "mountPath": "/mnt/kafka/sasl", "readOnly": True} in init["volumeMounts"]
    assert all(m["name"] != "kafka-sasl" for m in container(d, "connect")["volumeMounts"])
    assert "config.providers.directory.param.allowed.paths" not in props


def test_oauthbearer(render: Render) -> None:
    url = "https://idp.example.com/oauth2/token"
    values = {"kafka": {"tls": {"enabled": True}, "sasl": {
        "mechanism": "OAUTHBEARER", "existingSecret": "oidc-client",
        "oauthbearer": {"tokenEndpointUrl": url, "scope": "kafka"}}}}
    props = props_of(render, values)
    for p in PREFIXES:
        assert props[f"{p}security.protocol"] == "SASL_SSL"
        assert props[f"{p}sasl.oauthbearer.token.endpoint.url"] == url
        assert props[f"{p}sasl.login.callback.handler.class"] == \
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
        assert props[f"{p}sasl.jaas.config"] == (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'clientId="@@kafka-secret:sasl/client-id@@" '
            'clientSecret="@@kafka-secret:sasl/client-secret@@" scope="kafka";')
    # Kafka >= 4.0 calls only token URLs listed in this system property.
    assert f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}" in connect_env(render, values)["KAFKA_OPTS"]
    with pytest.raises(HelmError, match="kafka.sasl.oauthbearer.tokenEndpointUrl is required"):
        render({**BOOT, "kafka": {"sasl": {"mechanism": "OAUTHBEARER", "existingSecret": "x"}}})


def test_client_config_reaches_every_prefix_and_conflicts_are_refused(render: Render) -> None:
    props = props_of(render, {"kafka": {"tls": {"enabled": True}, "clientConfig": {
        "ssl.enabled.protocols": "TLSv1.3", "reconnect.backoff.max.ms": 10000}}})
    for p in PREFIXES:
        assert props[f"{p}ssl.enabled.protocols"] == "TLSv1.3"
        assert props[f"{p}reconnect.backoff.max.ms"] == "10000"
    with pytest.raises(HelmError, match=r"kafka.clientConfig.producer.acks: write client properties without a "
                                        r"prefix"):
        render({**BOOT, "kafka": {"clientConfig": {"producer.acks": "all"}}})
    with pytest.raises(HelmError, match=r"kafka.clientConfig.security.protocol is set by the chart"):
        render({**BOOT, "kafka": {"tls": {"enabled": True}, "clientConfig": {"security.protocol": "PLAINTEXT"}}})
    with pytest.raises(HelmError, match=r"workerConfig.consumer.sasl.mechanism is set by the chart"):
        render({**BOOT, "kafka": {"sasl": {"mechanism": "PLAIN", "existingSecret": "u"}},
                "workerConfig": {"consumer.sasl.mechanism": "SCRAM-SHA-256"}})
    for key in ("security.protocol", "ssl.truststore.location", "sasl.jaas.config"):
        with pytest.raises(HelmError, match=re.escape(f"workerConfig.{key} would reach the worker but not")):
            render({**BOOT, "workerConfig": {key: "x"}})


def test_no_secret_value_in_any_configmap(render: Render) -> None:
    """Every password-like client property of the production scenario is a config-provider reference."""
    for cm in by_kind(render(values_files=[PRODUCTION]), "ConfigMap"):
        for text in cm["data"].values():
            for key, value in properties(text).items() if "=" in text else []:
                if re.search(r"password|jaas|secret", key):
                    assert "@@kafka-secret:" in value, (cm["metadata"]["name"], key, value)


# --- (2) logging --------------------------------------------------------------------------------------------

def test_logging_defaults_to_stdout_with_the_request_log_at_warn(render: Render) -> None:
    data = worker_cm(render)
    log = properties(data["log4j2.properties"])
    assert log["appender.stdout.type"] == "Console" and log["appender.stdout.target"] == "SYSTEM_OUT"
    assert log["rootLogger.level"] == "INFO"
    assert not any(k.startswith("appender.file") or "RollingFile" in v for k, v in log.items()), "no log file"
    assert [k for k in log if k.startswith("rootLogger.appenderRef")] == ["rootLogger.appenderRef.stdout.ref"]
    loggers = {log[k]: log[k.replace(".name", ".level")] for k in log if re.fullmatch(r"logger\.l\d+\.name", k)}
    assert loggers == {"org.apache.kafka.connect.runtime.rest.RestServer": "WARN"}
    env = connect_env(render, {})
    assert env["KAFKA_LOG4J_OPTS"] == "-Dlog4j2.configurationFile=/etc/kafka-connect/log4j2.properties"


def test_logging_levels_and_an_opt_in_rolled_file(render: Render) -> None:
    values = {"logging": {"level": "WARN", "requestLogLevel": "INFO",
                          "loggers": {"org.apache.kafka.connect.runtime.WorkerSinkTask": "DEBUG"},
                          "file": {"enabled": True, "maxSize": "50MB", "maxFiles": 3}}}
    log = properties(worker_cm(render, values)["log4j2.properties"])
    loggers = {log[k]: log[k.replace(".name", ".level")] for k in log if re.fullmatch(r"logger\.l\d+\.name", k)}
    assert loggers == {"org.apache.kafka.connect.runtime.rest.RestServer": "INFO",
                       "org.apache.kafka.connect.runtime.WorkerSinkTask": "DEBUG"}
    assert log["rootLogger.level"] == "WARN"
    assert log["appender.file.type"] == "RollingFile"
    assert log["appender.file.fileName"] == "/opt/kafka/logs/connect.log"
    assert log["appender.file.policies.size.size"] == "50MB" and log["appender.file.strategy.max"] == "3"
    assert log["rootLogger.appenderRef.file.ref"] == "FILE"


@pytest.mark.parametrize("values", [{"image": {"tag": "3.9.1"}}, {"kafkaVersion": "3.7.0"},
                                    {"logging": {"format": "log4j"}}])
def test_kafka_3_gets_log4j_1(render: Render, values: dict[str, Any]) -> None:
    data = worker_cm(render, values)
    assert "log4j2.properties" not in data
    log = properties(data["log4j.properties"])
    assert log["log4j.rootLogger"] == "INFO, stdout"
    assert log["log4j.appender.stdout"] == "org.apache.log4j.ConsoleAppender"
    assert log["log4j.logger.org.apache.kafka.connect.runtime.rest.RestServer"] == "WARN"
    assert connect_env(render, values)["KAFKA_LOG4J_OPTS"] == \
        "-Dlog4j.configuration=file:/etc/kafka-connect/log4j.properties"
    rolled = properties(worker_cm(render, {**values, "logging": {**values.get("logging", {}),
                                                                 "file": {"enabled": True}}})["log4j.properties"])
    assert rolled["log4j.rootLogger"] == "INFO, stdout, file"
    assert rolled["log4j.appender.file"] == "org.apache.log4j.RollingFileAppender"
    assert rolled["log4j.appender.file.MaxBackupIndex"] == "5"


def test_logging_disabled_keeps_the_images_config(render: Render) -> None:
    data = worker_cm(render, {"logging": {"enabled": False}})
    assert set(data) == {"connect-distributed.properties"}
    assert "KAFKA_LOG4J_OPTS" not in connect_env(render, {"logging": {"enabled": False}})


def test_log_config_changes_roll_the_workers(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        d = one(render({**BOOT, **values}, show_only=["templates/deployment.yaml"]), "Deployment")
        return str(d["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
    assert checksum({}) != checksum({"logging": {"level": "DEBUG"}})


# --- (4) safer defaults ---------------------------------------------------------------------------------------

def test_group_id_is_what_the_values_say_in_any_namespace(render: Render) -> None:
    """groupId is required (tests/chart/test_identity.py): the namespace no longer changes the Connect cluster."""
    a, b = (properties(one(render(BOOT, namespace=ns), "ConfigMap", WORKER_CM)["data"]
                       ["connect-distributed.properties"]) for ns in ("team-a", "team-b"))
    assert a["group.id"] == b["group.id"] == "team-a-rel-kafka-connect"
    # The migration the README documents: the oldest default (the full name) set explicitly keeps the old cluster.
    old = props_of(render, {"groupId": "rel-kafka-connect"})
    assert old["group.id"] == "rel-kafka-connect" and old["offset.storage.topic"] == "rel-kafka-connect-offsets"


def test_env_provider_is_limited_to_what_the_chart_needs(render: Render) -> None:
    props = props_of(render, {})
    pattern = props["config.providers.env.param.allowlist.pattern"]
    assert re.fullmatch(pattern, "POD_IP") and not re.fullmatch(pattern, "KAFKA_OPTS")
    assert not re.fullmatch(pattern, "POD_IP_SECRET")
    assert props_of(render, {"envConfigProvider": {"allowlistPattern": "^(POD_IP|TZ)$"}})[
        "config.providers.env.param.allowlist.pattern"] == "^(POD_IP|TZ)$"


@pytest.mark.parametrize(("pdb", "replicas", "refused"), [
    ({"minAvailable": 1, "maxUnavailable": None}, 1, "minAvailable 1 with replicaCount 1"),
    ({"minAvailable": 3, "maxUnavailable": None}, 3, "minAvailable 3 with replicaCount 3"),
    ({"minAvailable": "100%", "maxUnavailable": None}, 3, "minAvailable 100% with replicaCount 3"),
    ({"minAvailable": "50%", "maxUnavailable": None}, 1, "minAvailable 50% with replicaCount 1"),
    ({"maxUnavailable": 0}, 3, "maxUnavailable 0 never allows an eviction"),
    ({"maxUnavailable": "0%"}, 3, "maxUnavailable 0% never allows an eviction"),
    ({"minAvailable": 2, "maxUnavailable": None}, 3, None),
    ({"minAvailable": "50%", "maxUnavailable": None}, 3, None),
    ({"maxUnavailable": 1}, 1, None),
])
def test_a_pdb_that_can_never_be_satisfied_is_refused(render: Render, pdb: dict[str, Any], replicas: int,
                                                      refused: str | None) -> None:
    values = {**BOOT, "replicaCount": replicas, "podDisruptionBudget": {"enabled": True, **pdb}}
    if refused is None:
        assert one(render(values), "PodDisruptionBudget")
        return
    with pytest.raises(HelmError, match=re.escape(refused)):
        render(values)


@pytest.mark.parametrize(("values", "ok"), [
    ({"image": {"tag": "3.4.1"}}, False),
    ({"image": {"tag": "3.5.0"}}, True),
    ({"image": {"repository": "registry.example.com/mirror/apache/kafka", "tag": "3.3.2"}}, False),
    ({"kafkaVersion": "3.4"}, False),
    # A CP version: unchecked (the log format then has to be named: the chart cannot infer it, issue 19).
    ({"image": {"repository": "confluentinc/cp-kafka-connect", "tag": "7.4.0"}, "logging": {"format": "log4j"}}, True),
    ({"image": {"repository": "confluentinc/cp-kafka-connect", "tag": "7.4.0"}, "kafkaVersion": "3.4.0"}, False),
    ({"image": {"tag": "latest"}, "logging": {"format": "log4j2"}}, True),  # not a version: unchecked
])
def test_kafka_older_than_3_5_is_refused(render: Render, values: dict[str, Any], ok: bool) -> None:
    if ok:
        assert render({**BOOT, **values})
        return
    with pytest.raises(HelmError, match=r"is older than 3\.5: .*KIP-887"):
        render({**BOOT, **values})


def test_healthcheck_host(render: Render) -> None:
    def sidecar_env(values: dict[str, Any]) -> dict[str, Any]:
        return env_of(container(one(render({**BOOT, **values}), "Deployment"), "connect-health"))
    assert "CONNECT_HEALTH_HOST" not in sidecar_env({}), "empty: the sidecar's own (dual-stack) default"
    assert sidecar_env({"healthcheck": {"host": "::"}})["CONNECT_HEALTH_HOST"] == "::"
    assert sidecar_env({"healthcheck": {"host": "0.0.0.0"}})["CONNECT_HEALTH_HOST"] == "0.0.0.0"


# --- (5) the apply Job and the two template defects -------------------------------------------------------------

CONNECTORS = {"c": {"config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector"}}}


def test_apply_job_fits_helms_default_timeout(render: Render) -> None:
    job = one(render({**BOOT, "connectors": CONNECTORS}), "Job")
    command = container(job, "apply")["command"]
    wait = float(command[command.index("--wait") + 1])
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert wait < deadline < 300, "helm's default --timeout is 5 min"
    with pytest.raises(HelmError, match=r"connectorsApply.wait \(600 s\) must stay below "
                                        r"connectorsApply.activeDeadlineSeconds \(270 s\)"):
        render({**BOOT, "connectors": CONNECTORS, "connectorsApply": {"wait": 600}})


def test_null_wait_and_null_port_are_refused_naming_the_value(render: Render) -> None:
    with pytest.raises(HelmError, match="connectorsApply.wait is null"):
        render({**BOOT, "connectors": CONNECTORS, "connectorsApply": {"wait": None}})
    with pytest.raises(HelmError, match="healthcheck.port is null"):
        render({**BOOT, "healthcheck": {"port": None}})
    job = one(render({**BOOT, "connectors": CONNECTORS, "connectorsApply": {"wait": 0}}), "Job")
    command = container(job, "apply")["command"]
    assert command[command.index("--wait") + 1] == "0"


# --- (6) NetworkPolicy: who reaches which port, judged by netpol.py on the rendered pods --------------------

OUTSIDER = {"metadata": {"namespace": "elsewhere", "name": "curious", "labels": {"app": "curious"}}}
MONITORING = {"metadata": {"namespace": "monitoring", "name": "prometheus-0",
                           "labels": {"app.kubernetes.io/name": "prometheus"}}}


def release_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rendered pods, named: two workers of the Deployment, the apply Job's pod, the `helm test` pod."""
    deployment = one(objects, "Deployment")
    pods = {name: pod_of(deployment) for name in ("worker-a", "worker-b")}
    for name, p in pods.items():
        p["metadata"]["name"] = name
    if by_kind(objects, "Job"):
        pods["apply"] = pod_of(one(objects, "Job"))
    pods["test"] = next(o for o in by_kind(objects, "Pod") if o["metadata"]["annotations"]["helm.sh/hook"] == "test")
    return pods


def reach(objects: list[dict[str, Any]], src: dict[str, Any], dst: dict[str, Any], port: int,
          protocol: str = "TCP") -> Verdict:
    """Whether `src` connects to `dst` on `port` under the rendered NetworkPolicies (its namespace labelled only
    with its name, as the API server labels every namespace)."""
    return allowed(by_kind(objects, "NetworkPolicy"), src, {}, dst, None, port, protocol)


def test_network_policy_admits_the_release_test_pod_on_the_health_port(render: Render) -> None:
    objects = render({**BOOT, "networkPolicy": {"enabled": True, "healthFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}})
    pods = release_pods(objects)
    assert pods["test"]["spec"]["containers"][0]["command"][-1].endswith(":8090/readyz")
    _, health = one(objects, "NetworkPolicy")["spec"]["ingress"]
    assert health["ports"] == [{"port": "health", "protocol": "TCP"}, {"port": "probes", "protocol": "TCP"}], \
        "by name: resolved on the worker pod"
    worker = pods["worker-a"]
    verdict = reach(objects, pods["test"], worker, 8090)
    assert verdict.allowed and verdict.rule == 1 and verdict.peer == 0, verdict
    assert reach(objects, MONITORING, worker, 8090).allowed
    assert not reach(objects, OUTSIDER, worker, 8090).allowed, "healthFrom is restrictive"
    assert reach(objects, pods["test"], worker, 8091).allowed, "the probe port: the same sources as the sidecar's"
    assert not reach(objects, OUTSIDER, worker, 8091).allowed, "the probe port: healthFrom as restrictive"
    assert not reach(objects, pods["test"], worker, 8092).allowed, "only the sidecar's ports"
    # healthFrom empty: every source reaches the sidecar (kubelet, Prometheus anywhere)
    open_health = render({**BOOT, "networkPolicy": {"enabled": True}})
    assert reach(open_health, OUTSIDER, release_pods(open_health)["worker-a"], 8090).allowed


def test_network_policy_lets_the_release_reach_connect_rest_and_no_one_else(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "networkPolicy": {"enabled": True}})
    pods = release_pods(objects)
    worker = pods["worker-a"]
    for src in ("worker-b", "apply", "test"):
        verdict = reach(objects, pods[src], worker, 8083)
        assert verdict.allowed and verdict.rule == 0, verdict
    denied = reach(objects, OUTSIDER, worker, 8083)
    assert not denied.allowed and denied.isolated, denied
    assert not reach(objects, MONITORING, worker, 8083).allowed
    # restFrom naming the outsider's namespace admits it, and only there
    restful = render({**BOOT, "connectors": CONNECTORS, "networkPolicy": {"enabled": True, "restFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}}}]}})
    worker = release_pods(restful)["worker-a"]
    verdict = reach(restful, OUTSIDER, worker, 8083)
    assert verdict.allowed and verdict.peer == 1, verdict
    assert not reach(restful, MONITORING, worker, 8083).allowed
    assert reach(restful, release_pods(restful)["apply"], worker, 8083).allowed


# An image of the user's own holding the JMX agent (the stock apache/kafka holds none: refused, issue 19).
OWN_IMAGE = {"image": {"repository": "registry.example.com/connect-with-agent", "tag": "4.3.1"},
             "kafkaVersion": "4.3.1"}


def test_network_policy_jmx_exporter_port(render: Render) -> None:
    values = {**BOOT, **OWN_IMAGE, "metrics": {"jmxExporter": {"enabled": True}}, "networkPolicy": {
        "enabled": True, "jmxExporterFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                                                    "monitoring"}}}]}}
    objects = render(values)
    worker = release_pods(objects)["worker-a"]
    verdict = reach(objects, MONITORING, worker, 9404)
    assert verdict.allowed and verdict.rule == 2, verdict
    assert not reach(objects, OUTSIDER, worker, 9404).allowed
    # jmxExporterFrom empty: every source; without the exporter the port stays closed
    open_jmx = render({**BOOT, **OWN_IMAGE, "metrics": {"jmxExporter": {"enabled": True}},
                       "networkPolicy": {"enabled": True}})
    assert reach(open_jmx, OUTSIDER, release_pods(open_jmx)["worker-a"], 9404).allowed
    plain = render({**BOOT, "networkPolicy": {"enabled": True}})
    assert not reach(plain, MONITORING, release_pods(plain)["worker-a"], 9404).allowed


def test_network_policy_extra_ports_and_the_exporter_port(render: Render) -> None:
    values = {"networkPolicy": {"enabled": True, "extraPorts": {
        "debug": {"port": 5005, "from": [{"podSelector": {"matchLabels": {"role": "debugger"}}}]},
        "agent": {"port": "agent", "protocol": "UDP"}}, "jmxExporterFrom": [{"namespaceSelector": {}}]},
        "metrics": {"jmxExporter": {"enabled": True}}, **OWN_IMAGE}
    objects = render({**BOOT, **values})
    rules = one(objects, "NetworkPolicy")["spec"]["ingress"]
    by_port = {r["ports"][0]["port"]: r for r in rules}
    assert by_port["jmx-metrics"]["from"] == [{"namespaceSelector": {}}]
    assert by_port[5005] == {"ports": [{"port": 5005, "protocol": "TCP"}],
                             "from": [{"podSelector": {"matchLabels": {"role": "debugger"}}}]}
    assert by_port["agent"] == {"ports": [{"port": "agent", "protocol": "UDP"}]}
    worker = release_pods(objects)["worker-a"]
    debugger = {"metadata": {"namespace": "team-a", "labels": {"role": "debugger"}}}
    assert reach(objects, debugger, worker, 5005).allowed
    assert not reach(objects, {**debugger, "metadata": {"namespace": "elsewhere", "labels": {"role": "debugger"}}},
                     worker, 5005).allowed, "a podSelector alone means the release's namespace"
    assert reach(objects, OUTSIDER, worker, 9404).allowed, "namespaceSelector {}: every namespace"
    # the worker has no container port named "agent": that rule opens nothing on it until the user adds one
    assert not reach(objects, OUTSIDER, worker, 5005, "UDP").allowed
    container(worker, "connect")["ports"].append({"name": "agent", "containerPort": 5005, "protocol": "UDP"})
    assert reach(objects, OUTSIDER, worker, 5005, "UDP").allowed


# --- (3) worker metrics: the JMX exporter agent ---------------------------------------------------------------

def test_jmx_exporter_agent_from_an_init_image(render: Render) -> None:
    objects = render(values_files=[PRODUCTION])
    d = one(objects, "Deployment")
    init = next(c for c in pod_spec(d)["initContainers"] if c["name"] == "jmx-exporter")
    assert init["image"] == "registry.example.com/mirror/jmx-prometheus-javaagent:1.0.1"
    assert init["command"] == ["cp", "/jmx_prometheus_javaagent.jar", "/mnt/jmx-exporter/jmx_prometheus_javaagent.jar"]
    connect = container(d, "connect")
    assert {"name": "jmx-exporter", "mountPath": "/opt/jmx-exporter", "readOnly": True} in connect["volumeMounts"]
    assert env_of(connect)["KAFKA_OPTS"] == \
        "-javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar=9404:/etc/kafka-connect/jmx-exporter.yaml"
    assert {"name": "jmx-metrics", "containerPort": 9404, "protocol": "TCP"} in connect["ports"]
    service = one(objects, "Service", "rel-kafka-connect")
    assert {"name": "jmx-metrics", "port": 9404, "targetPort": "jmx-metrics", "protocol": "TCP"} in \
        service["spec"]["ports"]
    endpoints = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert [e["port"] for e in endpoints] == ["health", "jmx-metrics"]
    config = yaml.safe_load(one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["jmx-exporter.yaml"])
    assert config["lowercaseOutputName"] is True
    names = {r["name"] for r in config["rules"]}
    assert {"kafka_connect_connector_status", "kafka_connect_task_status", "kafka_connect_worker_$1",
            "kafka_connect_worker_rebalance_$1", "kafka_connect_$1_$4",
            "kafka_connect_sink_consumer_records_lag_max"} <= names
    alerts = {r["alert"] for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert {"KafkaConnectTaskFailures", "KafkaConnectRebalanceStorm", "KafkaConnectSinkLag"} <= alerts
    dashboard = json.loads(next(iter(one(objects, "ConfigMap", "rel-kafka-connect-dashboard")["data"].values())))
    worker_exprs = [t["expr"] for p in dashboard["panels"] if p["id"] > 100 for t in p["targets"]]
    assert len(worker_exprs) == 6
    rule_names = {r["name"] for r in config["rules"]}
    for expr in worker_exprs:  # every panel reads a series the rules produce
        (series,) = set(re.findall(r"\bkafka_connect_[a-z_]+", expr))
        assert any(re.fullmatch(re.sub(r"\$\d", "[a-z_]+", n), series) for n in rule_names), series


def test_jmx_exporter_jar_in_the_users_image_and_extra_rules_first(render: Render) -> None:
    rule = {"pattern": "kafka.connect<type=app-info, client-id=(.+)><>version: (.+)", "name": "connect_info",
            "value": 1, "labels": {"version": "$2"}}
    values = {"metrics": {"jmxExporter": {"enabled": True, "jarPath": "/opt/agents/jmx.jar", "port": 9999,
                                          "extraRules": [rule]}}, "jvmOpts": "-XX:+ExitOnOutOfMemoryError",
              **OWN_IMAGE}
    objects = render({**BOOT, **values})
    d = one(objects, "Deployment")
    assert "initContainers" not in pod_spec(d)
    assert env_of(container(d, "connect"))["KAFKA_OPTS"] == \
        "-XX:+ExitOnOutOfMemoryError -javaagent:/opt/agents/jmx.jar=9999:/etc/kafka-connect/jmx-exporter.yaml"
    config = yaml.safe_load(one(objects, "ConfigMap", WORKER_CM)["data"]["jmx-exporter.yaml"])
    assert config["rules"][0] == rule
    # Without the exporter nothing of it is rendered, and its alerts stay out of the PrometheusRule.
    plain = render({**BOOT, "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                                        "grafanaDashboard": {"enabled": True}}})
    dashboard = json.loads(next(iter(one(plain, "ConfigMap", "rel-kafka-connect-dashboard")["data"].values())))
    assert all(p["id"] < 100 for p in dashboard["panels"]), "worker panels only with the exporter"
    assert "jmx-exporter.yaml" not in one(plain, "ConfigMap", WORKER_CM)["data"]
    alerts = {r["alert"] for g in one(plain, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert not alerts & {"KafkaConnectTaskFailures", "KafkaConnectRebalanceStorm", "KafkaConnectSinkLag"}
