"""The sidecar image as built by `make image`, run for real with podman (runc): the user it runs as, a read-only
root filesystem, `--version`, `serve` answering /ping on 127.0.0.1, and its size printed next to python:3.11-slim's."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import connect_health
import launcher
import pytest

from .conftest import Run

# python:3.11-slim-bookworm (linux/amd64) as Docker Hub lists it: ~41 MB compressed, ~130 MB uncompressed.
PUBLIC_SLIM_UNCOMPRESSED_MB = 130
# A budget, not a timing: the image is the local base (~129 MB) plus the venv; a fat layer slipping in shows here.
SIZE_BUDGET_MB = 200


@pytest.fixture
def serving(podman: Run, sidecar_image: str) -> Iterator[tuple[str, int]]:
    """`serve` in a detached container on the host network, listening on 127.0.0.1:<free port>, read-only root;
    Connect's URL points at a closed port (ping needs no Connect). Yields (container id, port)."""
    port = launcher.free_port()
    closed = launcher.free_port()
    cid = podman("run", "-d", "--rm", "--read-only", "--network", "host", sidecar_image,
                 "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--connect-url", f"http://127.0.0.1:{closed}").stdout.strip()
    try:
        yield cid, port
    finally:
        podman("rm", "-f", "-t", "5", cid, check=False)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


def test_version(podman: Run, sidecar_image: str) -> None:
    r = podman("run", "--rm", "--read-only", "--network", "none", sidecar_image, "--version")
    assert r.stdout.strip() == f"connect-health {connect_health.__version__}"


def test_serve_answers_ping_as_65534_on_a_read_only_root(podman: Run, serving: tuple[str, int]) -> None:
    cid, port = serving
    deadline = time.monotonic() + 30
    answer: tuple[int, bytes] | None = None
    while answer is None and time.monotonic() < deadline:
        try:
            answer = get(f"http://127.0.0.1:{port}/ping")
        except OSError:
            time.sleep(0.25)
    if answer is None:
        logs = podman("logs", cid, check=False)
        pytest.fail(f"no answer on 127.0.0.1:{port}/ping within 30 s; container log:\n{logs.stdout}{logs.stderr}")
    assert answer[0] == 200 and json.loads(answer[1]) == {"status": "ok"}

    # The serving process itself, read from the host's /proc: uid and gid 65534 (real and effective).
    pid = podman("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()
    proc_status = Path(f"/proc/{pid}/status").read_text()
    status = dict(line.split(":", 1) for line in proc_status.splitlines() if ":" in line)
    assert status["Uid"].split()[:2] == ["65534", "65534"] and status["Gid"].split()[:2] == ["65534", "65534"]
    assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", cid).stdout.strip() == "true"
    # and a write to the root filesystem fails for it
    wrote = podman("exec", cid, "python", "-c", "open('/opt/connect-health/x', 'w')", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr


def test_image_config(podman: Run, sidecar_image: str) -> None:
    config = json.loads(podman("image", "inspect", sidecar_image).stdout)[0]
    assert config["User"] == "65534:65534"
    assert config["Config"]["Entrypoint"] == ["connect-health"] and config["Config"]["Cmd"] == ["serve"]
    assert config["Os"] == "linux" and config["Architecture"] == "amd64"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "connect-health"
    assert labels["org.opencontainers.image.version"] == connect_health.__version__
    # pip was only needed to build the venv: it is not in the image
    r = podman("run", "--rm", "--read-only", "--network", "none", "--entrypoint", "python", sidecar_image,
               "-c", "import importlib.util as u; print(u.find_spec('pip'))")
    assert r.stdout.strip() == "None"


def test_image_size(podman: Run, sidecar_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    size_mb = int(podman("image", "inspect", "--format", "{{.Size}}", sidecar_image).stdout) / 1e6
    with capsys.disabled():
        print(f"\n{sidecar_image}: {size_mb:.0f} MB uncompressed (python:3.11-slim alone: "
              f"~{PUBLIC_SLIM_UNCOMPRESSED_MB} MB uncompressed, ~41 MB compressed)")
    assert 20 < size_mb < SIZE_BUDGET_MB
