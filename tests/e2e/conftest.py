"""Fixtures for the end-to-end tests: a real Kafka broker + Connect worker, real `connect-health serve` processes and
a real headless Chromium (Debian's package, driven by the `playwright` Python package; never `playwright install`).

- `e2e_stack`: one broker + worker (Kafka KAFKA_VERSION) for the session, from the launcher package (the same
  as `make demo` and tests/integration; the integration conftest's `stack` runs every test on two Kafka versions
  with the Debezium plugin, which a status page check does not need).
- `sidecar`: start(*flags) -> a running `connect-health serve` against that worker; stopped at teardown.
- `browser` / `page`: Chromium (/usr/bin/chromium, or $CHROMIUM) and a fresh page per test.
- `artifacts`: .tools/artifacts/ (screenshots a person can look at).

A missing JDK, Kafka jars or chromium make these fixtures fail (never skip), with one line saying what to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest
from launcher.tools import CHROMIUM_ARGS
from stackcheck import fail_on_stack_error

ROOT = Path(__file__).resolve().parents[2]

ARTIFACTS = ROOT / ".tools" / "artifacts"


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Stack]:
    version = launcher.KAFKA_VERSION

    def make() -> launcher.Stack:
        launcher.require_java(version)
        launcher.require_fetched(version)
        return launcher.Stack(tmp_path_factory.mktemp("e2e-stack"), version).start()

    stack: launcher.Stack = fail_on_stack_error(f"Kafka {version} stack", make)
    yield stack
    stack.stop()


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture
def sidecar(e2e_stack: launcher.Stack, workdir: Path) -> Iterator[Callable[..., launcher.Sidecar]]:
    started: list[launcher.Sidecar] = []

    def start(*flags: str) -> launcher.Sidecar:
        sc = launcher.Sidecar(workdir, e2e_stack.connect_url, list(flags), name=f"sidecar-{len(started)}")
        started.append(sc)
        result: launcher.Sidecar = fail_on_stack_error("connect-health serve", sc.start)
        return result

    yield start
    for sc in started:
        sc.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"chromium not found at {path}: run `bash ci/system-deps.sh` (installs Debian's chromium "
                    "package), or set CHROMIUM=/path/to/chromium", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # a missing package is an error, not a skip

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
    except Exception as e:  # noqa: BLE001 - one line, no playwright traceback
        pw.stop()
        pytest.fail(f"could not start {chromium} through playwright: {str(e).splitlines()[0]}", pytrace=False)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
