"""Fixtures for the integration tests: a real single-node KRaft broker and a real Connect distributed worker on
127.0.0.1, from the pinned Kafka jars that `make kafka` (python -m launcher fetch) caches under .tools/.

- `kafka_version`: session-scoped, parametrized over KAFKA_VERSION and KAFKA_LEGACY_VERSION of ci/versions.env
  (the newest 4.x with GET /health, and a 3.x without it). Every test that uses `stack` runs on both.
- `stack`: one broker + worker per Kafka version for the whole session (shared: use unique connector names and
  leave the worker running). The Debezium PostgreSQL plugin is on its plugin.path.
- `connect`: that worker's REST base URL, e.g. http://127.0.0.1:41234 (worker_id 127.0.0.1:41234).
- `stack_factory`: fresh stacks of your own, for tests that stop, pause or kill things; stopped at teardown.
- `postgres`: a fresh PostgreSQL (wal_level=logical) per test; stopped at teardown.
- `workdir`: a fresh directory per test (FileStream files and the like).

Missing jars make these fixtures fail (never skip): run `make kafka` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest

KAFKA_VERSIONS = [launcher.KAFKA_VERSION, launcher.KAFKA_LEGACY_VERSION]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration is an integration test (`-m "not integration"` leaves it out)."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _require(version: str, debezium: bool = False) -> None:
    """Fail (never skip) with the launcher's one line saying what to run."""
    try:
        launcher.require_java(version)
        launcher.require_fetched(version, debezium=debezium)
    except launcher.StackError as e:
        problem = str(e)
    else:
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session", params=KAFKA_VERSIONS, ids=lambda v: f"kafka-{v}")
def kafka_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def stack(kafka_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Stack]:
    _require(kafka_version, debezium=True)
    workdir = tmp_path_factory.mktemp(f"stack-{kafka_version}")
    s = launcher.Stack(workdir, kafka_version, debezium=True)
    problem = ""
    try:
        s.start()
    except launcher.StackError as e:
        problem = f"Kafka {kafka_version} stack did not start: {e}"
    if problem:
        pytest.fail(problem, pytrace=False)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def connect(stack: launcher.Stack) -> str:
    return stack.connect_url


@pytest.fixture(scope="session")
def worker(stack: launcher.Stack) -> launcher.Worker:
    return stack.worker


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture
def connector_name(request: pytest.FixtureRequest) -> str:
    """A connector name unique to this test (the session stack is shared between tests)."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]


@pytest.fixture
def prefix(connector_name: str, worker: launcher.Worker) -> Iterator[str]:
    """A name prefix for this test's connectors; all of them are deleted at teardown."""
    yield connector_name[:40]
    status, names = worker.request("GET", "/connectors")
    for name in names if status == 200 else []:
        if name.startswith(connector_name[:40]):
            worker.delete_connector(name)


@pytest.fixture
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., launcher.Stack]]:
    """make(version=KAFKA_VERSION, **Stack kwargs) -> a started Stack of your own; all stopped at teardown."""
    made: list[launcher.Stack] = []

    def make(version: str = launcher.KAFKA_VERSION, start: bool = True, **kwargs: Any) -> launcher.Stack:
        _require(version, debezium=bool(kwargs.get("debezium")))
        s = launcher.Stack(tmp_path_factory.mktemp(f"own-stack-{version}"), version, **kwargs)
        made.append(s)
        return s.start() if start else s

    yield make
    for s in reversed(made):
        s.stop()


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Postgres]:
    pg = None
    try:
        pg = launcher.Postgres(tmp_path_factory.mktemp("postgres")).start()
    except launcher.StackError as e:
        problem = str(e)
    if pg is None:
        pytest.fail(problem, pytrace=False)
    yield pg
    pg.stop()


@pytest.fixture
def connectors(worker: launcher.Worker) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """create(name, config): PUT a connector on the shared worker; every one is deleted at teardown."""
    made: list[str] = []

    def create(name: str, config: dict[str, Any]) -> None:
        made.append(name)
        worker.put_connector(name, config, timeout=60)

    yield create
    for name in reversed(made):
        worker.delete_connector(name, timeout=60)


@pytest.fixture
def sidecar(connect: str, workdir: Path) -> Iterator[Callable[..., launcher.Sidecar]]:
    """start(*flags) -> a running `connect-health serve` against the session's worker (polling every 0.5 s; later
    flags win); every one is stopped at teardown."""
    started: list[launcher.Sidecar] = []

    def start(*flags: str) -> launcher.Sidecar:
        sc = launcher.Sidecar(workdir, connect, ["--poll-interval", "0.5", "--request-timeout", "5", *flags],
                                name=f"sidecar-{len(started)}")
        started.append(sc)
        return sc.start(timeout=60)

    yield start
    for sc in started:
        sc.stop()
