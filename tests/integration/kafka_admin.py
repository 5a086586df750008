"""The broker's own clients, for tests: a topic holding N records, and the consumer groups the broker knows.

Runs tests/integration/java/KafkaAdmin.java with the JDK's source launcher on the fetched Kafka jars (they hold the
clients, not the CLI tools module that kafka-consumer-groups.sh needs).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from launcher.jvm import java_command

SOURCE = Path(__file__).resolve().parent / "java" / "KafkaAdmin.java"


def _run(version: str, bootstrap: str, *args: str) -> str:
    cmd = java_command(version, "256m", "broker", str(SOURCE), [bootstrap, *args])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-1500:]
    return out.stdout


def produce(version: str, bootstrap: str, topic: str, count: int) -> None:
    """Create ``topic`` (one partition) and write ``count`` records to it, the JSON strings ``"record 0"`` ..,
    each acknowledged."""
    assert f"produced {count}" in _run(version, bootstrap, "produce", topic, str(count))


def consumer_groups(version: str, bootstrap: str) -> set[str]:
    """Every consumer group id the broker lists (Admin.listConsumerGroups)."""
    return {line.removeprefix("group ").strip() for line in _run(version, bootstrap, "groups").splitlines()
            if line.startswith("group ")}
