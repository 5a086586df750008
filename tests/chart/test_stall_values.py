"""Stalled tasks (issue 21), chart side: the sidecar reads the worker's JMX exporter on localhost exactly when the
chart runs one, and `healthcheck.stallAfter` reaches `--stall-after` (real helm)."""

from __future__ import annotations

from pathlib import Path

from .render import container, env_of, one, render_chart

MINIMAL = Path(__file__).resolve().parents[2] / "charts" / "kafka-connect" / "ci" / "01-minimal-values.yaml"
AGENT = {"enabled": True, "image": {"repository": "r.example.com/jmx", "tag": "1"}}


def sidecar_env(values: dict[str, object]) -> dict[str, str]:
    return env_of(container(one(render_chart(values, values_files=[MINIMAL]), "Deployment"), "connect-health"))


def test_with_the_jmx_exporter_the_sidecar_reads_it_on_localhost() -> None:
    env = sidecar_env({"metrics": {"jmxExporter": {**AGENT, "port": 9555}}, "healthcheck": {"stallAfter": 120}})
    assert env["CONNECT_HEALTH_WORKER_METRICS_URL"] == "http://127.0.0.1:9555/metrics"
    assert env["CONNECT_HEALTH_STALL_AFTER"] == "120"


def test_without_the_jmx_exporter_stall_detection_is_off() -> None:
    env = sidecar_env({})
    assert "CONNECT_HEALTH_WORKER_METRICS_URL" not in env
    assert env["CONNECT_HEALTH_STALL_AFTER"] == "300"
