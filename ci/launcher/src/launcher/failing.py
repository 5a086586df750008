"""Failures a restart cannot fix, and two it can, made for real on a stack (issue 21): the connectors of
tests/integration/test_failure_classes.py and of `bench/faults.py --only classes`.

``compile_plugin`` builds tests/integration/java/FailingConnector.java with the JDK's javac into a plugin.path root
(its jar, with the ServiceLoader manifest, and pgjdbc beside it); ``require_password`` makes PostgreSQL ask role `app`
for a password over TCP (the launcher's server trusts everyone); ``configs`` gives the six connectors, by name, whose
failures classify as ``EXPECTED`` says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from .errors import StackError
from .fetch import kafka_libs, plugins_root
from .postgres import Postgres
from .tools import require_java

JAVA_SRC = Path(__file__).resolve().parents[4] / "tests" / "integration" / "java" / "FailingConnector.java"
FAILING = "connecthealth.testplugins.FailingConnector"
STRING = "org.apache.kafka.connect.storage.StringConverter"
JSON = "org.apache.kafka.connect.json.JsonConverter"
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"

# connector -> (what fails, the class connect-health should find)
EXPECTED: dict[str, tuple[str, str]] = {
    "cls-password": ("pgjdbc to PostgreSQL with a wrong password", "credentials"),
    "cls-publication": ("Debezium, publication.autocreate.mode=disabled, no publication", "configuration"),
    "cls-json": ("JsonConverter with schemas.enable=true fed plain text", "data"),
    "cls-tasks": ("a connector generating tasks.max + 2 tasks (KIP-1004)", "configuration"),
    "cls-broker": ("a source whose producer's broker is unreachable", "transient"),
    "cls-oom": ("a task that throws OutOfMemoryError", "resource"),
}
FEED = "cls-json-feed"  # the FileStreamSource writing plain text to cls-json's topic (never fails)


def compile_plugin(out: Path, version: str) -> Path:
    """FailingConnector as a plugin directory in a plugin.path root under ``out``; returns the root."""
    java = Path(require_java(version)).resolve()
    javac = java.parent / "javac"
    if not javac.exists():
        raise StackError(f"no javac next to {java}: install a JDK (apt-get install -y openjdk-17-jdk-headless)")
    libs = kafka_libs(version)
    classpath = [*sorted(libs.glob("connect-api-*.jar")), *sorted(libs.glob("kafka-clients-*.jar"))]
    pgjdbc = sorted(plugins_root().rglob("postgresql-*.jar"))
    if len(classpath) < 2 or not pgjdbc:
        raise StackError(f"connect-api, kafka-clients or pgjdbc missing ({libs}, {plugins_root()}): run `make kafka`")
    classes = out / "classes"
    done = subprocess.run([str(javac), "-nowarn", "-d", str(classes), "-cp", os.pathsep.join(map(str, classpath)),
                           str(JAVA_SRC)], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise StackError(f"javac failed on {JAVA_SRC.name}:\n{done.stdout}{done.stderr}")
    plugin = out / "plugins" / "failing-connector"
    plugin.mkdir(parents=True)
    with zipfile.ZipFile(plugin / "failing-connector.jar", "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
        z.writestr("META-INF/services/org.apache.kafka.connect.source.SourceConnector", FAILING + "\n")
    shutil.copy(pgjdbc[0], plugin / pgjdbc[0].name)
    return out / "plugins"


def require_password(pg: Postgres) -> None:
    """Role `app` gives its password over TCP: scram-sha-256 first in pg_hba.conf, then a reload. Also the table
    Debezium captures."""
    pg.sql("create role app login password 'right-password'")
    hba = pg.data_dir / "pg_hba.conf"
    hba.write_text("host all app 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg.sql("select pg_reload_conf()")
    pg.sql("create table items (id int primary key, name text not null)")


def configs(pg: Postgres, workdir: Path, closed_port: int) -> dict[str, dict[str, Any]]:
    """The connectors to create (FEED before cls-json); ``closed_port``: a port nothing listens on."""
    lines = workdir / "lines.txt"
    lines.write_text("".join(f"plain text line {i}, not JSON\n" for i in range(5)))
    return {
        "cls-password": {"connector.class": FAILING, "tasks.max": "1", "mode": "jdbc",
                         "jdbc.url": f"jdbc:postgresql://127.0.0.1:{pg.port}/postgres", "jdbc.user": "app",
                         "jdbc.password": "wrong-password"},
        "cls-publication": pg.debezium_config("clspub", "public.items", **{
            "publication.autocreate.mode": "disabled", "publication.name": "missing_publication",
            "errors.max.retries": "0"}),
        FEED: {"connector.class": FILE_SOURCE, "tasks.max": "1", "file": str(lines), "topic": "cls-plain-text",
               "value.converter": STRING, "key.converter": STRING},
        "cls-json": {"connector.class": FILE_SINK, "tasks.max": "1", "topics": "cls-plain-text",
                     "file": str(workdir / "json-out.txt"), "value.converter": JSON,
                     "value.converter.schemas.enable": "true", "key.converter": STRING},
        "cls-tasks": {"connector.class": FAILING, "tasks.max": "1", "mode": "too-many-tasks"},
        "cls-broker": {"connector.class": FILE_SOURCE, "tasks.max": "1", "file": str(lines), "topic": "cls-unreachable",
                       "producer.override.bootstrap.servers": f"127.0.0.1:{closed_port}",
                       "producer.override.max.block.ms": "3000", "value.converter": STRING},
        "cls-oom": {"connector.class": FAILING, "tasks.max": "1", "mode": "oom"},
    }
