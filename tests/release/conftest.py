"""Fixtures for the image and release tests: the sidecar image built by `make image` and run with podman, a real
CNCF Distribution registry on 127.0.0.1 (the launcher's Registry service), and `make release` rehearsed against it.

- `podman`: run(*args) -> podman with the project's container storage and settings (ci/image/env.sh).
- `sidecar_image`: `make image` (idempotent: buildah's layer cache makes a rebuild a cache hit); its name.
- `registry`: a Registry on a free port for the session, stopped at teardown.
- `cosign_keys`: a cosign key pair made for the session (password in COSIGN_PASSWORD).
- `rehearsal`: `make release REGISTRY=127.0.0.1:PORT/connect-health VERSION=REHEARSAL_VERSION` with that key;
  what release.py wrote to --output (repositories and digests).

A missing tool makes these fixtures fail (never skip) with one line saying what to run. Everything they start
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import launcher
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "bin"
CHART = ROOT / "charts" / "kafka-connect"
REHEARSAL_VERSION = "0.0.1-rehearsal"
COSIGN_PASSWORD = "rehearsal-only-password"

Run = Callable[..., subprocess.CompletedProcess[str]]


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run cmd (no shell); on failure with check, fail the test with the command's last output lines."""
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})}, cwd=ROOT)
    if check and r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        pytest.fail(f"{' '.join(cmd[:4])} ... exited {r.returncode}:\n{tail}", pytrace=False)
    return r


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools`", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def container_env() -> dict[str, str]:
    """CONTAINERS_STORAGE_CONF and CONTAINERS_CONF of ci/image/env.sh (the storage `make image` builds into)."""
    out = run(["bash", str(ROOT / "ci" / "image" / "env.sh"), "--print"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def podman(container_env: dict[str, str]) -> Run:
    def podman_run(*args: str, check: bool = True, timeout: float = 120,
                   storage: tuple[Path, Path] | None = None) -> subprocess.CompletedProcess[str]:
        """podman args; storage=(root, runroot) uses a separate, empty storage (a real pull)."""
        extra = ["--root", str(storage[0]), "--runroot", str(storage[1])] if storage else []
        return run(["podman", *extra, *args], env=container_env, check=check, timeout=timeout)
    return podman_run


def make(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return run(["make", "--no-print-directory", "-s", *args], timeout=timeout)


@pytest.fixture(scope="session")
def sidecar_image() -> str:
    """`make image`: the sidecar image, built by buildah on the local Debian base (cached under .tools/)."""
    out = make("image").stdout.strip().splitlines()
    name = out[-1].split()[0] if out else ""
    if not name.startswith("localhost/connect-health:"):
        pytest.fail(f"make image printed no image name (last line: {out[-1:] or 'none'})", pytrace=False)
    return name


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Registry]:
    reg = launcher.Registry(tmp_path_factory.mktemp("registry"))
    try:
        reg.start()
    except launcher.StackError as e:
        pytest.fail(f"registry: {e}", pytrace=False)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def cosign_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cosign key pair for this session only (cosign generate-key-pair, password COSIGN_PASSWORD)."""
    d = tmp_path_factory.mktemp("cosign")
    r = subprocess.run([tool("cosign"), "generate-key-pair"], cwd=d, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COSIGN_PASSWORD": COSIGN_PASSWORD})
    if r.returncode != 0:
        pytest.fail(f"cosign generate-key-pair failed: {r.stderr.strip()[-300:]}", pytrace=False)
    return {"key": d / "cosign.key", "pub": d / "cosign.pub"}


def files_mentioning(path: Path, text: str) -> list[str]:
    """Files under path whose content contains text (the release's stamps must never land in the source tree)."""
    return [str(f.relative_to(ROOT)) for f in sorted(path.rglob("*"))
            if f.is_file() and text.encode() in f.read_bytes()]


@pytest.fixture(scope="session")
def rehearsal(registry: launcher.Registry, cosign_keys: dict[str, Path],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """make release against the local registry: release.py's JSON, what make printed, and the source chart's files
    that mention the registry afterwards (none, or the release stamped the source instead of a copy)."""
    out = tmp_path_factory.mktemp("release") / "release.json"
    r = run(["make", "--no-print-directory", "-s", "release", f"REGISTRY={registry.address}/connect-health",
             f"VERSION={REHEARSAL_VERSION}", f"COSIGN_KEY={cosign_keys['key']}", f"RELEASE_OUTPUT={out}"],
            env={"COSIGN_PASSWORD": COSIGN_PASSWORD}, timeout=1800)
    result: dict[str, Any] = json.loads(out.read_text())
    result["printed"] = r.stdout
    result["source_stamped"] = files_mentioning(CHART, registry.address)
    return result
