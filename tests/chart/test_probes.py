"""Probe wiring: declared once in values, pointed at the sidecar (or at Connect without it) by the chart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .render import CHART, Obj, Render, container, one, pod_spec

BOOT = {"bootstrapServers": "kafka:9092"}
TIMING_KEYS = {"initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold"}


def deployment(render: Render, values: dict[str, Any] | None = None, files: Sequence[Path] = ()) -> Obj:
    return one(
        render({**BOOT, **(values or {})}, values_files=files, show_only=["templates/deployment.yaml"]), "Deployment"
    )


def handler(probe: dict[str, Any]) -> tuple[str, int | str]:
    return probe["httpGet"]["path"], probe["httpGet"]["port"]


def timings(probe: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in probe.items() if k in TIMING_KEYS}


def test_default_probes_call_the_sidecar(render: Render) -> None:
    d = deployment(render)
    connect = container(d, "connect")
    # the kubelet's probes go to the sidecar's probe-only listener (healthcheck.probePort)
    assert handler(connect["livenessProbe"]) == ("/livez", 8091)
    assert handler(connect["readinessProbe"]) == ("/readyz", 8091)
    assert handler(connect["startupProbe"]) == ("/startupz", 8091)
    sidecar = container(d, "connect-health")
    assert handler(sidecar["livenessProbe"]) == ("/ping", "probes")
    assert "readinessProbe" not in sidecar
    # The sidecar's own startup grace: its liveness probe waits until /ping answers (a refused probe at pod start
    # under load is not a dead sidecar).
    assert handler(sidecar["startupProbe"]) == ("/ping", "probes")
    assert sidecar["startupProbe"]["periodSeconds"] * sidecar["startupProbe"]["failureThreshold"] >= 30
    assert [p["containerPort"] for p in sidecar["ports"] if p["name"] == "health"] == [8090]


def test_timings_come_from_values_and_enabled_is_not_rendered(render: Render) -> None:
    values = {
        "livenessProbe": {
            "enabled": True,
            "initialDelaySeconds": 7,
            "periodSeconds": 11,
            "timeoutSeconds": 2,
            "failureThreshold": 9,
        },
        "readinessProbe": {"periodSeconds": 13, "successThreshold": 2},
        "startupProbe": {"failureThreshold": 120},
        "healthcheck": {"livenessProbe": {"periodSeconds": 17}},
    }
    d = deployment(render, values)
    connect = container(d, "connect")
    assert timings(connect["livenessProbe"]) == {
        "initialDelaySeconds": 7,
        "periodSeconds": 11,
        "timeoutSeconds": 2,
        "failureThreshold": 9,
    }
    assert connect["readinessProbe"]["periodSeconds"] == 13 and connect["readinessProbe"]["successThreshold"] == 2
    assert connect["startupProbe"]["failureThreshold"] == 120
    assert container(d, "connect-health")["livenessProbe"]["periodSeconds"] == 17
    for c in pod_spec(d)["containers"]:
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert "enabled" not in c.get(kind, {}), f"{c['name']}.{kind} leaks `enabled`"


def test_sidecar_startup_probe_timings_from_values_and_can_be_turned_off(render: Render) -> None:
    d = deployment(render, {"healthcheck": {"startupProbe": {"failureThreshold": 60, "periodSeconds": 1}}})
    probe = container(d, "connect-health")["startupProbe"]
    assert timings(probe) == {"periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 60}
    d = deployment(render, {"healthcheck": {"startupProbe": {"enabled": False}}})
    assert "startupProbe" not in container(d, "connect-health")
    d = deployment(render, {"healthcheck": {"sharedFate": True}})
    assert handler(container(d, "connect-health")["startupProbe"]) == ("/ping", "probes")


def test_shared_fate_points_both_liveness_probes_at_livez(render: Render) -> None:
    d = deployment(render, {"healthcheck": {"sharedFate": True}, "livenessProbe": {"periodSeconds": 15}})
    connect, sidecar = container(d, "connect"), container(d, "connect-health")
    assert handler(connect["livenessProbe"]) == ("/livez", 8091)
    assert handler(sidecar["livenessProbe"]) == ("/livez", "probes")
    # One declaration shared by both containers.
    assert timings(sidecar["livenessProbe"]) == timings(connect["livenessProbe"])
    assert sidecar["livenessProbe"]["periodSeconds"] == 15
    assert handler(connect["readinessProbe"]) == ("/readyz", 8091)
    assert handler(connect["startupProbe"]) == ("/startupz", 8091)


def test_shared_fate_scenario(render: Render) -> None:
    d = deployment(render, files=[CHART / "ci" / "03-shared-fate-values.yaml"])
    assert handler(container(d, "connect-health")["livenessProbe"]) == ("/livez", "probes")


def test_without_sidecar_probes_fall_back_to_connect(render: Render) -> None:
    for path in ("/health", "/"):
        d = deployment(render, {"healthcheck": {"enabled": False}, "fallbackProbePath": path, "restPort": 8084})
        assert [c["name"] for c in pod_spec(d)["containers"]] == ["connect"]
        connect = container(d, "connect")
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert handler(connect[kind]) == (path, 8084), kind


def test_optional_probes_can_be_left_out(render: Render) -> None:
    d = deployment(
        render,
        {
            "startupProbe": {"enabled": False},
            "readinessProbe": {"enabled": False},
            "healthcheck": {"livenessProbe": {"enabled": False}},
        },
    )
    connect, sidecar = container(d, "connect"), container(d, "connect-health")
    assert "startupProbe" not in connect and "readinessProbe" not in connect
    assert "livenessProbe" in connect
    assert "livenessProbe" not in sidecar
    d = deployment(render, {"livenessProbe": {"enabled": False}, "healthcheck": {"sharedFate": True}})
    assert "livenessProbe" not in container(d, "connect") and "livenessProbe" not in container(d, "connect-health")


def test_ports_follow_values(render: Render) -> None:
    objects = render({**BOOT, "restPort": 18083, "healthcheck": {"port": 18090, "probePort": 18091}})
    d = one(objects, "Deployment")
    connect, sidecar = container(d, "connect"), container(d, "connect-health")
    assert connect["ports"] == [{"name": "http", "containerPort": 18083, "protocol": "TCP"}]
    assert handler(connect["livenessProbe"]) == ("/livez", 18091)
    assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {"health": 18090, "probes": 18091}
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["CONNECT_HEALTH_CONNECT_URL"] == "http://127.0.0.1:18083"
    assert env["CONNECT_HEALTH_PORT"] == "18090" and env["CONNECT_HEALTH_PROBE_PORT"] == "18091"

    svc = one(objects, "Service")
    assert {(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        ("http", 18083, "http"),
        ("health", 18090, "health"),
    }
    test_pod = one(objects, "Pod")
    assert test_pod["spec"]["containers"][0]["command"][-1] == "http://rel-kafka-connect:18090/readyz"
    props = one(objects, "ConfigMap", "rel-kafka-connect-worker")["data"]["connect-distributed.properties"]
    assert "listeners=http://:18083\n" in props


def test_without_a_probe_port_the_probes_share_the_sidecar_port(render: Render) -> None:
    d = deployment(render, {"healthcheck": {"probePort": None, "sharedFate": True}})
    connect, sidecar = container(d, "connect"), container(d, "connect-health")
    assert handler(connect["livenessProbe"]) == ("/livez", 8090)
    assert handler(sidecar["livenessProbe"]) == ("/livez", "health")
    assert [p["name"] for p in sidecar["ports"]] == ["health"]
    assert "CONNECT_HEALTH_PROBE_PORT" not in {e["name"] for e in sidecar["env"]}
