"""The Prometheus JMX exporter java agent (``io.prometheus.jmx:jmx_prometheus_javaagent``, JMX_EXPORTER_VERSION of
ci/versions.env) from Maven Central into .tools/jmx-exporter/<version>/, for the chart's worker metrics test: the
real agent, loaded into a real worker with the chart's rules. ``python -m launcher.jmx_exporter`` fetches it
(``make kafka`` runs it; cached, so a second run does nothing)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .errors import FetchFailed, NotFetched, StackError
from .fetch import _fetch_lock, _fresh, _install_dir, _mvn_copy
from .pins import CI, PINS, TOOLS, rel

JMX_EXPORTER_VERSION = PINS["JMX_EXPORTER_VERSION"]
JMX_EXPORTER_POM = CI / "maven" / "jmx-exporter.xml"


def jmx_exporter_jar(version: str = JMX_EXPORTER_VERSION) -> Path:
    return TOOLS / "jmx-exporter" / version / f"jmx_prometheus_javaagent-{version}.jar"


def require_jmx_exporter(version: str = JMX_EXPORTER_VERSION) -> Path:
    """The cached agent jar, or NotFetched with the command to run."""
    jar = jmx_exporter_jar(version)
    if not jar.is_file():
        raise NotFetched(f"the JMX exporter agent {version}", jar.parent, "python -m launcher.jmx_exporter")
    return jar


def fetch_jmx_exporter(version: str = JMX_EXPORTER_VERSION, progress: Callable[[str], None] = print) -> Path:
    """Resolve the agent jar with Maven (ci/maven/jmx-exporter.xml) unless it is cached."""
    with _fetch_lock():
        jar = jmx_exporter_jar(version)
        if jar.is_file():
            progress(f"jmx-exporter {version}: cached in {rel(jar.parent)}")
            return jar
        what = f"JMX exporter agent {version}"
        progress(f"jmx-exporter {version}: resolving the java agent from Maven Central")
        tmp = _fresh(TOOLS / "tmp" / "jmx-exporter")
        _mvn_copy(JMX_EXPORTER_POM, [f"-Djmx.exporter.version={version}"], tmp,
                  TOOLS / "logs" / "fetch-jmx-exporter.log", what, progress)
        if not (tmp / jar.name).is_file():
            raise FetchFailed(what, f"Maven did not deliver {jar.name}; check JMX_EXPORTER_VERSION in ci/versions.env")
        _install_dir(tmp, jar.parent, jar.parent / ".stamp", version, what)
        progress(f"jmx-exporter {version}: {rel(jar)}")
        return jar


if __name__ == "__main__":
    try:
        fetch_jmx_exporter()
    except StackError as e:
        sys.exit(f"launcher: {e}")
