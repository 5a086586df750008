"""A broker and Connect workers (and any other services added), started together and stopped together."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from .broker import Broker
from .fetch import plugins_root, require_fetched
from .pins import KAFKA_VERSION
from .service import Service
from .worker import Worker

S = TypeVar("S", bound=Service)


def _quiet(msg: str) -> None:
    pass


class Stack:
    """with Stack(workdir, "4.3.1", debezium=True) as s: ... s.connect_url, s.bootstrap, s.broker, s.worker

    Services given to add() start after the workers (in order) and stop before them.
    """

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, *,
                 broker_port: int | None = None, controller_port: int | None = None,
                 rest_port: int | None = None, debezium: bool = False,
                 plugin_path: Sequence[str | os.PathLike[str]] = (), worker_props: Mapping[str, Any] | None = None,
                 broker_props: Mapping[str, Any] | None = None, group_id: str = "connect-local",
                 progress: Callable[[str], None] | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.version = version
        self.debezium = debezium
        self.progress = progress or _quiet
        require_fetched(version, debezium=debezium)
        self.plugin_path = [*([plugins_root()] if debezium else []), *plugin_path]
        self.worker_props = dict(worker_props or {})
        self.group_id = group_id
        self.broker = Broker(self.workdir, version, port=broker_port, controller_port=controller_port,
                             extra_props=broker_props)
        self.worker = Worker(self.workdir, version, self.broker.bootstrap, rest_port=rest_port,
                             plugin_path=self.plugin_path, extra_props=self.worker_props, group_id=group_id)
        self.workers: list[Worker] = [self.worker]
        self.others: list[Service] = []
        self.timings: dict[str, float] = {}  # service name -> seconds its start took

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def connect_url(self) -> str:
        return self.worker.url

    @property
    def services(self) -> list[Service]:
        """Everything in start order."""
        return [self.broker, *self.workers, *self.others]

    def _start(self, svc: Service) -> None:
        self.progress(f"starting {svc.describe()}")
        svc.start()
        self.timings[svc.name] = svc.start_seconds or 0.0
        self.progress(f"{svc.name} ready in {self.timings[svc.name]:.1f}s")

    def start(self) -> Self:
        try:
            for svc in self.services:
                self._start(svc)
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, name: str | None = None, rest_port: int | None = None, start: bool = True,
                   extra_props: Mapping[str, Any] | None = None) -> Worker:
        """Another worker of the same Connect cluster (same group_id and topics)."""
        w = Worker(self.workdir, self.version, self.broker.bootstrap, rest_port=rest_port,
                   plugin_path=self.plugin_path, extra_props={**self.worker_props, **(extra_props or {})},
                   group_id=self.group_id, name=name or f"worker{len(self.workers) + 1}")
        self.workers.append(w)
        if start:
            self._start(w)
        return w

    def add(self, svc: S, start: bool = False) -> S:
        """Another service of this stack (a sidecar, a registry, ...): stopped with it, listed in its state."""
        self.others.append(svc)
        if start:
            self._start(svc)
        return svc

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop()

    def ports(self) -> list[int]:
        return [p.number for svc in self.services for p in svc.ports()]

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "workdir": str(self.workdir), "bootstrap": self.bootstrap,
                "connect_url": self.connect_url, "broker": self.broker.state(),
                "workers": [w.state() for w in self.workers], "services": [s.state() for s in self.others]}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
