"""Fixtures of the chart suite: every test taking `helm` runs once per Helm major (3 and 4)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from .render import HELMS, helm_path, render_chart


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "chart" and item.path.parent.parent.name == "tests":
            item.add_marker(pytest.mark.chart)


@pytest.fixture(scope="session", params=sorted(HELMS))
def helm(request: pytest.FixtureRequest) -> str:
    """Name of the helm binary under test. A missing binary fails the test (never a skip)."""
    try:
        helm_path(request.param)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    return str(request.param)


@pytest.fixture(scope="session")
def render(helm: str) -> Callable[..., list[dict[str, Any]]]:
    """render_chart bound to the helm under test."""
    return functools.partial(render_chart, helm=helm)
