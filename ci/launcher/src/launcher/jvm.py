"""What the broker and the Connect worker have in common: a JVM from the cached Kafka jars, a .properties file."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .fetch import kafka_libs, require_fetched
from .pins import LOG_CONFIG, is_legacy_kafka
from .tools import require_java

# C1 only and a small initial heap: a local broker/worker starts faster and nothing here is throughput-bound.
JVM_FLAGS = ("-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
             "-Djava.net.preferIPv4Stack=true", "-XX:-UsePerfData")


def java_command(version: str, heap: str, log_config: str, main: str, args: Sequence[str],
                 sysprops: Mapping[str, str] | None = None, classpath: Sequence[Path] | None = None) -> list[str]:
    """`java ... main args` on Kafka <version>'s jars (all of them unless classpath says otherwise), logging as
    ci/log-config/<log_config>-log4j{,2}.* says."""
    java = require_java(version)
    require_fetched(version)
    cp = str(kafka_libs(version) / "*") if classpath is None else os.pathsep.join(str(p) for p in classpath)
    legacy = is_legacy_kafka(version)
    cfg = LOG_CONFIG / (f"{log_config}-log4j.properties" if legacy else f"{log_config}-log4j2.xml")
    logprop = f"-Dlog4j.configuration=file:{cfg}" if legacy else f"-Dlog4j2.configurationFile={cfg}"
    props = [f"-D{k}={v}" for k, v in (sysprops or {}).items()]
    return [java, "-Xms64m", f"-Xmx{heap}", *JVM_FLAGS, logprop, *props, "-cp", cp, main, *args]


def write_properties(path: Path, props: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={_escape(str(v))}" for k, v in props.items()]
    path.write_text("# written by the launcher (ci/launcher)\n" + "\n".join(lines) + "\n")


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def kafka_cluster_id() -> str:
    """Kafka's Uuid.randomUuid(): url-safe base64 of 16 random bytes, never starting with '-'."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s
