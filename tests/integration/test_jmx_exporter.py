"""Worker metrics (issue 13): the REAL Prometheus JMX exporter agent in a REAL Connect worker, with the chart's rules.

The chart is rendered by the real helm with `metrics.jmxExporter.enabled`; the worker starts on its rendered
properties, its rendered log configuration and the JVM options of its rendered Deployment (`KAFKA_OPTS` with the
`-javaagent:`, `KAFKA_LOG4J_OPTS`), with the pod's paths replaced by local ones: /etc/kafka-connect (the ConfigMap)
by a directory holding its files, `metrics.jmxExporter.jarPath` set to the agent jar `make kafka` fetched from
Maven Central (launcher.jmx_exporter), and `listeners` bound to 127.0.0.1. A source and a sink connector move
records; the agent's /metrics must then carry the series the chart's README names and every series the chart's
alert rules read. Runs on both Kafka versions: log4j2 on 4.x, log4j 1 on 3.x (the chart picks by kafkaVersion).
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import launcher
import pytest
from chart.render import container, env_of, one, properties, render_chart
from launcher.fetch import kafka_libs
from launcher.jmx_exporter import require_jmx_exporter
from launcher.kafka_security import PropertiesWorker
from launcher.pins import is_legacy_kafka
from probing import wait_for

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)


@pytest.fixture(scope="module")
def broker(kafka_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Broker]:
    try:
        launcher.require_java(kafka_version)
        launcher.require_fetched(kafka_version)
        require_jmx_exporter()
    except launcher.StackError as e:
        pytest.fail(str(e), pytrace=False)
    b = launcher.Broker(tmp_path_factory.mktemp("jmx-broker"), kafka_version)
    try:
        b.start()
    except launcher.StackError as e:
        pytest.fail(f"broker did not start: {e}", pytrace=False)
    yield b
    b.stop()


def scrape(port: int) -> dict[str, list[str]]:
    """{series name: [its label sets]} from the agent's /metrics."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, list[str]] = {}
    for name, labels, _ in SERIES.findall(text):
        out.setdefault(name, []).append(labels)
    return out


def test_the_agent_serves_connects_metrics_with_the_charts_rules(
        broker: launcher.Broker, kafka_version: str, workdir: Path) -> None:
    jar, agent_port, rest_port = require_jmx_exporter(), launcher.free_port(), launcher.free_port()
    values = {
        "bootstrapServers": broker.bootstrap, "groupId": f"jmx-{kafka_version}", "restPort": rest_port,
        "kafkaVersion": kafka_version,
        # The agent jar "in the image" (jarPath, run here on the host): the stock apache/kafka holds none and the
        # chart refuses the exporter on it (issue 19), so the image is one of the user's own.
        "image": {"repository": "registry.example.com/connect-with-agent", "tag": kafka_version},
        "internalTopics": {"config": {"replicationFactor": 1},
                           "offset": {"replicationFactor": 1, "partitions": 1},
                           "status": {"replicationFactor": 1, "partitions": 1}},
        "pluginPath": [str(kafka_libs(kafka_version) / f"connect-file-{kafka_version}.jar")],
        "workerConfig": {"key.converter.schemas.enable": False, "value.converter.schemas.enable": False,
                         "offset.flush.interval.ms": 1000},
        "metrics": {"jmxExporter": {"enabled": True, "jarPath": str(jar), "port": agent_port},
                    "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }
    objects = render_chart(values)
    data = one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]
    etc = workdir / "etc-kafka-connect"  # what the pod mounts at /etc/kafka-connect
    etc.mkdir()
    for name, text in data.items():
        (etc / name).write_text(text)
    log_file = "log4j.properties" if is_legacy_kafka(kafka_version) else "log4j2.properties"
    assert log_file in data, sorted(data)
    env = env_of(container(one(objects, "Deployment"), "connect"))
    jvm = [opt.replace("/etc/kafka-connect/", f"{etc}/") for opt in
           f"{env['KAFKA_OPTS']} {env['KAFKA_LOG4J_OPTS']}".split()]
    assert f"-javaagent:{jar}={agent_port}:{etc}/jmx-exporter.yaml" in jvm
    props = properties(data["connect-distributed.properties"])
    props["listeners"] = props["listeners"].replace("http://:", "http://127.0.0.1:")

    worker = PropertiesWorker(workdir, props, kafka_version, jvm_options=jvm, env={"POD_IP": "127.0.0.1"})
    try:
        worker.start()
    except launcher.StackError as e:
        pytest.fail(f"the worker with the agent did not start: {e}", pytrace=False)
    try:
        src, out = workdir / "in.txt", workdir / "out.txt"
        src.write_text("".join(f"record {i}\n" for i in range(20)))
        worker.put_connector("jmx-src", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                         "topic": "jmx-lines"}, timeout=60)
        worker.put_connector("jmx-sink", {"connector.class": SINK, "tasks.max": "1", "topics": "jmx-lines",
                                          "file": str(out)}, timeout=60)
        worker.wait_connector_state("jmx-src", timeout=90)
        worker.wait_connector_state("jmx-sink", timeout=90)
        wait_for(lambda: out.exists() and out.read_text().count("\n") >= 20, 90, "20 records in the sink's file")

        wanted = {
            "kafka_connect_connector_status": 'connector="jmx-src"',
            "kafka_connect_task_status": 'task="0"',
            "kafka_connect_worker_connector_count": "",
            "kafka_connect_worker_task_count": "",
            "kafka_connect_worker_task_startup_failure_total": "",
            "kafka_connect_worker_connector_running_task_count": 'connector="jmx-sink"',
            "kafka_connect_worker_connector_failed_task_count": 'connector="jmx-src"',
            "kafka_connect_worker_rebalance_completed_rebalances_total": "",
            "kafka_connect_connector_task_batch_size_avg": 'connector="jmx-sink"',
            "kafka_connect_source_task_source_record_poll_total": 'connector="jmx-src"',
            "kafka_connect_sink_task_sink_record_read_total": 'connector="jmx-sink"',
            "kafka_connect_task_error_total_record_failures": 'task="0"',
            "kafka_connect_sink_consumer_records_lag_max": 'connector="jmx-sink"',
        }

        def complete() -> dict[str, list[str]] | None:
            got = scrape(agent_port)
            return got if all(any(label in ls for ls in got.get(n, [])) for n, label in wanted.items()) else None
        try:
            series = wait_for(complete, 60, "the chart's series on the agent's /metrics")
        except launcher.StackError:
            got = scrape(agent_port)
            missing = {n: got.get(n) for n, label in wanted.items()
                       if not any(label in ls for ls in got.get(n, []))}
            connect = sorted(n for n in got if n.startswith("kafka_connect"))
            pytest.fail(f"missing or unlabelled series {missing}; kafka_connect series: {connect}", pytrace=False)
        running = [ls for ls in series["kafka_connect_connector_status"] if 'connector="jmx-sink"' in ls]
        assert running and all('status="running"' in ls for ls in running), running

        # Every series the chart's alert rules read is one the agent serves with the chart's rules.
        rule = one(objects, "PrometheusRule")
        exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] in
                 ("KafkaConnectTaskFailures", "KafkaConnectRebalanceStorm", "KafkaConnectSinkLag")]
        assert len(exprs) == 3
        used = set(re.findall(r"\bkafka_connect_[a-z_]+", " ".join(exprs)))
        assert used and used <= set(series), f"alerts read series the agent does not serve: {used - set(series)}"

        # The chart's log configuration: stdout only, no request log lines at INFO, no log file.
        log = worker.log.read_text(errors="replace")
        assert " INFO " in log and '"PUT /connectors/' not in log
        assert not list(workdir.rglob("connect.log*"))
    finally:
        worker.stop()
