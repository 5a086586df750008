"""Every HTTP endpoint through Flask's test client, with the poller fed by the fake Connect worker."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from connect_health.poller import Poller
from connect_health.snapshot import STATES
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from .conftest import SECRETS, WORKER, health
from .fakeconnect import Answer, FakeClock, FakeConnect, fixture

MakeApp = Callable[..., tuple[Flask, Poller]]

CONTRACT_METRICS = {
    "connect_health_worker_reachable": "gauge",
    "connect_health_probe_healthy": "gauge",
    "connect_health_connector_state": "gauge",
    "connect_health_task_state": "gauge",
    "connect_health_connector_failed": "gauge",
    "connect_health_restarts": "counter",  # exposed as connect_health_restarts_total
    "connect_health_poll_duration_seconds": "histogram",
    "connect_health_drift": "gauge",
    "connect_health_tasks": "gauge",
    "connect_health_cluster_connectors": "gauge",
    "connect_health_cluster_tasks": "gauge",
}


def js(resp: Any) -> Any:
    """The JSON body of a test response (present: the probes and /status always answer JSON)."""
    body = resp.get_json()
    assert body is not None, resp.get_data(as_text=True)
    return body


def failing_cluster() -> dict[str, Any]:
    """jdbc-sink task 0 FAILED here (JDBC URL with a password in the trace), mysql-source FAILED here
    (password=... in the trace), file-sink RUNNING elsewhere."""
    data = fixture("failed_task_local.json")
    data["mysql-source"] = fixture("failed_connector_local.json")["mysql-source"]
    return data


def polled(make_app: MakeApp, fake: FakeConnect, clock: FakeClock, body: Any, polls: int = 2,
           **settings: Any) -> tuple[Flask, Poller]:
    """An app whose poller has polled the fake ``polls`` times, 1 s apart. One attempt, no wait: exhausted at poll 2."""
    fake.healthy(body)
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    fake.route("POST", "/connectors/mysql-source/restart", Answer(202, {}))
    settings.setdefault("restart_attempts", 1)
    settings.setdefault("restart_backoff", 0)
    app, poller = make_app(health(**settings))
    for _ in range(polls):
        poller.poll_once()
        clock.advance(1)
    return app, poller


# --- probes --------------------------------------------------------------------------------------------------

def test_probes_before_the_first_poll(make_app: MakeApp) -> None:
    app, _ = make_app()
    client = app.test_client()
    assert client.get("/ping").status_code == 200
    live = client.get("/livez")
    assert live.status_code == 200 and live.json == {"status": "ok", "reasons": []}
    start = client.get("/startupz")
    assert start.status_code == 503 and js(start)["status"] == "unhealthy"
    assert js(start)["reasons"] == ["worker starting: no answer from the worker yet"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and js(ready)["reasons"] == ["worker starting: no answer from the worker yet"]


def test_probes_of_a_healthy_worker(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, fixture("healthy.json"))
    client = app.test_client()
    for path in ("/livez", "/health", "/readyz"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.json == {"status": "ok", "reasons": []}, path
        assert resp.mimetype == "application/json"
    start = client.get("/startupz")
    assert start.status_code == 200 and start.json == {"status": "ok", "reasons": [], "health_endpoint": "/health"}
    assert client.get("/ping").json == {"status": "ok"}


def test_liveness_fails_naming_the_connector_and_health_is_an_alias(make_app: MakeApp, fake: FakeConnect,
                                                                     clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, fixture("failed_task_local.json"))
    client = app.test_client()
    live, alias = client.get("/livez"), client.get("/health")
    assert live.status_code == alias.status_code == 503
    assert live.json == alias.json
    assert js(live)["status"] == "unhealthy"
    assert js(live)["reasons"] == ["jdbc-sink task 0 FAILED (still FAILED after 1 restart attempt)"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and js(ready)["reasons"] == js(live)["reasons"]
    assert client.get("/startupz").status_code == 200
    assert client.get("/ping").status_code == 200


def test_best_effort_failure_keeps_liveness_but_shows_in_readyz_warnings(make_app: MakeApp, fake: FakeConnect,
                                                                         clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, fixture("failed_task_local.json"), best_effort=re.compile("jdbc"))
    client = app.test_client()
    assert client.get("/livez").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert any("jdbc-sink task 0 FAILED" in w and "[best-effort]" in w for w in js(ready)["warnings"])


def test_unresponsive_worker_fails_liveness_after_the_budget(make_app: MakeApp, fake: FakeConnect,
                                                             clock: FakeClock) -> None:
    app, poller = polled(make_app, fake, clock, fixture("healthy.json"))
    client = app.test_client()
    fake.connectors(Answer(500, {"error_code": 500, "message": "Request timed out"}))
    poller.poll_once()
    assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 503
    clock.advance(60)
    poller.poll_once()
    live = client.get("/livez")
    assert live.status_code == 503
    assert js(live)["reasons"][0].startswith("Connect REST API unresponsive for 60s")
    status = js(client.get("/status"))
    assert status["worker"]["reachable"] is False and status["worker"]["stale"] is True
    assert "GET /connectors answered 500" in status["worker"]["error"]


# --- /status -------------------------------------------------------------------------------------------------

def test_status_json_documents_this_pods_connectors_and_counts_the_rest(make_app: MakeApp, fake: FakeConnect,
                                                                       clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, failing_cluster())
    resp = app.test_client().get("/status")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = js(resp)
    assert doc["worker_id"] == WORKER and doc["scope"] == "worker" and doc["polls"] == 2
    assert doc["worker"] == {"started": True, "reachable": True, "error": None, "health_endpoint": "/health",
                             "stale": False}
    assert doc["probes"]["livez"]["status"] == "unhealthy" and doc["probes"]["startupz"]["status"] == "ok"
    conns = {c["name"]: c for c in doc["connectors"]}
    # units on this worker only (file-sink runs wholly elsewhere: counted, not listed); problems first
    assert list(conns) == ["jdbc-sink", "mysql-source", "file-source"]
    assert doc["cluster"] == {"connectors": 4, "tasks": 4, "connectors_by_state": {"FAILED": 1, "RUNNING": 3},
                              "tasks_by_state": {"FAILED": 1, "RUNNING": 3}, "shown_here": 3, "summarised": 1}
    assert doc["page"] == {"view": "worker", "filters": {}, "offset": 0, "limit": 200, "matched": 3, "returned": 3}
    jdbc = conns["jdbc-sink"]
    assert (jdbc["type"], jdbc["policy"], jdbc["restart_attempts"], jdbc["failed_past_ladder"]) == (
        "sink", "critical", 1, True)
    assert jdbc["connector"] == {"state": "RUNNING", "worker_id": "10.0.0.8:8083", "on_this_worker": False,
                                 "verdict": "remote", "reason": "running on worker 10.0.0.8:8083", "trace": None}
    task0 = jdbc["tasks"][0]
    assert (task0["id"], task0["state"], task0["worker_id"], task0["on_this_worker"], task0["verdict"]) == (
        0, "FAILED", WORKER, True, "failed")
    assert task0["reason"] == "jdbc-sink task 0 FAILED (still FAILED after 1 restart attempt)"
    # the first line of the Java trace only, with the JDBC credentials masked
    assert task0["trace"] == (
        "org.apache.kafka.connect.errors.ConnectException: java.sql.SQLException: Cannot create "
        "PoolableConnectionFactory (Connection to db.internal:5432 refused.) for "
        "jdbc:postgresql://app:***@db.internal:5432/orders")
    mysql = conns["mysql-source"]["connector"]
    assert mysql["verdict"] == "failed" and "password=***" in mysql["trace"] and "\n" not in mysql["trace"]
    assert [t["id"] for t in jdbc["tasks"]] == [0] and jdbc["tasks_elsewhere"] == 1  # task 1 runs elsewhere
    assert doc["settings"]["restart_attempts"] == 1 and doc["drift"] == []


def test_status_never_shows_a_password(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, failing_cluster())
    client = app.test_client()
    bodies = [client.get(p, headers=h).get_data(as_text=True)
              for p, h in (("/status", {}), ("/status", {"Accept": "text/html"}), ("/metrics", {}),
                           ("/livez", {}), ("/readyz", {}), ("/startupz", {}))]
    assert "jdbc:postgresql://app:***@" in bodies[0]  # the traces are there, masked
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body


def test_traces_none_drops_every_trace(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, failing_cluster(), traces="none")
    client = app.test_client()
    doc = js(client.get("/status"))
    items = [c["connector"] for c in doc["connectors"]] + [t for c in doc["connectors"] for t in c["tasks"]]
    assert items and all(i["trace"] is None for i in items)
    html = client.get("/status", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "<code>" not in html and "ConnectException" not in html and "ConfigException" not in html


class _Rows(HTMLParser):
    """Collects the status table's rows: (class, data-connector, data-task, data-state)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.meta_refresh: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-connector" in a:
            self.rows.append(a)
        if tag == "meta" and a.get("http-equiv") == "refresh":
            self.meta_refresh = a.get("content")


@pytest.mark.parametrize("accept", ["text/html", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])
def test_status_html_for_browsers(make_app: MakeApp, fake: FakeConnect, clock: FakeClock, accept: str) -> None:
    app, _ = polled(make_app, fake, clock, failing_cluster())
    resp = app.test_client().get("/status", headers={"Accept": accept})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = _Rows()
    page.feed(resp.get_data(as_text=True))
    assert page.meta_refresh is not None and int(page.meta_refresh) > 0  # refreshes itself
    rows = {(r["data-connector"], r["data-task"]): r for r in page.rows}
    assert set(rows) == {("file-source", ""), ("file-source", "0"), ("jdbc-sink", ""), ("jdbc-sink", "0"),
                         ("mysql-source", "")}  # file-sink, only on another worker, is in the cluster counts
    assert rows[("jdbc-sink", "0")]["class"] == "failed" and rows[("jdbc-sink", "0")]["data-state"] == "FAILED"
    assert rows[("mysql-source", "")]["class"] == "failed"
    assert rows[("file-source", "0")]["class"] == "ok"
    assert rows[("jdbc-sink", "")]["class"] == "remote"
    assert "jdbc:postgresql://app:***@db.internal" in resp.get_data(as_text=True)


def test_status_html_escapes_connector_names(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    data = fixture("healthy.json")
    data["<script>alert(1)</script>"] = data.pop("file-source")
    app, _ = polled(make_app, fake, clock, data)
    html = app.test_client().get("/status", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(("query", "accept", "mimetype"), [
    ("", None, "application/json"),  # curl without Accept
    ("", "*/*", "application/json"),
    ("", "application/json", "application/json"),
    ("?format=json", "text/html", "application/json"),
    ("?format=html", "application/json", "text/html"),
])
def test_status_content_negotiation(make_app: MakeApp, query: str, accept: str | None, mimetype: str) -> None:
    app, _ = make_app()
    headers = {"Accept": accept} if accept else {}
    assert app.test_client().get("/status" + query, headers=headers).mimetype == mimetype


# --- /metrics ------------------------------------------------------------------------------------------------

def scrape(app: Flask) -> dict[str, Any]:
    resp = app.test_client().get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    return {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}


def samples(family: Any, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == family.name + suffix}


def test_metrics_names_types_and_values(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    app, _ = polled(make_app, fake, clock, fixture("failed_task_local.json"), polls=3)
    fams = scrape(app)
    for name, kind in CONTRACT_METRICS.items():
        assert name in fams, name
        assert fams[name].type == kind, name
    assert samples(fams["connect_health_worker_reachable"]) == {(): 1.0}
    assert samples(fams["connect_health_probe_healthy"]) == {
        (("probe", "livez"),): 0.0, (("probe", "readyz"),): 0.0, (("probe", "startupz"),): 1.0}
    # one series per unit on this worker, its state, value 1 (units on other workers: only the cluster counts)
    conn = samples(fams["connect_health_connector_state"])
    assert conn == {(("connector", "file-source"), ("state", "RUNNING")): 1.0}
    task = samples(fams["connect_health_task_state"])
    assert {(dict(k)["connector"], dict(k)["task"]): dict(k)["state"] for k in task} == {
        ("file-source", "0"): "RUNNING", ("jdbc-sink", "0"): "FAILED"}
    assert set(task.values()) == {1.0}
    failed = {dict(k)["connector"]: v for k, v in samples(fams["connect_health_connector_failed"]).items()}
    assert failed == {"jdbc-sink": 1.0}  # only connectors with a FAILED unit here
    cluster = {dict(k)["state"]: v for k, v in samples(fams["connect_health_cluster_tasks"]).items()}
    assert cluster == {**dict.fromkeys(STATES, 0.0), "RUNNING": 3.0, "FAILED": 1.0}
    restarts = samples(fams["connect_health_restarts"], "_total")
    # per restarted unit, with its kind and failure class (issue 21): task 0 failed on a refused connection
    assert restarts == {(("class", "transient"), ("connector", "jdbc-sink"), ("kind", "rest"), ("outcome", "requested"),
                         ("task", "0")): 1.0}
    # this worker's tasks only: file-source 0 RUNNING and jdbc-sink 0 FAILED (jdbc-sink 1 runs elsewhere)
    tasks = {dict(k)["state"]: v for k, v in samples(fams["connect_health_tasks"]).items()}
    assert tasks["RUNNING"] == 1.0 and tasks["FAILED"] == 1.0 and sum(tasks.values()) == 2.0
    hist = fams["connect_health_poll_duration_seconds"]
    assert samples(hist, "_count") == {(): 3.0}
    buckets = samples(hist, "_bucket")
    assert buckets[(("le", "+Inf"),)] == 3.0
    assert samples(fams["connect_health_drift"]) == {}


def test_metrics_worker_unreachable_and_restart_outcomes(make_app: MakeApp, fake: FakeConnect,
                                                         clock: FakeClock) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(409, {"error_code": 409, "message": "rebalance"}))
    app, poller = make_app(health())
    for _ in range(2):
        poller.poll_once()
        clock.advance(30)  # a 409 is retried after --restart-backoff
    fake.connectors(Answer(200, b"garbage"))
    poller.poll_once()
    fams = scrape(app)
    assert samples(fams["connect_health_worker_reachable"]) == {(): 0.0}
    assert samples(fams["connect_health_restarts"], "_total") == {
        (("class", "transient"), ("connector", "jdbc-sink"), ("kind", "rest"), ("outcome", "conflict"),
         ("task", "0")): 2.0}
    assert samples(fams["connect_health_poll_duration_seconds"], "_count") == {(): 3.0}


def test_metrics_drift_and_status_drift(make_app: MakeApp, fake: FakeConnect, clock: FakeClock,
                                        tmp_path: Path) -> None:
    healthy = fixture("healthy.json")
    declared = {
        "file-source": {"config": {k: v for k, v in healthy["file-source"]["info"]["config"].items() if k != "name"}},
        "jdbc-sink": {"config": {**healthy["jdbc-sink"]["info"]["config"], "tasks.max": 4}, "state": "paused"},
        "ghost": {"config": {"connector.class": "FileStreamSource", "file": "/x", "topic": "t"}},
    }
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(declared))
    fake.healthy(healthy)
    app, poller = make_app(health(), connectors_file=str(path))
    poller.poll_once()
    fams = scrape(app)
    assert samples(fams["connect_health_drift"]) == {
        (("connector", "ghost"), ("kind", "missing")): 1.0,
        (("connector", "jdbc-sink"), ("kind", "config")): 1.0,
        (("connector", "jdbc-sink"), ("kind", "state")): 1.0,
    }
    client = app.test_client()
    doc = js(client.get("/status"))
    assert {(d["connector"], d["kind"]) for d in doc["drift"]} == {
        ("ghost", "missing"), ("jdbc-sink", "config"), ("jdbc-sink", "state")}
    ready = client.get("/readyz")
    assert ready.status_code == 200  # drift is reported, not acted upon
    assert "declared connector ghost is missing from the worker" in js(ready)["warnings"]
    assert "connector jdbc-sink is RUNNING, declared paused" in js(ready)["warnings"]
    html = client.get("/status", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'id="drift"' in html and "ghost" in html


def test_metrics_series_of_a_deleted_connector_disappear(make_app: MakeApp, fake: FakeConnect,
                                                         clock: FakeClock) -> None:
    app, poller = polled(make_app, fake, clock, fixture("healthy.json"))
    assert any(dict(k)["connector"] == "jdbc-sink" for k in samples(scrape(app)["connect_health_task_state"]))
    data = fixture("healthy.json")
    del data["jdbc-sink"]
    fake.connectors(data)
    poller.poll_once()
    assert not any(dict(k)["connector"] == "jdbc-sink" for k in samples(scrape(app)["connect_health_task_state"]))


def test_two_apps_do_not_share_a_registry(make_app: MakeApp) -> None:
    first, _ = make_app()
    second, _ = make_app()
    assert "connect_health_poll_duration_seconds" in scrape(first)
    assert "connect_health_poll_duration_seconds" in scrape(second)
