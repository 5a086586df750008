"""The chart's rendered worker properties against a REAL broker with TLS and SASL/SCRAM listeners (issue 13).

The chart is rendered by the real helm with `kafka.tls` / `kafka.sasl`; its worker ConfigMap goes through the pod's
`worker-config` init container script, run by bash as the pod runs it (it writes the worker's own Kafka secrets into
the properties the worker reads; no config provider a connector could call reads them), and the result (with the
log4j2 configuration) is used as it is, with three substitutions a pod does not need: the Secret mounts
(/mnt/kafka/tls, /mnt/kafka/sasl) are local directories holding one file per Secret key, `listeners` binds
127.0.0.1 instead of every interface, and POD_IP is 127.0.0.1 in the worker's environment (the env config provider
resolves `rest.advertised.host.name=${env:POD_IP}`). The broker (launcher.kafka_security.SecureBroker) has an SSL
listener requiring client certificates, a SASL_PLAINTEXT listener with SCRAM-SHA-512 and a SASL_SSL one with
SCRAM-SHA-256; certificates are made by openssl, SCRAM users by Kafka's storage tool (`format --add-scram`).
Topic auto-creation is off on the broker, so the source's topic exists only if Connect's admin client (the
`admin.` prefix) created it; records reach the sink's file only through the `producer.` and `consumer.` clients.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest
from chart.render import one, properties, render_chart
from launcher.fetch import kafka_libs
from launcher.kafka_security import PropertiesWorker, SecureBroker, TlsFiles, make_tls
from probing import wait_for

VERSION = launcher.KAFKA_VERSION
STORE_PASSWORD = "store-pass-13"
USER = "connect"
USER_PASSWORD = "scram-secret-13"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
TLS_MOUNT = "/mnt/kafka/tls"
SASL_MOUNT = "/mnt/kafka/sasl"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureBroker, TlsFiles]]:
    try:
        launcher.require_java(VERSION)
        launcher.require_fetched(VERSION)
    except launcher.StackError as e:
        pytest.fail(str(e), pytrace=False)
    d = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls(d / "pki", STORE_PASSWORD, VERSION)
    broker = SecureBroker(d, tls, {USER: USER_PASSWORD}, VERSION)
    broker.extra_props["auto.create.topics.enable"] = "false"
    try:
        broker.start()
    except launcher.StackError as e:
        pytest.fail(f"the TLS/SASL broker did not start: {e}", pytrace=False)
    yield broker, tls
    broker.stop()


def mounted_secrets(workdir: Path, tls: TlsFiles) -> Path:
    """What the kubelet would mount from the two Secrets at /mnt/kafka/tls and /mnt/kafka/sasl: one file per key,
    values without a trailing newline. Returns the directory standing for /mnt/kafka."""
    kafka = workdir / "mnt-kafka"
    tls_dir, sasl_dir = kafka / "tls", kafka / "sasl"
    tls_dir.mkdir(parents=True)
    sasl_dir.mkdir()
    shutil.copy(tls.truststore, tls_dir / "truststore.p12")
    shutil.copy(tls.client_keystore, tls_dir / "keystore.p12")
    for key in ("truststore.password", "keystore.password"):
        (tls_dir / key).write_text(tls.password)
    # A cert-manager Certificate's Secret (privateKey.encoding PKCS8): the issuing CA, the chain, the key, no password.
    shutil.copy(tls.ca_pem, tls_dir / "ca.crt")
    shutil.copy(tls.client_cert_pem, tls_dir / "tls.crt")
    shutil.copy(tls.client_key_pem, tls_dir / "tls.key")
    (sasl_dir / "username").write_text(USER)
    (sasl_dir / "password").write_text(USER_PASSWORD)
    return kafka


def rendered_worker(kafka: dict[str, Any], bootstrap: str, group: str) -> tuple[dict[str, str], str]:
    """The chart's worker ConfigMap for these `kafka` values (real helm), and its worker-config init container's
    script ("" when the pod has none)."""
    port = launcher.free_port()
    values = {
        "bootstrapServers": bootstrap,
        "groupId": group,
        "restPort": port,
        "kafka": kafka,
        "internalTopics": {"config": {"replicationFactor": 1},
                           "offset": {"replicationFactor": 1, "partitions": 1},
                           "status": {"replicationFactor": 1, "partitions": 1}},
        "pluginPath": [str(kafka_libs(VERSION) / f"connect-file-{VERSION}.jar")],
        "workerConfig": {"key.converter.schemas.enable": False, "value.converter.schemas.enable": False,
                         "offset.flush.interval.ms": 1000, "plugin.discovery": "service_load"},
    }
    objects = render_chart(values, show_only=["templates/configmap.yaml", "templates/deployment.yaml"])
    inits = one(objects, "Deployment")["spec"]["template"]["spec"].get("initContainers", [])
    script = next((c["command"][2] for c in inits if c["name"] == "worker-config"), "")
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    return data, script


def worker_config(workdir: Path, data: dict[str, str], script: str, kafka_mount: Path) -> Path:
    """The files the worker reads at /etc/kafka-connect: the init container's output (its own script, by bash)."""
    template, out = workdir / "etc-kafka-connect-template", workdir / "etc-kafka-connect"
    template.mkdir()
    out.mkdir()
    for name, text in data.items():
        (template / name).write_text(text)
    env = {"PATH": os.environ["PATH"], "WORKER_CONFIG_TEMPLATE": str(template), "WORKER_CONFIG": str(out),
           "KAFKA_SECRETS": str(kafka_mount)}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, f"the worker-config init container failed: {proc.stderr}"
    return out


def start_chart_worker(workdir: Path, config_dir: Path, kafka_mount: Path) -> PropertiesWorker:
    props = properties((config_dir / "connect-distributed.properties").read_text())
    for key, value in props.items():
        for mount in (TLS_MOUNT, SASL_MOUNT):
            value = value.replace(mount, str(kafka_mount / Path(mount).name))
        props[key] = value
    assert props["listeners"].startswith("http://:")
    props["listeners"] = props["listeners"].replace("http://:", "http://127.0.0.1:")
    log_file = config_dir / "log4j2.properties"
    worker = PropertiesWorker(workdir, props, VERSION, jvm_options=[f"-Dlog4j2.configurationFile={log_file}"],
                              env={"POD_IP": "127.0.0.1"})
    try:
        return worker.start()
    except launcher.StackError as e:
        pytest.fail(f"the worker on the chart's properties did not start: {e}", pytrace=False)


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    # SSL with a client certificate (the listener requires one): keystore and truststore from the Secret.
    "ssl": ("SSL", {"tls": {"enabled": True, "existingSecret": "kafka-tls", "keystore": {"key": "keystore.p12"}}}),
    # The same listener with cert-manager's PEM files (ca.crt, tls.crt, tls.key): no password rendered at all.
    "ssl-pem": ("SSL", {"tls": {"enabled": True, "existingSecret": "kafka-tls",
                                "truststore": {"key": "ca.crt", "type": "PEM"},
                                "keystore": {"key": "tls.crt", "type": "PEM"}}}),
    "sasl-scram-512": ("SASL_PLAINTEXT", {"sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "kafka-user"}}),
    "sasl-ssl-scram-256": ("SASL_SSL", {"tls": {"enabled": True, "existingSecret": "kafka-tls"},
                                        "sasl": {"mechanism": "SCRAM-SHA-256", "existingSecret": "kafka-user"}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_connectors_move_data_through_a_secured_listener_on_the_charts_properties(
        secure_broker: tuple[SecureBroker, TlsFiles], workdir: Path, case: str) -> None:
    broker, tls = secure_broker
    protocol, kafka = CASES[case]
    data, script = rendered_worker(kafka, broker.bootstrap_of(protocol), f"sec-{case}")
    text = data["connect-distributed.properties"]
    assert STORE_PASSWORD not in text and USER_PASSWORD not in text, "a secret reached the ConfigMap"
    # The worker's own Kafka secrets are out of every config provider's reach (connector configs call them too).
    assert "${directory:" not in text and "${file:" not in text and properties(text)["config.providers"] == "env"
    assert f"consumer.security.protocol={protocol}" in text and f"admin.security.protocol={protocol}" in text
    if case == "ssl-pem":
        # Kafka refuses a store password with PEM stores: none for the worker or any client prefix.
        assert "password" not in text, [line for line in text.splitlines() if "password" in line]
        assert text.count("ssl.keystore.key=@@kafka-secret:tls/tls.key@@") == 4

    kafka_mount = mounted_secrets(workdir, tls)
    worker = start_chart_worker(workdir, worker_config(workdir, data, script, kafka_mount), kafka_mount)
    try:
        assert worker.worker_id == f"127.0.0.1:{worker.rest_port}"
        status = worker.request("GET", "/connectors?expand=status")
        assert status[0] == 200
        src, out, topic = workdir / "in.txt", workdir / "out.txt", f"lines-{case}"
        src.write_text("".join(f"{case} line {i}\n" for i in range(5)))
        worker.put_connector(f"{case}-src", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                             "topic": topic, "topic.creation.default.replication.factor": "1",
                                             "topic.creation.default.partitions": "1"}, timeout=60)
        worker.put_connector(f"{case}-sink", {"connector.class": SINK, "tasks.max": "1", "topics": topic,
                                              "file": str(out)}, timeout=60)
        worker.wait_connector_state(f"{case}-src", timeout=90)
        worker.wait_connector_state(f"{case}-sink", timeout=90)
        lines = wait_for(lambda: (lambda t: t if t.count("\n") >= 5 else None)(out.read_text() if out.exists()
                                                                                 else ""),
                         90, f"5 records through the {protocol} listener into {out}")
        assert lines.splitlines() == [f"{case} line {i}" for i in range(5)]
        # The chart's log configuration: stdout only (worker.log is the JVM's stdout), REST requests at WARN.
        log = worker.log.read_text(errors="replace")
        assert " INFO " in log, "the root logger writes INFO to stdout"
        # Every Kafka client the worker made (its own, and each connector's producer, consumer and admin) used the
        # secured protocol; none fell back to PLAINTEXT, and no secret was logged.
        protocols = re.findall(r"\bsecurity\.protocol = (\S+)", log)
        assert len(protocols) >= 6 and set(protocols) == {protocol}, protocols
        assert USER_PASSWORD not in log and STORE_PASSWORD not in log
        assert '"PUT /connectors/' not in log and '"GET /connectors' not in log, "request log lines at INFO"
        assert not list(workdir.rglob("connect.log*")), "a log file was written"
    finally:
        worker.stop()
