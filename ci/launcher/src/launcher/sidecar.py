"""`connect-health serve` as a real process (the console script of the venv) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .net import HOST, claim_port, http
from .service import Service
from .tools import connect_health_executable

# The sidecar reads these from its environment: a launched sidecar (and `connect-health apply`) gets only what the
# launcher passes, never what the calling shell happens to have set.
_SIDECAR_ENV_PREFIX = "CONNECT_HEALTH_"
_SIDECAR_ENV_NAMES = ("POD_IP",)


def sidecar_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The launcher's environment without the sidecar's CONNECT_HEALTH_* settings and POD_IP, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SIDECAR_ENV_PREFIX) and k not in _SIDECAR_ENV_NAMES}
    env.update(extra or {})
    return env


class Sidecar(Service):
    """`connect-health serve --host 127.0.0.1 --port <port> --connect-url <url> <args>`.

    Arguments are flags of `connect-health serve`; only the environment given here counts (see sidecar_env).
    Its log is <workdir>/<name>/sidecar.log.
    """

    start_timeout = 30.0
    stop_timeout = 10.0
    ready_interval = 0.2

    def __init__(self, workdir: str | os.PathLike[str], connect_url: str, args: Sequence[str] = (),
                 port: int | None = None, name: str = "sidecar", env: Mapping[str, str] | None = None,
                 executable: str | None = None) -> None:
        super().__init__(workdir, name, "sidecar.log")
        self.connect_url = connect_url
        self.args = list(args)
        self.listener = claim_port(port, "connect-health", "--sidecar-port")
        self.extra_env = dict(env or {})
        self.executable = executable or connect_health_executable()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [self.executable, "serve", "--host", HOST, "--port", str(self.port),
                "--connect-url", self.connect_url, *self.args]

    def env(self) -> Mapping[str, str]:
        return sidecar_env(self.extra_env)

    def ready(self) -> bool:
        return self.get("/ping", timeout=2)[0] == 200

    def describe(self) -> str:
        return f"connect-health on {self.url}"

    def waiting_for(self) -> str:
        return f"{self.name} at {self.url} to answer /ping"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        return http("GET", self.url + path, timeout=timeout)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "url": self.url}
