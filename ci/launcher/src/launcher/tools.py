"""The programs the stack runs, found on this machine or MissingTool saying how to install them."""

from __future__ import annotations

import functools
import glob
import re
import shutil
import subprocess
from pathlib import Path

from .errors import JavaTooOld, MissingTool
from .pins import TOOLS, is_legacy_kafka, vtuple


def require_java(kafka_version: str | None = None) -> str:
    """The java on PATH; for Kafka >= 4 it must be Java 17 or newer."""
    java = shutil.which("java")
    if not java:
        raise MissingTool("java", "install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)")
    if kafka_version is not None and not is_legacy_kafka(kafka_version):
        major = java_major(java)
        if major is not None and major < 17:
            raise JavaTooOld(java, major, 17, kafka_version)
    return java


@functools.cache
def java_major(java: str) -> int | None:
    """The major version `java -version` reports (8 for 1.8), or None when it says nothing readable."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def require_mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise MissingTool("mvn", "install Maven (apt-get install -y maven), then run `make kafka` again")
    return mvn


def postgres_bin() -> Path:
    """Debian's newest PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: vtuple(p.split("/")[4] + ".0"))
    if not found:
        raise MissingTool("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)",
                          "run `bash ci/system-deps.sh` (apt-get install -y postgresql)")
    return Path(found[-1]).parent


def connect_health_executable() -> str:
    """The venv's connect-health (make venv installs the sidecar there), else one on PATH."""
    candidate = TOOLS / "venv" / "bin" / "connect-health"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("connect-health")
    if found:
        return found
    raise MissingTool("connect-health", "run `make venv` (installs the sidecar into .tools/venv)")


# Debian's Chromium, headless, as root, on a machine whose only network is loopback: without the
# background-networking flags it keeps opening connections that are refused. The browser test and the screenshots.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
