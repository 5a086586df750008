"""Helpers for integration tests that watch a real `connect-health serve` (launcher.Sidecar)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import launcher
from prometheus_client.parser import text_string_to_metric_families


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return launcher.wait_until(predicate, timeout, what, interval=0.25)


def connector_entry(sc: launcher.Sidecar, name: str) -> dict[str, Any] | None:
    """The connector's entry in the sidecar's /status, or None while it does not list it."""
    status, body = sc.get("/status")
    assert status == 200, body
    return next((c for c in body["connectors"] if c["name"] == name), None)


def metric(sc: launcher.Sidecar, name: str, **labels: str) -> float | None:
    """The value of one sample of the sidecar's /metrics (labels must match exactly), or None when absent."""
    status, text = sc.get("/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


class Sampler:
    """Polls /livez in the background and remembers every answer (a status code, or the error of a failed call),
    to prove it never flipped."""

    def __init__(self, sc: launcher.Sidecar, limit: float = 600.0) -> None:
        self.sc = sc
        self.limit = limit
        self.seen: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="livez-sampler")

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.seen.append(self.sc.get("/livez", timeout=10)[0])
            except Exception as e:  # noqa: BLE001 - recorded, and the assertion shows it
                self.seen.append(f"{type(e).__name__}: {e}")
            self._stop.wait(0.1)

    def not_ok(self) -> list[int | str]:
        return [s for s in self.seen if s != 200]

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def writes(worker: launcher.Worker, prefix: str) -> list[str]:
    """PUT/POST/DELETE requests the worker logged for this test's connectors (validation is not a write)."""
    out = []
    for method in ("PUT", "POST", "DELETE"):
        out += worker.requests_matching(method, rf"/connectors/{prefix}[^/]*(/(config|pause|resume|stop|restart.*))?")
    return out
