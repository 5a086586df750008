"""One helper the suites that start a real stack share (tests/ is on pytest's pythonpath, see pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import launcher
import pytest

T = TypeVar("T")


def fail_on_stack_error(what: str, fn: Callable[[], T]) -> T:
    """Run fn; a launcher.StackError (a missing tool, a busy port, a service that did not start) fails the test
    with one line naming `what` and saying what to do, never a skip and never a traceback through the launcher."""
    try:
        return fn()
    except launcher.StackError as e:
        problem = f"{what}: {e}"
    pytest.fail(problem, pytrace=False)
