"""Issue 12: each pod's cost flat in the size of the Connect cluster.

A cluster with units spread over ten workers (as Connect's round-robin assignment spreads them) is served by the
stand-in worker of fakeconnect.py, which, like Connect, adds each connector's config only to answers that ask for
``expand=info``. Pinned here: the series per pod, what a scoped snapshot keeps, when configs are fetched, and the
/status paging over the whole cluster. Timings live in bench/scale.py, not here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connect_health.poller import CONFIG_REFRESH, Poller
from connect_health.snapshot import Snapshot, parse_answer, parse_expanded
from flask import Flask
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from .conftest import WORKER, MakePoller, health
from .fakeconnect import HEALTHY, Answer, FakeClock, FakeConnect, Seen
from .test_properties import connect_like

MakeApp = Callable[..., tuple[Flask, Poller]]

WORKERS = [WORKER] + [f"10.0.1.{i}:8083" for i in range(1, 10)]


def cluster(connectors: int, tasks: int = 4) -> dict[str, Any]:
    """``connectors`` x ``tasks`` spread round-robin over ten workers (WORKER is worker 0), configs of 5 keys."""
    out: dict[str, Any] = {}
    for i in range(connectors):
        name = f"conn-{i:03d}"
        out[name] = {
            "status": {"name": name, "type": "sink",
                       "connector": {"state": "RUNNING", "worker_id": WORKERS[i % 10]},
                       "tasks": [{"id": t, "state": "RUNNING", "worker_id": WORKERS[(i + t) % 10]}
                                 for t in range(tasks)]},
            "info": {"name": name, "type": "sink", "tasks": [],
                     "config": {"connector.class": "FileStreamSink", "name": name, "topics": f"t{i}",
                                "file": f"/tmp/{i}", "tasks.max": str(tasks)}},
        }
    return out


def like_connect(body: dict[str, Any]) -> Any:
    """A route answering GET /connectors as Connect does: ``info`` only when ``expand=info`` is asked for."""
    def answer(seen: Seen) -> Answer:
        if ("expand", "info") in seen.query:
            return Answer(200, body)
        return Answer(200, {n: {"status": e["status"]} for n, e in body.items()})
    return answer


def local_units(body: dict[str, Any]) -> int:
    return sum((e["status"]["connector"]["worker_id"] == WORKER)
               + sum(t["worker_id"] == WORKER for t in e["status"]["tasks"]) for e in body.values())


def series(app: Flask) -> tuple[int, dict[str, int]]:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    per_family = {f.name: len(f.samples) for f in text_string_to_metric_families(text)}
    return sum(per_family.values()), per_family


# --- series per pod --------------------------------------------------------------------------------------------

def test_series_per_pod_grow_with_this_workers_units_not_with_the_cluster(make_app: MakeApp, fake: FakeConnect,
                                                                           clock: FakeClock) -> None:
    small, big = cluster(30), cluster(300)
    for body in (small, big):  # one task UNASSIGNED on another worker: judged on every pod, so exported here too
        body["conn-005"]["status"]["tasks"][1]["state"] = "UNASSIGNED"
    counted: list[tuple[int, dict[str, int]]] = []
    for body in ({}, small, big):
        fake.route("GET", "/connectors", like_connect(body))
        fake.route("GET", "/health", Answer(200, HEALTHY))
        app, poller = make_app(health())
        assert poller.poll_once().observation.reachable
        counted.append(series(app))
    (fixed, _), (n_small, fam_small), (n_big, fam_big) = counted
    # U = units on this worker + the UNASSIGNED one elsewhere; one series each
    assert local_units(small) == 15 and local_units(big) == 150
    assert fam_small["connect_health_connector_state"] + fam_small["connect_health_task_state"] == 15 + 1
    assert fam_big["connect_health_connector_state"] + fam_big["connect_health_task_state"] == 150 + 1
    # the fixed part, the same for any cluster: reachable, 3 probes, 6 tasks-by-state, 6 + 6 cluster counts by
    # state, REST calls per poll, the poll histogram's 16 (12 buckets, +Inf, count, sum, created), about 40
    assert 39 <= fixed <= 45
    assert n_small == fixed + 16  # no failures, restarts or drift here
    assert n_big == fixed + 151  # ten times the cluster: ten times this worker's units, nothing more


def test_gone_and_moved_connectors_take_their_series_along(make_app: MakeApp, fake: FakeConnect,
                                                             clock: FakeClock) -> None:
    body = cluster(20)
    fake.route("GET", "/connectors", like_connect(body))
    fake.route("GET", "/health", Answer(200, HEALTHY))
    app, poller = make_app(health())
    poller.poll_once()
    before = series(app)[1]["connect_health_task_state"]
    del body["conn-000"]  # deleted: its instance and task 0 ran here
    body["conn-010"]["status"]["tasks"][0]["worker_id"] = WORKERS[3]  # moved away
    poller.poll_once()
    assert series(app)[1]["connect_health_task_state"] == before - 2


# --- what a scoped snapshot keeps -------------------------------------------------------------------------------

def test_a_scoped_snapshot_keeps_only_what_this_pod_judges() -> None:
    body = cluster(20)
    body["conn-003"]["status"]["connector"]["state"] = "RESTARTING"  # on worker 3: judged on every pod
    body["conn-004"]["status"]["tasks"][2]["state"] = "FAILED"  # on worker 6: that pod's to judge
    snap = parse_answer(json.dumps(body).encode(), worker_id=WORKER, keep={"conn-009"})
    # units on worker 0: connectors 0, 10 (instance and task 0), 7, 17 (task 3), 8, 18 (task 2), 9, 19 (task 1)
    assert sorted(snap.connectors) == ["conn-000", "conn-003", "conn-007", "conn-008", "conn-009", "conn-010",
                                       "conn-017", "conn-018", "conn-019"]
    assert snap.summarised == 11 and snap.total == 20
    c7 = snap.connectors["conn-007"]
    assert [t.id for t in c7.tasks] == [3] and c7.tasks_elsewhere == 3 and c7.config is None
    assert snap.connectors["conn-009"].config is not None  # declared: its config is kept for drift
    assert snap.connectors["conn-003"].tasks == () and snap.connectors["conn-003"].state == "RESTARTING"
    assert snap.cluster_connectors == {"RUNNING": 19, "RESTARTING": 1}
    assert snap.cluster_tasks == {"RUNNING": 79, "FAILED": 1}
    full = parse_answer(snap.listing or b"")  # the whole cluster, for /status?view=cluster
    assert len(full.connectors) == 20 and all(c.config is None for c in full.connectors.values())


def _without_listing(snap: Snapshot) -> Snapshot:
    return Snapshot(connectors=snap.connectors, skipped=snap.skipped, summarised=snap.summarised,
                    cluster_connectors=snap.cluster_connectors, cluster_tasks=snap.cluster_tasks,
                    with_configs=snap.with_configs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=connect_like)
def test_the_typed_decoder_and_the_lenient_parser_agree(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    assert parse_answer(raw) == parse_expanded(body)
    keep = set(list(body)[:1])
    scoped = parse_answer(raw, worker_id=WORKER, keep=keep)
    assert _without_listing(scoped) == _without_listing(parse_expanded(body, worker_id=WORKER, keep=keep))
    assert scoped.listing is not None and len(parse_answer(scoped.listing).connectors) == scoped.total


# --- configs: only with declarations, and not on every poll ----------------------------------------------------

def _info_polls(fake: FakeConnect) -> list[bool]:
    return [("expand", "info") in s.query for s in fake.requests("GET", "/connectors")]


def test_no_configs_fetched_without_declarations(make_poller: MakePoller, fake: FakeConnect) -> None:
    fake.route("GET", "/connectors", like_connect(cluster(5)))
    fake.route("GET", "/health", Answer(200, HEALTHY))
    poller = make_poller()
    views = [poller.poll_once() for _ in range(3)]
    assert _info_polls(fake) == [False, False, False]
    assert [v.rest_calls_last_poll for v in views] == [2, 2, 2]


def test_configs_fetched_on_a_cadence_and_drift_found_within_it(make_poller: MakePoller, fake: FakeConnect,
                                                                clock: FakeClock, tmp_path: Path) -> None:
    body = cluster(5)
    declared = {"conn-001": {"config": {k: v for k, v in body["conn-001"]["info"]["config"].items() if k != "name"}}}
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(declared))
    fake.route("GET", "/connectors", like_connect(body))
    fake.route("GET", "/health", Answer(200, HEALTHY))
    poller = make_poller(connectors_file=str(path))
    first = poller.poll_once()
    assert first.drift == () and first.configs_age == 0.0
    body["conn-001"]["info"]["config"]["topics"] = "changed by hand"
    clock.advance(CONFIG_REFRESH / 2)
    view = poller.poll_once()
    assert view.drift == () and view.configs_age == CONFIG_REFRESH / 2  # the config is the one fetched last
    clock.advance(CONFIG_REFRESH / 2)
    view = poller.poll_once()
    assert [d[:2] for d in view.drift] == [("conn-001", "config")]
    clock.advance(1)
    assert [d[:2] for d in poller.poll_once().drift] == [("conn-001", "config")]  # lent from the last fetch
    assert _info_polls(fake) == [True, False, True, False]
    body["conn-001"]["status"]["connector"]["state"] = "PAUSED"  # state drift: every poll, from the status
    view = poller.poll_once()
    assert ("conn-001", "state") in [d[:2] for d in view.drift] and view.rest_calls_last_poll == 2


# --- /status ---------------------------------------------------------------------------------------------------

def test_status_pages_and_filters_the_whole_cluster(make_app: MakeApp, fake: FakeConnect, clock: FakeClock) -> None:
    body = cluster(40)
    body["conn-013"]["status"]["tasks"][0]["state"] = "FAILED"  # on worker 3
    fake.route("GET", "/connectors", like_connect(body))
    fake.route("GET", "/health", Answer(200, HEALTHY))
    app, poller = make_app(health())
    poller.poll_once()
    client = app.test_client()
    mine = client.get("/status").get_json()
    assert mine["page"]["matched"] == mine["cluster"]["shown_here"] == 16
    assert mine["cluster"]["summarised"] == 24 and mine["cluster"]["tasks"] == 160
    seen: list[str] = []
    for offset in range(0, 40, 15):
        page = client.get(f"/status?view=cluster&limit=15&offset={offset}").get_json()
        assert page["page"]["matched"] == 40
        seen += [c["name"] for c in page["connectors"]]
    assert seen == sorted(body)
    failed = client.get("/status?view=cluster&state=failed").get_json()
    assert [c["name"] for c in failed["connectors"]] == ["conn-013"]
    assert failed["connectors"][0]["tasks"][0]["verdict"] == "remote"
    named = client.get("/status?view=cluster&name=conn-02&verdict=remote&limit=3").get_json()
    assert named["page"]["matched"] == 10 and [c["name"] for c in named["connectors"]] == [
        "conn-020", "conn-021", "conn-022"]
    html = client.get("/status?view=cluster&limit=10&offset=10&format=html").get_data(as_text=True)
    assert 'id="page-next"' in html and 'id="page-prev"' in html and "offset=20" in html
    for bad in ("view=everything", "limit=0", "offset=-1", "limit=x"):
        resp = client.get(f"/status?{bad}")
        assert resp.status_code == 400 and bad.split("=")[0] in resp.get_json()["error"]


def test_malloc_is_tuned_on_glibc_unless_the_environment_says_otherwise(monkeypatch: Any) -> None:
    import platform

    from connect_health.memory import tune_malloc
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")  # Debian: glibc takes both settings
