"""Shared fixtures of the sidecar unit suite: the fake Connect worker, settings, pollers and Flask apps."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from connect_health.app import Sidecar, build
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings, HealthSettings, ServeSettings
from connect_health.poller import Poller
from flask import Flask

from .fakeconnect import FakeClock, FakeConnect

WORKER = "10.0.0.7:8083"  # this pod's worker in every fixture under data/
OTHER = "10.0.0.8:8083"

# Secrets planted in the fixtures (connector configs and traces) and in the CLI tests: none may ever leave the sidecar.
SECRETS = ("Sup3rS3cret", "hunter2")


def health(**overrides: Any) -> HealthSettings:
    base = HealthSettings(worker_id=WORKER, scope="worker", grace=300.0, restart_attempts=3, restart_backoff=30.0,
                          restart_reset=300.0, unresponsive_after=60.0)
    return replace(base, **overrides)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONNECT_HEALTH_* or POD_IP from the caller's shell may leak into a test."""
    for key in list(os.environ):
        if key.startswith("CONNECT_HEALTH_") or key == "POD_IP":
            monkeypatch.delenv(key)


@pytest.fixture
def fake() -> Iterator[FakeConnect]:
    server = FakeConnect().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakePoller = Callable[..., Poller]


@pytest.fixture
def make_poller(fake: FakeConnect, clock: FakeClock) -> Iterator[MakePoller]:
    """Pollers wired to the fake worker and the hand-moved clock; their sessions are closed afterwards."""
    clients: list[ConnectClient] = []

    def make(settings: HealthSettings | None = None, *, timeout: float = 2.0, **kwargs: Any) -> Poller:
        client = ConnectClient(ConnectSettings(url=fake.url, request_timeout=timeout))
        clients.append(client)
        kwargs.setdefault("clock", clock)
        return Poller(client, settings or health(), **kwargs)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_sidecar(fake: FakeConnect, clock: FakeClock) -> Iterator[Callable[..., Sidecar]]:
    """What `serve` builds (connect_health.app.build), pointed at the fake worker, on the hand-moved clock."""
    built: list[Sidecar] = []

    def make(settings: HealthSettings | None = None, *, timeout: float = 2.0, connectors_file: str | None = None,
             clock_fn: Callable[[], float] | None = None, **serve_settings: Any) -> Sidecar:
        serve = ServeSettings(connect=ConnectSettings(url=fake.url, request_timeout=timeout),
                              health=settings or health(), connectors_file=connectors_file, **serve_settings)
        sidecar = build(serve, clock=clock_fn or clock)
        sidecar.app.config["TESTING"] = True
        built.append(sidecar)
        return sidecar

    yield make
    for sidecar in built:
        sidecar.stop()


@pytest.fixture
def make_app(make_sidecar: Callable[..., Sidecar]) -> Callable[..., tuple[Flask, Poller]]:
    def make(settings: HealthSettings | None = None, **kwargs: Any) -> tuple[Flask, Poller]:
        sidecar = make_sidecar(settings, **kwargs)
        return sidecar.app, sidecar.poller

    return make
