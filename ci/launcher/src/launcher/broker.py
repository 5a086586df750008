"""A single-node KRaft Kafka broker (combined broker + controller) on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import Any

from .errors import StackError
from .jvm import java_command, kafka_cluster_id, write_properties
from .net import HOST, Port, claim_port, kafka_api_versions
from .pins import KAFKA_VERSION, is_legacy_kafka
from .process import log_tail
from .service import Service

BROKER_HEAP = "512m"


class Broker(Service):
    """Files live in <workdir>/<name>/: server.properties, data/, broker.log (stdout+stderr of the JVM)."""

    start_timeout = 90.0

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, port: int | None = None,
                 controller_port: int | None = None, extra_props: Mapping[str, Any] | None = None,
                 heap: str = BROKER_HEAP, name: str = "broker") -> None:
        super().__init__(workdir, name, "broker.log")
        self.version = version
        self.listener = claim_port(port, "Kafka broker listener", "--broker-port")
        self.controller = claim_port(controller_port, "Kafka controller listener", "--controller-port")
        self.extra_props = dict(extra_props or {})
        self.heap = heap
        self.config = self.dir / "server.properties"
        self.data_dir = self.dir / "data"

    @property
    def controller_port(self) -> int:
        return self.controller.number

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def ports(self) -> list[Port]:
        return [self.listener, self.controller]

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "log.flush.interval.messages": 9223372036854775807,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.segment.bytes": 16 * 1024 * 1024,
        }
        if not is_legacy_kafka(self.version):
            props["share.coordinator.state.topic.replication.factor"] = 1
            props["share.coordinator.state.topic.min.isr"] = 1
        props.update(self.extra_props)
        return props

    def prepare(self) -> None:
        """server.properties, and the KRaft storage formatted once (a restart keeps the data)."""
        super().prepare()
        write_properties(self.config, self.properties())
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = java_command(self.version, "256m", "broker", "kafka.tools.StorageTool",
                           ["format", "-t", kafka_cluster_id(), "-c", str(self.config), "--ignore-formatted"])
        format_log = self.dir / "format.log"
        with open(format_log, "wb") as out:
            try:
                r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   timeout=90, cwd=self.dir, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise StackError(f"formatting KRaft storage timed out; see {format_log}") from None
        if r.returncode != 0:
            raise StackError(f"formatting KRaft storage failed (exit {r.returncode}); last lines of "
                             f"{format_log}:\n{log_tail(format_log)}")

    def command(self) -> list[str]:
        return java_command(self.version, self.heap, "broker", "kafka.Kafka", [str(self.config)])

    def ready(self) -> bool:
        """The broker accepts connections and answers a Kafka ApiVersions request."""
        return kafka_api_versions(self.port)

    def describe(self) -> str:
        return f"Kafka {self.version} broker on {self.bootstrap}"

    def waiting_for(self) -> str:
        return f"the broker to answer on {self.bootstrap}"

    def state(self) -> dict[str, Any]:
        return {**super().state(), "version": self.version, "port": self.port,
                "controller_port": self.controller_port, "bootstrap": self.bootstrap}
