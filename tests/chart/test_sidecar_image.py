"""The connect-health image (issue 9): the source chart names none, a render that needs one fails with one line
saying what to set, a digest pins it, and every object that runs it (the sidecar, the apply Job, the helm test
pod) runs the same one, so a cluster that mirrored the release's images needs nothing else."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .render import (
    CHART,
    SIDECAR_IMAGE,
    SIDECAR_REPOSITORY,
    HelmError,
    Obj,
    Render,
    container,
    one,
    pod_spec,
    render_chart,
)

BOOT = {"bootstrapServers": "kafka:9092", "groupId": "rel-connect"}
CONNECTORS = {"c": {"config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector"}}}
DIGEST = "sha256:" + "ab" * 32
CONNECT_IMAGE = "apache/kafka:4.3.1"


def containers(objects: list[Obj]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("Kind/container", container) for every container the render holds."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job", "Pod"):
            spec = pod_spec(obj)
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield f"{obj['kind']}/{c['name']}", c


def images(objects: list[Obj]) -> dict[str, str]:
    return {ident: c["image"] for ident, c in containers(objects)}


def test_the_source_chart_names_no_sidecar_image_and_no_third_party_one() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {k: values["healthcheck"]["image"][k] for k in ("repository", "tag", "digest")} == dict.fromkeys(
        ("repository", "tag", "digest"), ""
    )
    assert "image" not in values["tests"], "the test pod runs the sidecar image"
    sources = [CHART / "Chart.yaml", CHART / "values.yaml", CHART / "values.schema.json"]
    sources += sorted((CHART / "templates").rglob("*.*"))
    for path in sources:
        text = path.read_text()
        for name in ("ghcr.io", "docker.io", "busybox"):
            assert name not in text, f"{path.relative_to(CHART)} names {name}"


@pytest.mark.parametrize(
    ("values", "template"),
    [
        ({"tests": {"enabled": False}}, "deployment.yaml"),
        ({"healthcheck": {"enabled": False}}, "tests/test-readyz.yaml"),
        (
            {"healthcheck": {"enabled": False}, "tests": {"enabled": False}, "connectors": CONNECTORS},
            "connectors-apply-job.yaml",
        ),
    ],
    ids=["sidecar", "test-pod", "apply-job"],
)
def test_each_object_running_the_image_fails_without_one_in_one_line(
    helm: str, values: dict[str, Any], template: str
) -> None:
    with pytest.raises(HelmError) as err:
        render_chart({**BOOT, **values}, helm=helm, sidecar_image=False)
    (line,) = [line for line in err.value.stderr.splitlines() if "healthcheck.image.repository" in line]
    assert f"kafka-connect/templates/{template}:" in line
    assert "healthcheck.image.repository is not set" in line
    assert "oci://REGISTRY/charts/kafka-connect" in line and "make image" in line


def test_nothing_asks_for_the_image_when_nothing_runs_it(helm: str) -> None:
    values = {**BOOT, "healthcheck": {"enabled": False}, "tests": {"enabled": False}}
    assert images(render_chart(values, helm=helm, sidecar_image=False)) == {"Deployment/connect": CONNECT_IMAGE}


def test_sidecar_apply_job_and_test_pod_run_one_image(render: Render) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS})
    assert images(objects) == {
        "Deployment/connect": CONNECT_IMAGE,
        "Deployment/connect-health": SIDECAR_IMAGE,
        "Job/apply": SIDECAR_IMAGE,
        "Pod/readyz": SIDECAR_IMAGE,
    }
    # The tag defaults to the chart's version: chart and image are released together.
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert SIDECAR_IMAGE == f"{SIDECAR_REPOSITORY}:{chart['version']}"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({"tag": "0.2.0"}, f"{SIDECAR_REPOSITORY}:0.2.0"),
        ({"digest": DIGEST}, f"{SIDECAR_REPOSITORY}@{DIGEST}"),
        # What `make release` stamps: repository, tag and digest; the digest decides.
        (
            {"repository": "127.0.0.1:5000/ch/connect-health", "tag": "1.2.3", "digest": DIGEST},
            f"127.0.0.1:5000/ch/connect-health@{DIGEST}",
        ),
    ],
    ids=["tag", "digest", "stamped"],
)
def test_a_digest_pins_the_image_a_tag_names_it(render: Render, image: dict[str, str], expected: str) -> None:
    objects = render({**BOOT, "connectors": CONNECTORS, "healthcheck": {"image": {**image, "pullPolicy": "Always"}}})
    pulled = {ident: (c["image"], c["imagePullPolicy"]) for ident, c in containers(objects)}
    assert pulled.pop("Deployment/connect") == (CONNECT_IMAGE, "IfNotPresent")
    assert pulled == dict.fromkeys(("Deployment/connect-health", "Job/apply", "Pod/readyz"), (expected, "Always"))


def test_artifact_hub_lists_connects_default_image() -> None:
    """`make release` appends the connect-health image it pushed; the source chart lists only Connect's."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    listed = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    assert listed == [{"name": "kafka", "image": f"apache/kafka:{chart['appVersion']}"}]
    assert images(render_chart(BOOT))["Deployment/connect"] == listed[0]["image"]


class _Readyz(http.server.BaseHTTPRequestHandler):
    """/readyz answers 200, anything else 503: a ready and an unready worker."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_test_pods_command_really_checks_readyz(render: Render, readyz_server: int) -> None:
    """The rendered command run by this Python (the image's is 3.11 too) against a server on 127.0.0.1."""
    command = container(one(render(BOOT), "Pod"), "readyz")["command"]
    assert command[0] == "python" and command[-1] == "http://rel-kafka-connect:8090/readyz"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}

    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *command[1:-1], url], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    ready = run(f"http://127.0.0.1:{readyz_server}/readyz")
    assert ready.returncode == 0, ready.stderr
    for path, reason in (("/not-ready", "503"), ("/readyz", "Connection refused")):
        port = readyz_server if reason == "503" else _closed_port()
        failed = run(f"http://127.0.0.1:{port}{path}")
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1 and reason in failed.stderr, failed.stderr


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
