"""Where a failure's class and hint show (issue 21): /status JSON and HTML, `check`'s table, Events, metrics; and
that a needs-action failure gets one REST restart and no liveness failure through the whole poller."""

from __future__ import annotations

from typing import Any

from connect_health import status
from connect_health.events import EventObserver

from .conftest import SECRETS, MakePoller, health
from .fakeconnect import Answer, FakeClock, FakeConnect, fixture
from .test_endpoints import MakeApp, polled, samples, scrape

CREDENTIALS = "failed_task_credentials.json"


def test_status_json_and_html_show_class_and_hint(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, poller = polled(make_app, fake, clock, fixture(CREDENTIALS), polls=3)
    doc: Any = app.test_client().get("/status?format=json").get_json()
    jdbc = next(c for c in doc["connectors"] if c["name"] == "jdbc-sink")
    assert jdbc["class"] == "credentials" and jdbc["needs_action"] is True
    task0 = jdbc["tasks"][0]
    assert task0["class"] == "credentials" and "user/password" in task0["hint"]
    assert "class" not in jdbc["connector"]  # RUNNING: no class
    assert doc["probes"]["livez"]["status"] == "ok"
    assert any(w.startswith("needs-action: jdbc-sink task 0 FAILED") for w in doc["probes"]["readyz"]["warnings"])
    assert [r["class"] for r in doc["last_restarts"] if r["connector"] == "jdbc-sink"] == ["credentials"]
    page = app.test_client().get("/status?format=html").get_data(as_text=True)
    assert 'data-class="credentials"' in page and "(needs action)" in page
    assert not any(secret in page for secret in SECRETS)


def test_check_table_shows_class_and_hint(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    _, poller = polled(make_app, fake, clock, fixture(CREDENTIALS), polls=2)
    text = status.table(poller.view, poller.settings)
    line = next(x for x in text.splitlines() if x.startswith("jdbc-sink") and " 0 " in x)
    assert "| class credentials: credentials refused" in line


def test_metrics_carry_the_class(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, fixture(CREDENTIALS), polls=3)
    fams = scrape(app)
    assert samples(fams["connect_health_connector_failed"]) == {
        (("class", "credentials"), ("connector", "jdbc-sink"), ("policy", "critical")): 1.0}
    assert samples(fams["connect_health_restarts"], "_total") == {
        (("class", "credentials"), ("connector", "jdbc-sink"), ("kind", "rest"), ("outcome", "requested"),
         ("task", "0")): 1.0}


def test_one_restart_then_needs_action_event_and_never_liveness(fake: FakeConnect, make_poller: MakePoller,
                                                                 clock: FakeClock) -> None:
    said: list[tuple[str, str, str]] = []
    fake.healthy(fixture(CREDENTIALS))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller = make_poller(health(restart_attempts=5, restart_backoff=10),
                         observers=(EventObserver(lambda *e: said.append(e)),))
    for _ in range(30):  # 15 minutes of polls
        view = poller.poll_once()
        assert view.report.livez.ok
        clock.advance(30)
    assert [p.path for p in fake.requests("POST")] == ["/connectors/jdbc-sink/restart"]
    assert view.report.needs_action == ("jdbc-sink",)
    needs = [e for e in said if e[1] == "ConnectorNeedsAction"]
    assert len(needs) == 1 and needs[0][0] == "Warning" and "credentials" in needs[0][2]
    assert "user/password" in needs[0][2]
    assert view.restart_units == {("jdbc-sink", "0", "rest", "credentials", "requested"): 1}
