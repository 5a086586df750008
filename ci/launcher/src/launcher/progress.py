"""Progress lines with the time since the command started: ``[up     12.3s] broker ready in 9.8s``."""

from __future__ import annotations

import time


class Progress:
    def __init__(self, prefix: str, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.prefix = prefix

    def __call__(self, msg: str) -> None:
        print(f"[{self.prefix} {time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)
