"""Cost per pod (issue 22): what the probes and /metrics load, pages built once per poll, answers not parsed twice.

No timings here (bench/ measures them): these pin the mechanisms the figures rest on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from connect_health import snapshot as snapshot_mod
from connect_health.app import PageCache, Sidecar
from connect_health.ladder import Rung, plan
from connect_health.snapshot import AnswerParser, parse_answer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import WORKER, health
from .fakeconnect import FakeConnect
from .standin_kube import stand_in_kube
from .test_properties import connect_like
from .test_scale import cluster

# serve's wiring in a fresh interpreter: what a sidecar only probed and scraped has imported. The poller is not
# started (no Connect here): the answers come from its first View.
LAZY = r"""
import io, json, sys
from connect_health.entry import http_client_without_ssl
http_client_without_ssl()  # as the connect-health command does first
import connect_health.cli, connect_health.server
from connect_health.app import build
from connect_health.config import ConnectSettings, HealthSettings, ServeSettings

sidecar = build(ServeSettings(connect=ConnectSettings(url="http://127.0.0.1:9", request_timeout=1),
                             health=HealthSettings()))

def get(path, accept="application/json"):
    seen = []
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "HTTP_ACCEPT": accept,
           "wsgi.input": io.BytesIO(b""), "SERVER_NAME": "x", "SERVER_PORT": "1", "wsgi.url_scheme": "http",
           "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(sidecar.wsgi(env, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], body

web = ("flask", "jinja2", "werkzeug")
out = {}
for path in ("/livez", "/readyz", "/startupz", "/ping", "/metrics"):
    out[path] = get(path)[0]
out["loaded_before_a_page"] = sorted(m for m in web if m in sys.modules)
out["held_back"] = sorted(m for m in ("ssl", "hashlib", "hmac", "tempfile", "urllib.request") if m in sys.modules)
status, body = get("/status", "text/html")
out["page"] = [status, body[:15].decode()]
out["loaded_after_a_page"] = sorted(m for m in web if m in sys.modules)
out["never"] = sorted(m for m in ("requests", "urllib3", "prometheus_client", "charset_normalizer", "yaml")
                      if m in sys.modules)
print(json.dumps(out))
"""


def test_flask_is_imported_only_when_a_page_is_asked_for_and_requests_never() -> None:
    done = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["/metrics"] == "200 OK" and out["/ping"] == "200 OK"
    assert out["/startupz"].startswith("503")  # no poll yet: the probes answer from the first View
    assert out["loaded_before_a_page"] == []
    assert out["page"] == ["200 OK", "<!doctype html>"]
    assert out["loaded_after_a_page"] == ["flask", "jinja2", "werkzeug"]
    assert out["never"] == []  # http.client instead of requests (transport.py), metrics.py writes the text format
    # and until a page is asked for, nothing that loads OpenSSL (ssl, hashlib, hmac: 5.9 MB) or tempfile (shutil,
    # bz2, lzma) for a sidecar on plain HTTP (entry.py)
    assert out["held_back"] == []


# serve --kubernetes-events --reconcile --reconcile-lease in a fresh interpreter, in a "pod" whose API server is the
# stand-in over TLS (the service account's CA checks it): a Lease round and an Event go through kubeapi.py, and
# neither requests nor urllib3 is ever loaded. The service account folder is the test's (the functions' defaults
# name the real mount, /var/run/secrets/...: the script points them at the test's folder).
KUBE = r"""
import json, os, sys
from connect_health.entry import http_client_without_ssl
http_client_without_ssl()  # as the connect-health command does first: TLS through transport._TLSConnection
from connect_health import events, reconcile
from connect_health.app import build
from connect_health.config import ConnectSettings, HealthSettings, ServeSettings

account = sys.argv[1]
events.KubeEvents.from_environment.__func__.__defaults__ = (os.environ, account)
reconcile.from_settings.__defaults__ = (os.environ, account)
sidecar = build(ServeSettings(connect=ConnectSettings(url="http://127.0.0.1:9", request_timeout=1),
                             health=HealthSettings(), connectors_file=sys.argv[2], kubernetes_events=True,
                             reconcile=True, reconcile_lease="rel-reconcile"))
assert sidecar.reconciler is not None and sidecar.reconciler.elector is not None
elector = sidecar.reconciler.elector
elector.eligible = lambda: True
assert "ssl" not in sys.modules  # imported at the first call over TLS
elector.step()  # GET the Lease (none yet), then create it (POST)
emit = sidecar.reconciler.emit
emit("Normal", "ConnectorReconciled", "restored file-source")
emit.flush()
print(json.dumps({"leads": elector.leads(), "error": elector.error, "sent": emit.sent, "failed": emit.failed,
                  "never": sorted(m for m in ("requests", "urllib3", "prometheus_client", "charset_normalizer")
                                  if m in sys.modules)}))
"""


def test_serve_reaches_the_api_server_over_tls_without_requests(tmp_path: Path) -> None:
    """kubeapi.py over transport.py (issue 22): TLS against the service account's CA, the bearer token, JSON, for
    the Lease (lease.py) and the Events (events.py) of serve --reconcile --kubernetes-events, requests never loaded."""
    certs = tmp_path / "certs"
    make_server_cert(certs)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "ca.crt").write_bytes((certs / "ca.pem").read_bytes())
    (account / "namespace").write_text("team-a")
    declared = tmp_path / "connectors.json"
    declared.write_text(json.dumps({"file-source": {"config": {"connector.class": "FileStreamSource"}}}))
    with stand_in_kube(tmp_path, tls=(certs / "server.pem", certs / "server.key")) as kube:
        (account / "token").write_text(kube.token_file.read_text())
        assert kube.url.startswith("https://")
        env = {**os.environ, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(kube.server.server_address[1]), "POD_NAME": "rel-kafka-connect-0",
               "POD_NAMESPACE": "team-a", "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
        done = subprocess.run([sys.executable, "-c", KUBE, str(account), str(declared)], capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.splitlines()[-1])
        assert out == {"leads": True, "error": None, "sent": 1, "failed": 0, "never": []}, done.stderr
        assert [(m, h) for m, _, h in kube.log] == [("GET", None), ("POST", "rel-kafka-connect-0"), ("POST", None)]
        assert kube.leases["rel-reconcile"]["spec"]["holderIdentity"] == "rel-kafka-connect-0"
        assert [e["reason"] for e in kube.events] == ["ConnectorReconciled"]


def make_server_cert(d: Path) -> None:
    """A CA and a certificate for 127.0.0.1 signed by it (openssl, as tests/integration/test_tls.py makes them)."""
    d.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout",
            "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kubernetes", "-keyout", "server.key", "-out",
            "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
            "2", "-extfile", "server.ext", "-out", "server.pem")


def test_a_page_is_built_once_per_poll_and_query_for_every_reader(make_sidecar: Callable[..., Sidecar],
                                                                   fake: FakeConnect) -> None:
    fake.healthy(cluster(12))
    sidecar = make_sidecar(health())
    cache = sidecar.wsgi.cache
    assert cache is not None
    client = sidecar.app.test_client()
    sidecar.poller.poll_once()
    pages = [("/metrics", {}), ("/status?format=json", {}), ("/status", {"Accept": "text/html"}),
             ("/status?format=json&view=cluster", {})]
    first = [client.get(path, headers=h).get_data() for path, h in pages]
    for _ in range(3):
        assert [client.get(path, headers=h).get_data() for path, h in pages] == first
    assert cache.builds == len(pages)  # one build per page, every later reader served its bytes
    polls = json.loads(first[1])["polls"]
    sidecar.poller.poll_once()
    assert json.loads(client.get("/status?format=json").get_data())["polls"] == polls + 1  # a new poll, a new page
    assert cache.builds == len(pages) + 1
    assert client.get("/status?view=nope").status_code == 400  # a bad query is still answered as before


def test_readers_during_a_build_get_the_previous_polls_page_at_once(make_sidecar: Callable[..., Sidecar],
                                                                    fake: FakeConnect) -> None:
    fake.healthy(cluster(12))
    sidecar = make_sidecar(health())
    poller = sidecar.poller
    cache = PageCache(poller)
    key = ("/status", "", "")
    poller.poll_once()
    old_view = poller.view
    cache.build(key, old_view, lambda: ("200 OK", [], b"poll 1"))
    poller.poll_once()
    started, release = threading.Event(), threading.Event()

    def slow() -> tuple[str, list[tuple[str, str]], bytes]:
        started.set()
        release.wait(30)
        return "200 OK", [], b"poll 2"

    builder = threading.Thread(target=cache.build, args=(key, poller.view, slow))
    builder.start()
    try:
        assert started.wait(30)
        page, current = cache.lookup(key, poller.view)  # another reader, while the build runs
        assert page is not None and page[2] == b"poll 1" and not current
    finally:
        release.set()
        builder.join(30)
    page, current = cache.lookup(key, poller.view)
    assert page is not None and page[2] == b"poll 2" and current
    assert cache.builds == 2


def test_an_unchanged_answer_is_not_parsed_again() -> None:
    body = cluster(30)
    status_only = json.dumps({n: {"status": e["status"]} for n, e in body.items()}).encode()
    parser = AnswerParser()
    first = parser.parse(status_only, worker_id=WORKER, keep={"conn-001"})
    assert first == parse_answer(status_only, worker_id=WORKER, keep={"conn-001"})
    again = parser.parse(bytes(bytearray(status_only)), worker_id=WORKER, keep={"conn-001"})  # equal, not the same
    assert again is first
    assert parser.parse(status_only, worker_id=WORKER, keep=set()) is not first  # other declarations
    body["conn-000"]["status"]["tasks"][0]["state"] = "FAILED"
    changed = json.dumps({n: {"status": e["status"]} for n, e in body.items()}).encode()
    assert parser.parse(changed, worker_id=WORKER).connectors["conn-000"].tasks[0].state == "FAILED"
    with_configs = json.dumps(body).encode()  # larger: never kept for the comparison
    assert parser.parse(with_configs, worker_id=WORKER) is not parser.parse(with_configs, worker_id=WORKER)


def test_settled_healthy_rungs_are_kept_as_they_are() -> None:
    settings = health()
    rungs, _ = plan({}, failing=(), present=("a", "b"), now=10, settings=settings)
    again, todo = plan(rungs, failing=("b",), present=("a", "b"), now=20, settings=settings)
    assert again["a"] is rungs["a"] and todo == ["b"]  # not copied: nothing about it changed
    assert again["b"] == Rung(healthy_since=None, failing_since=20, history=((20, True),))
    # the copy the fast path skips would be equal: a healthy rung after a reset, and one with attempts, move on
    reset, _ = plan({"a": Rung(attempts=1, healthy_since=0)}, failing=(), present=("a",), now=400,
                    settings=settings)
    assert reset["a"] == Rung(healthy_since=0)


def test_metrics_are_written_as_the_official_client_writes_them(make_sidecar: Callable[..., Sidecar],
                                                                fake: FakeConnect) -> None:
    """metrics.py writes the text format itself (prometheus_client cost 2.6 MB of RSS): what it writes, parsed and
    written again by prometheus_client, is the same text, odd connector names (quotes, backslashes, newlines) too."""
    body = cluster(12)
    for odd, i in (('q"uote', 0), ("back\\slash", 10), ("new\nline", 7)):
        entry = body.pop(f"conn-{i:03d}")
        entry["status"]["name"] = odd
        body[odd] = entry
    body['q"uote']["status"]["tasks"][0]["state"] = "FAILED"
    fake.healthy(body)
    sidecar = make_sidecar(health())
    sidecar.poller.poll_once()
    sidecar.poller.poll_once()
    ours = sidecar.metrics.render().decode()
    assert 'connector="q\\"uote"' in ours and 'connector="back\\\\slash"' in ours and 'connector="new\\nline"' in ours
    assert_written_as_the_official_client_does(ours)


def assert_written_as_the_official_client_does(text: str) -> None:
    """prometheus_client, parsing ``text`` and writing it again, writes the same text."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    class Parsed:
        def collect(self) -> Any:
            return text_string_to_metric_families(text)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Parsed())
    assert generate_latest(registry).decode() == text


def test_the_families_main_added_are_written_as_the_official_client_writes_them(
        make_sidecar: Callable[..., Sidecar], fake: FakeConnect) -> None:
    """The series of failure classes (connector_failed's class, restarts_total by class), stalled tasks and drift
    correction (leader, corrections_total) through the same round trip as above, odd names in their labels."""
    import dataclasses

    from connect_health.metrics import Metrics

    odd = 'st"all\\ed'  # a quote and a backslash, escaped in labels
    body = cluster(12)
    body["conn-000"]["status"]["tasks"][0].update(state="FAILED", trace="org.apache.kafka.common.errors."
                                                  "SaslAuthenticationException: Authentication failed")
    entry = body.pop("conn-010")  # its task 0 on this worker
    entry["status"]["name"] = odd
    body[odd] = entry
    fake.healthy(body)
    sidecar = make_sidecar(health())
    view = sidecar.poller.poll_once()
    obs = dataclasses.replace(view.observation, stalled={(odd, 0): (61.0, "lag 4")}, stall_detection=True)
    view = dataclasses.replace(
        view, observation=obs, drift=((odd, "config", "differs"),),
        restart_units={("conn-000", "0", "rest", "credentials", "requested"): 1,
                       (odd, "0", "rest", "unknown", "requested"): 2},
        reconcile={"leader": True, "corrections": {odd: 3}})
    ours = Metrics(lambda: view).render().decode()
    for series in ('connect_health_connector_failed{class="credentials",connector="conn-000",policy="critical"} 0.0',
                   'connect_health_restarts_total{class="credentials",connector="conn-000",kind="rest",'
                   'outcome="requested",task="0"} 1.0',
                   'connect_health_task_stalled{connector="st\\"all\\\\ed",task="0"} 1.0',
                   "connect_health_stall_detection 1.0", "connect_health_reconcile_leader 1.0",
                   'connect_health_reconcile_corrections_total{connector="st\\"all\\\\ed"} 3.0'):
        assert series in ours, series
    assert_written_as_the_official_client_does(ours)


def test_rows_reused_from_the_last_poll_are_the_rows_built_anew() -> None:
    """model.rows_of reuses a connector's rows when its view, rung, limit, policy and the settings are the same
    objects as at the last call; whatever changed (a rung, the clock for a transient unit) is built anew."""
    from connect_health import model

    body = cluster(20)
    body["conn-000"]["status"]["tasks"][0]["state"] = "FAILED"
    body["conn-010"]["status"]["tasks"][0]["state"] = "UNASSIGNED"  # transient: its age moves with the clock
    snap = parse_answer(json.dumps(body).encode(), worker_id=WORKER)
    settings = health()
    rungs = {"conn-000": Rung(attempts=1, next_at=50, failing_since=0)}
    first = model.Observation(now=100, started=True, reachable=True, snapshot=snap, rungs=rungs,
                              transient_since={("conn-010", 0): 0.0})
    assert model.rows_of(snap, first, settings) == model.rows_of(snap, first, settings)
    later = model.Observation(now=400, started=True, reachable=True, snapshot=snap,
                              rungs={"conn-000": Rung(attempts=3, next_at=500, exhausted=True)},
                              transient_since={("conn-010", 0): 0.0})
    reused = model.rows_of(snap, later, settings)
    model._ROWS[0] = {}  # nothing to reuse
    anew = model.rows_of(snap, later, settings)
    assert reused == anew
    by_unit = {(r.connector, r.task): r for r in anew}
    assert by_unit[("conn-000", 0)].verdict == "failed" and by_unit[("conn-000", 0)].attempts == 3
    assert by_unit[("conn-010", 0)].verdict == "stuck"  # 400 s past grace 300: the clock was read again
    again = {(r.connector, r.task): r for r in model.rows_of(snap, later, settings)}
    assert again[("conn-007", 3)] is by_unit[("conn-007", 3)]  # reused, not built again
    assert again[("conn-010", 0)] is not by_unit[("conn-010", 0)]  # transient: always built



def test_a_task_turning_stalled_in_an_unchanged_answer_gets_its_stalled_row_at_that_poll() -> None:
    """A stalled task is RUNNING in Connect's answer: the answer stays byte for byte the same (AnswerParser hands
    back the same Snapshot, the same ConnectorView) while progress.py says it stalled. model.rows_of must not reuse
    the connector's "ok" rows of the last poll (a dead connector looking alive): the stalled tasks are part of what
    a connector's rows are made from, their seconds too (the reason says them), and so is their clearing."""
    from connect_health import model

    body = cluster(30)
    raw = json.dumps({n: {"status": e["status"]} for n, e in body.items()}).encode()
    parser = AnswerParser()
    snap = parser.parse(raw, worker_id=WORKER)
    settings = health(stall_after=60.0, worker_metrics_url="http://127.0.0.1:9/metrics")
    rungs = {"conn-020": Rung(healthy_since=0)}  # healthy and settled: the ladder hands back this same object
    model._ROWS[0] = {}

    def rows_at(now: float, stalled: dict[tuple[str, int], tuple[float, str]]) -> dict[tuple[str, int | None],
                                                                                       model.Row]:
        again = parser.parse(bytes(bytearray(raw)), worker_id=WORKER)
        assert again is snap  # the answer did not change: same Snapshot, same views
        obs = model.Observation(now=now, started=True, reachable=True, snapshot=again, rungs=rungs,
                                stalled=stalled, stall_detection=True)
        return {(r.connector, r.task): r for r in model.rows_of(again, obs, settings)}

    assert rows_at(100, {})[("conn-020", 0)].verdict == "ok"
    assert rows_at(130, {})[("conn-020", 0)].verdict == "ok"  # reused: nothing changed
    row = rows_at(160, {("conn-020", 0): (60.0, "lag 40")})[("conn-020", 0)]
    assert row.verdict == "stalled" and "no progress for 60s" in row.reason
    row = rows_at(190, {("conn-020", 0): (90.0, "lag 40")})[("conn-020", 0)]
    assert row.verdict == "stalled" and "no progress for 90s" in row.reason  # its seconds move on
    assert rows_at(220, {})[("conn-020", 0)].verdict == "ok"  # progressing again
    # the reused rows are the rows built anew, poll after poll
    stalled = {("conn-020", 0): (60.0, "lag 40"), ("conn-010", 0): (61.0, "lag 2")}
    reused = rows_at(250, stalled)
    model._ROWS[0] = {}
    assert rows_at(250, stalled) == reused


_clean_unit: dict[str, st.SearchStrategy[Any]] = {
    "state": st.sampled_from(["RUNNING", "FAILED", "PAUSED", "UNASSIGNED", "RESTARTING", "odd"]),
    "worker_id": st.sampled_from([WORKER, "10.0.0.8:8083", ""])}
_trace: dict[str, st.SearchStrategy[Any]] = {"trace": st.text(max_size=9)}
_clean_task = st.fixed_dictionaries({"id": st.integers(0, 3), **_clean_unit}, optional=_trace)
# well-formed status-only answers over a few names, so that two of them share entries, change some and drop some
_clean_status: dict[str, st.SearchStrategy[Any]] = {
    "connector": st.fixed_dictionaries(_clean_unit, optional=_trace), "tasks": st.lists(_clean_task, max_size=3),
    "type": st.sampled_from(["source", "sink"])}
_clean_entry: dict[str, st.SearchStrategy[Any]] = {"status": st.fixed_dictionaries(_clean_status)}
clean_answer = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.fixed_dictionaries(_clean_entry),
                               max_size=6)


_names = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polls=st.lists(st.tuples(clean_answer | connect_like, st.frozensets(_names, max_size=3)), min_size=2,
                      max_size=5),
       again=st.integers(0, 4))
def test_an_answer_parsed_against_the_last_is_the_answer_parsed_alone(
        polls: list[tuple[dict[str, Any], frozenset[str]]], again: int) -> None:
    """AnswerParser decodes only the entries that changed since the last answer: whatever the answers (entries
    shared, changed, gone, added; odd ones the typed decoder refuses) and whatever ``keep`` each poll asks for (the
    declared connectors, and with them the connectors whose configs progress.py learns: it changes between polls,
    also while the answer stays the same), each Snapshot is parse_answer's."""
    first_body, first_keep = polls[0]
    # the same answer again, once with the same keep and once with the last poll's: keep alone changing
    polls = [*polls, (first_body, first_keep), (first_body, polls[again % len(polls)][1])]
    parser = AnswerParser()
    for body, keep in polls:
        raw = json.dumps(body).encode()
        assert parser.parse(raw, worker_id=WORKER, keep=keep) == parse_answer(raw, worker_id=WORKER, keep=keep)


def test_keep_changing_while_the_answer_does_not_changes_the_snapshot() -> None:
    """A connector elsewhere is kept in full only while it is in ``keep``: the same bytes with another keep are
    another Snapshot, never the last one handed back."""
    body = {n: {"status": e["status"]} for n, e in cluster(12).items()}
    raw = json.dumps(body).encode()
    parser = AnswerParser()
    elsewhere = "conn-003"  # its connector and tasks on other workers
    assert elsewhere not in parser.parse(raw, worker_id=WORKER).connectors
    assert elsewhere in parser.parse(raw, worker_id=WORKER, keep={elsewhere}).connectors
    assert elsewhere not in parser.parse(raw, worker_id=WORKER).connectors
    changed = json.loads(raw)
    changed["conn-005"]["status"]["connector"]["state"] = "PAUSED"  # decoded entry by entry, keep changing too
    raw2 = json.dumps(changed).encode()
    assert parser.parse(raw2, worker_id=WORKER, keep={elsewhere}) == parse_answer(raw2, worker_id=WORKER,
                                                                                     keep={elsewhere})


def test_the_page_cache_keeps_at_most_its_bytes(make_sidecar: Callable[..., Sidecar], fake: FakeConnect,
                                                monkeypatch: Any) -> None:
    """A client paging through a large cluster (a new query per page) never makes the cache outgrow its bound."""
    from connect_health import app as app_mod

    fake.healthy(cluster(12))
    sidecar = make_sidecar(health())
    sidecar.poller.poll_once()
    view = sidecar.poller.view
    monkeypatch.setattr(app_mod, "MAX_PAGE_BYTES", 2500)
    cache = PageCache(sidecar.poller)
    for i in range(10):
        cache.build(("/status", f"offset={i}", ""), view, lambda: ("200 OK", [], b"x" * 1000))
    assert cache._bytes() <= 2500 and len(cache._pages) == 2
    page, current = cache.lookup(("/status", "offset=9", ""), view)  # the newest are kept
    assert page is not None and current


def _status(state: str, worker: str, tasks: list[tuple[str, str]]) -> dict[str, Any]:
    return {"status": {"name": "x", "type": "sink", "connector": {"state": state, "worker_id": worker},
                       "tasks": [{"id": i, "state": s, "worker_id": w, **({"trace": "boom"} if s == "FAILED" else {})}
                                 for i, (s, w) in enumerate(tasks)]}}


def test_an_answer_with_only_some_entries_changed_is_the_answer_parsed_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path that decodes only the changed entries of an answer naming the same connectors in the same order
    (snapshot._changed_only): states flipping here and elsewhere, a state's count falling to zero, an entry turning
    kept (a task moving here) and back, which take the whole loop; every Snapshot is parse_answer's, with its
    listing the answer itself."""
    other = "10.0.0.9:8083"
    base = {f"c{i}": _status("RUNNING", other, [("RUNNING", other), ("RUNNING", other)]) for i in range(6)}
    base["mine"] = _status("RUNNING", WORKER, [("RUNNING", WORKER)])
    steps = [
        {},  # the same answer
        {"c2": _status("RUNNING", other, [("FAILED", other), ("RUNNING", other)])},  # elsewhere: counted only
        {"mine": _status("RUNNING", WORKER, [("FAILED", WORKER)])},  # here: a kept view changes
        {"c2": base["c2"], "mine": base["mine"]},  # FAILED tasks' count falls to zero
        {"c3": _status("FAILED", other, [("RUNNING", other), ("RUNNING", other)])},
        {"c3": base["c3"]},  # and FAILED connectors'
        {"c4": _status("RUNNING", other, [("RUNNING", WORKER), ("RUNNING", other)])},  # c4 turns kept
        {"c4": base["c4"]},  # and summarised again
        {"c1": _status("PAUSED", other, [("PAUSED", other), ("PAUSED", other)])},
    ]
    fast: list[bool] = []
    changed_only = snapshot_mod._changed_only

    def counted(*args: Any) -> Any:
        out = changed_only(*args)
        fast.append(out is not None)
        return out

    monkeypatch.setattr(snapshot_mod, "_changed_only", counted)
    parser = AnswerParser()
    answer = dict(base)
    for step in [{}, *steps]:
        answer.update(step)
        raw = json.dumps(answer).encode()
        got = parser.parse(raw, worker_id=WORKER, keep=())
        assert got == parse_answer(raw, worker_id=WORKER, keep=())
        assert got.listing == raw
    assert fast == [True, True, True, True, True, False, False, True], "each step keeping kept and summarised ones"
