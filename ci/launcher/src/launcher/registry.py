"""A real OCI registry on 127.0.0.1: CNCF Distribution (``registry serve``), plain HTTP, filesystem storage.

For the release rehearsal (``make release REGISTRY=127.0.0.1:PORT/org``: image and chart pushed, pulled back by
digest, signatures stored beside them) and for the e2e cluster, whose containerd pulls the released images from
it. The binary is built from the Go module proxy at the pin of ci/versions.env by ``make tools``
(.tools/bin/registry). Deletes are enabled so a test can tamper with what it pushed.

    with Registry(workdir) as reg:
        reg.address          # 127.0.0.1:<port>, for docker/buildah/helm/cosign/crane references
        reg.catalog()        # repository names it holds
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import MissingTool
from .net import HOST, Port, claim_port, http
from .pins import TOOLS
from .service import Service


def registry_executable() -> str:
    """.tools/bin/registry, built by `make tools` (ci/tools.sh)."""
    candidate = TOOLS / "bin" / "registry"
    if not candidate.exists():
        raise MissingTool("the CNCF Distribution registry (.tools/bin/registry)",
                          "run `make tools` (builds it from the Go module proxy)")
    return str(candidate)


class Registry(Service):
    """``registry serve <config>`` on 127.0.0.1:port; blobs and manifests under ``storage`` (default <dir>/data).

    Pass the same ``storage`` to a later Registry to serve what an earlier one received (the e2e keeps the
    release it pushed); the default lives in the service's directory and goes with the workdir.
    """

    start_timeout = 30.0

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, name: str = "registry",
                 storage: str | os.PathLike[str] | None = None, host: str = HOST) -> None:
        super().__init__(workdir, name, "registry.log")
        self.host = host
        # Another address than 127.0.0.1 (the e2e node's) belongs to its caller, who picks the port.
        self.listener = (claim_port(port, "OCI registry", "--registry-port") if host == HOST
                         else Port(port or 5000, "OCI registry", "--registry-port"))
        self.storage = Path(storage).resolve() if storage is not None else self.dir / "data"
        self.binary = registry_executable()

    @property
    def address(self) -> str:
        """host:port, the registry part of an image reference (plain HTTP: tools need --plain-http or the like)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def config_file(self) -> Path:
        return self.dir / "config.yml"

    def prepare(self) -> None:
        super().prepare()
        self.storage.mkdir(parents=True, exist_ok=True)
        config = {  # JSON is YAML: no YAML library needed
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")

    def command(self) -> list[str]:
        return [self.binary, "serve", str(self.config_file)]

    def env(self) -> dict[str, str]:
        # OTEL_TRACES_EXPORTER=none: Distribution 3 would otherwise try to export traces to localhost:4318.
        return {**os.environ, "OTEL_TRACES_EXPORTER": "none"}

    def ready(self) -> bool:
        status, _ = http("GET", f"{self.url}/v2/", timeout=2.0)
        return status == 200

    def catalog(self) -> list[str]:
        """The repositories it holds (GET /v2/_catalog)."""
        status, body = http("GET", f"{self.url}/v2/_catalog", timeout=10.0)
        if status != 200 or not isinstance(body, dict):
            raise self.failed(f"GET /v2/_catalog answered {status}")
        return list(body.get("repositories") or [])

    def describe(self) -> str:
        return f"OCI registry (CNCF Distribution) on {self.address}"

    def waiting_for(self) -> str:
        return f"the registry to answer GET /v2/ on {self.address}"

    def state(self) -> dict[str, Any]:
        return {**super().state(), "address": self.address, "storage": str(self.storage)}
