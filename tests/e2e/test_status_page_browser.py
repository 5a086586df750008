"""The status page as a person sees it: a real headless Chromium on a real sidecar watching a real Connect worker.

A healthy FileStream source and a FileStreamSink whose file lies in a directory that does not exist (its task
FAILS at start: "Couldn't find or create file"). The page must show each connector and task with its state,
the failing task highlighted (row class and a computed background unlike the healthy rows) with its reason;
then, once the directory exists, the SAME page (the test never reloads it) must refresh itself (meta refresh)
until the sink shows RUNNING. Screenshots: .tools/artifacts/status-page.png (failing), status-page-healed.png.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest

pytestmark = pytest.mark.browser

SOURCE_CLASS = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK_CLASS = "org.apache.kafka.connect.file.FileStreamSinkConnector"
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")


@pytest.fixture
def connectors(e2e_stack: launcher.Stack) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    made: list[str] = []

    def create(name: str, config: dict[str, Any]) -> None:
        made.append(name)
        e2e_stack.worker.put_connector(name, config)

    yield create
    for name in made:
        e2e_stack.worker.delete_connector(name)


def row(page: Any, connector: str, task: str = "") -> Any:
    return page.locator(f'tr[data-connector="{connector}"][data-task="{task}"]')


def background(locator: Any) -> str:
    return str(locator.evaluate("e => getComputedStyle(e).backgroundColor"))


def test_failing_sink_is_highlighted_and_the_page_refreshes_itself_when_it_heals(
        page: Any, e2e_stack: launcher.Stack, sidecar: Callable[..., launcher.Sidecar],
        connectors: Callable[[str, dict[str, Any]], None], workdir: Path, artifacts: Path) -> None:
    from playwright.sync_api import expect

    source, sink = "page-source", "page-sink"
    (workdir / "in.txt").write_text("first\nsecond\n")
    out_dir = workdir / "sink-out"  # does not exist yet: the sink's task fails at start
    connectors(source, {"connector.class": SOURCE_CLASS, "tasks.max": "1", "file": str(workdir / "in.txt"),
                        "topic": "page-lines"})
    connectors(sink, {"connector.class": SINK_CLASS, "tasks.max": "1", "topics": "page-lines",
                      "file": str(out_dir / "out.txt")})
    e2e_stack.worker.wait_connector_state(source, "RUNNING")
    # A long ladder (1 s backoff, doubling, 20 attempts): the sink stays 'restarting' while the test looks at it,
    # and the ladder's next restart is what heals it once the directory exists.
    sc = sidecar("--poll-interval", "1", "--restart-attempts", "20", "--restart-backoff", "1", "--grace", "60")

    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    response = page.goto(sc.url + "/status")
    assert response is not None and response.status == 200
    assert "text/html" in response.headers.get("content-type", "")
    url = page.url

    sink_task = row(page, sink, "0")
    expect(sink_task).to_have_attribute("data-state", "FAILED", timeout=30_000)
    expect(row(page, source, "0")).to_have_attribute("data-state", "RUNNING", timeout=15_000)

    # Each connector and each task, with its state (the cell and the data attribute agree).
    for name in (source, sink):
        for task in ("", "0"):
            r = row(page, name, task)
            expect(r).to_have_count(1)
            expect(r.locator("td.state")).to_have_text(r.get_attribute("data-state") or "<none>")
    expect(row(page, source)).to_have_attribute("data-state", "RUNNING")
    expect(row(page, sink)).to_have_attribute("data-state", "RUNNING")  # the connector instance runs; its task not
    for r in (row(page, source), row(page, source, "0"), row(page, sink)):
        expect(r).to_have_class("ok")

    # The failing task: highlighted, with its reason and the first line of its trace.
    verdict = sink_task.get_attribute("class")
    assert verdict in ("failed", "restarting"), verdict
    expect(sink_task.locator("td.verdict")).to_have_text(verdict)
    expect(sink_task).to_contain_text("FAILED")
    expect(sink_task).to_contain_text("Couldn't find or create file")
    healthy_bg = background(row(page, source, "0"))
    failing_bg = background(sink_task)
    assert failing_bg not in TRANSPARENT and failing_bg != healthy_bg, (failing_bg, healthy_bg)
    # The probes line says what a person should worry about.
    expect(page.locator("#probe-livez")).to_be_visible()
    page.screenshot(path=str(artifacts / "status-page.png"), full_page=True)

    # Fix the cause; the test never reloads: the page's own refresh must bring the change in.
    before = len(navigations)
    out_dir.mkdir()
    healed_at = time.monotonic()
    expect(sink_task).to_have_attribute("data-state", "RUNNING", timeout=90_000)
    expect(sink_task).to_have_class("ok")
    assert background(sink_task) == background(row(page, source, "0"))
    assert len(navigations) > before, "the page did not refresh itself"
    assert page.url == url
    page.screenshot(path=str(artifacts / "status-page-healed.png"), full_page=True)
    print(f"sink healed on the page {time.monotonic() - healed_at:.1f}s after the directory was created; "
          f"{len(navigations)} self-refreshes")
