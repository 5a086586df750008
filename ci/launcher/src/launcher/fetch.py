"""Kafka's broker and Connect jars and the Debezium plugin, resolved by Maven (ci/maven/*.xml) into .tools/.

Fetching is idempotent: a stamp next to the jars records what was fetched (version, Maven file, log binding), and
a file lock keeps two launchers from fetching into the same place at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .errors import FetchFailed, NotFetched
from .pins import CI, DEBEZIUM_VERSION, ROOT, TOOLS, is_legacy_kafka, rel
from .process import Proc
from .tools import require_java, require_mvn

KAFKA_POM = CI / "maven" / "kafka.xml"
DEBEZIUM_POM = CI / "maven" / "debezium-postgres.xml"
# Kafka < 4 ships log4j 1 (reload4j); the Maven file defaults to the log4j2 binding that 4.x uses.
LEGACY_LOG_BINDING = (
    "-Dlog.binding.groupId=org.slf4j",
    "-Dlog.binding.artifactId=slf4j-reload4j",
    "-Dlog.binding.version=1.7.36",
)

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def kafka_dir(version: str) -> Path:
    return TOOLS / "kafka" / version


def kafka_libs(version: str) -> Path:
    return kafka_dir(version) / "libs"


def plugins_root() -> Path:
    """The plugin.path entry whose sub-directories are Connect plugins (debezium-postgres/ ...)."""
    return TOOLS / "plugins"


def debezium_dir() -> Path:
    return plugins_root() / "debezium-postgres"


def _sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _log_binding(version: str) -> tuple[str, ...]:
    return LEGACY_LOG_BINDING if is_legacy_kafka(version) else ()


def _kafka_key(version: str) -> str:
    return _sha(version, KAFKA_POM.read_bytes(), *_log_binding(version))


def _debezium_key(version: str) -> str:
    return _sha(version, DEBEZIUM_POM.read_bytes())


def _stamp_ok(stamp: Path, key: str, must_exist: Iterable[Path]) -> bool:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("key") == key and all(p.exists() for p in must_exist)


def _kafka_required_jars(version: str, libs: Path) -> list[Path]:
    return [libs / f"kafka_2.13-{version}.jar", libs / f"connect-runtime-{version}.jar",
            libs / f"connect-file-{version}.jar", libs / f"kafka-clients-{version}.jar",
            libs / f"connect-basic-auth-extension-{version}.jar"]


def _debezium_jar(version: str, where: Path) -> Path:
    return where / f"debezium-connector-postgres-{version}.jar"


def kafka_fetched(version: str) -> bool:
    return _stamp_ok(kafka_dir(version) / ".stamp", _kafka_key(version),
                     _kafka_required_jars(version, kafka_libs(version)))


def debezium_fetched(version: str = DEBEZIUM_VERSION) -> bool:
    d = debezium_dir()
    return _stamp_ok(d / ".stamp", _debezium_key(version), [_debezium_jar(version, d)])


def require_fetched(version: str, debezium: bool = False) -> None:
    """Raise NotFetched (one line saying what to run) unless the jars are in the cache."""
    if not kafka_fetched(version):
        raise NotFetched(f"Kafka {version} jars", kafka_libs(version), f"python -m launcher fetch --kafka {version}")
    if debezium and not debezium_fetched():
        raise NotFetched("the Debezium PostgreSQL plugin", debezium_dir(), "python -m launcher fetch --debezium")


@contextlib.contextmanager
def _fetch_lock() -> Iterator[None]:
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / ".fetch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_GENERIC_MAVEN_ERRORS = ("Some problems were encountered", "[Help", "To see the full", "Re-run Maven",
                         "For more information", "The build could not read", "The project ")


def _maven_reason(log: Path) -> str:
    """Maven's first error line that says something specific (not its generic help lines)."""
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"\[(ERROR|FATAL)\]\s*(?:\[ERROR\]\s*)?(.*)", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m and m.group(2).strip() and not m.group(2).strip().startswith(_GENERIC_MAVEN_ERRORS):
            reason = m.group(2).strip()
            return (reason[:220] + "...") if len(reason) > 220 else reason
    return ""


def _mvn_copy(pom: Path, props: Sequence[str], dest: Path, log: Path, what: str, progress: Progress,
              timeout: float = 1200, tick: float = 5.0) -> None:
    """Maven's dependency:copy-dependencies into dest; every `tick` seconds a progress line (never a silent wait)."""
    mvn = require_mvn()
    require_java()
    cmd = [mvn, "-B", "-ntp", "-Dstyle.color=never", "-f", str(pom), *props, "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={dest}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("$ " + " ".join(cmd) + "\n")
    # A Proc, like the JVMs: an interrupted fetch never leaves Maven running on (writing into the next try).
    proc = Proc("mvn", cmd, log, cwd=ROOT)
    t0 = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - t0
            try:
                rc = proc.popen.wait(timeout=max(0.1, min(tick, timeout - elapsed)))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - t0 >= timeout:
                    raise FetchFailed(what, f"Maven timed out after {timeout:.0f}s", log) from None
                jars = len(list(dest.glob("*.jar"))) if dest.is_dir() else 0
                progress(f"  ... still resolving {what} ({time.monotonic() - t0:.0f}s so far, {jars} jars copied; "
                         f"log: {rel(log)})")
    finally:
        proc.stop(timeout=5)
    if rc != 0:
        raise FetchFailed(what, _maven_reason(log) or f"Maven exited {rc}", log)


def _install_dir(tmp: Path, final: Path, stamp: Path, key: str, what: str) -> int:
    jars = sorted(tmp.glob("*.jar"))
    if not jars:
        raise FetchFailed(what, f"Maven copied no jars into {tmp}")
    stamp.unlink(missing_ok=True)
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    tmp_stamp = stamp.with_suffix(".tmp")
    tmp_stamp.write_text(json.dumps({"key": key, "what": what, "jars": len(jars),
                                     "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    os.replace(tmp_stamp, stamp)
    return len(jars)


def _fresh(tmp: Path) -> Path:
    if tmp.exists():
        shutil.rmtree(tmp)  # a half-finished earlier fetch
    return tmp


def fetch_kafka(version: str, force: bool = False, progress: Progress = _quiet) -> Path:
    """Resolve Kafka <version>'s broker + Connect jars into .tools/kafka/<version>/libs (cached; stamp-checked)."""
    with _fetch_lock():
        libs = kafka_libs(version)
        if not force and kafka_fetched(version):
            progress(f"kafka {version}: cached in {rel(libs)}")
            return libs
        progress(f"kafka {version}: resolving broker and Connect jars from Maven Central")
        tmp = _fresh(TOOLS / "tmp" / f"kafka-{version}")
        _mvn_copy(KAFKA_POM, [f"-Dkafka.version={version}", *_log_binding(version)], tmp,
                  TOOLS / "logs" / f"fetch-kafka-{version}.log", f"Kafka {version}", progress)
        missing = [p.name for p in _kafka_required_jars(version, tmp) if not p.exists()]
        if missing:
            raise FetchFailed(f"Kafka {version}", f"Maven did not deliver {', '.join(missing)}; is {version} a "
                              "released Kafka version? (check ci/versions.env)")
        n = _install_dir(tmp, libs, kafka_dir(version) / ".stamp", _kafka_key(version), f"kafka {version}")
        progress(f"kafka {version}: {n} jars in {rel(libs)}")
        return libs


def fetch_debezium(version: str = DEBEZIUM_VERSION, force: bool = False, progress: Progress = _quiet) -> Path:
    """Resolve the Debezium PostgreSQL connector plugin into .tools/plugins/debezium-postgres/."""
    with _fetch_lock():
        dest = debezium_dir()
        if not force and debezium_fetched(version):
            progress(f"debezium-postgres {version}: cached in {rel(dest)}")
            return dest
        progress(f"debezium-postgres {version}: resolving the connector plugin from Maven Central")
        tmp = _fresh(TOOLS / "tmp" / "debezium-postgres")
        what = f"Debezium PostgreSQL connector {version}"
        _mvn_copy(DEBEZIUM_POM, [f"-Ddebezium.version={version}"], tmp,
                  TOOLS / "logs" / "fetch-debezium-postgres.log", what, progress)
        if not _debezium_jar(version, tmp).exists():
            raise FetchFailed(what, "the connector jar is missing; check DEBEZIUM_VERSION in ci/versions.env")
        # The stamp lives inside the plugin dir: Connect only looks at jars there.
        n = _install_dir(tmp, dest, dest / ".stamp", _debezium_key(version), f"debezium-postgres {version}")
        progress(f"debezium-postgres {version}: {n} jars in {rel(dest)}")
        return dest
