"""Stalled units (issue 21): the worker-metrics parser and the pure stall tracker of progress.py.

The exporter text below is shaped like what the real JMX exporter agent serves with the chart's rules (the series
names are those tests/integration/test_stall.py reads from a real worker); the tracker is a pure function of
(previous tracks, samples, running tasks, now), tested by a table and by properties.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from connect_health import progress
from connect_health.progress import Sample, Track, stalled, track
from hypothesis import given, settings
from hypothesis import strategies as st

EXPORTER_TEXT = """\
# HELP kafka_connect_sink_task_sink_record_read_total kafka.connect:name=null,type=sink-task-metrics
# TYPE kafka_connect_sink_task_sink_record_read_total counter
kafka_connect_sink_task_sink_record_read_total{connector="orders-sink",task="0",} 1200.0
kafka_connect_sink_task_sink_record_read_total{connector="orders-sink",task="1",} 7.0
kafka_connect_sink_task_sink_record_read_total{connector="idle-sink",task="0",} 0.0
kafka_connect_sink_task_sink_record_read_total{connector="odd \\"name\\"",task="0",} 3.0
# TYPE kafka_connect_sink_consumer_records_lag gauge
kafka_connect_sink_consumer_records_lag{connector="orders-sink",partition="0",task="0",topic="orders",} 300.0
kafka_connect_sink_consumer_records_lag{connector="orders-sink",partition="1",task="0",topic="orders",} 45.0
kafka_connect_sink_consumer_records_lag{connector="orders-sink",partition="2",task="1",topic="orders",} 0.0
kafka_connect_sink_consumer_records_lag{connector="odd \\"name\\"",partition="0",task="0",topic="t",} 2.0
kafka_connect_sink_consumer_records_lag_max{connector="idle-sink",task="0",} NaN
kafka_connect_sink_consumer_records_lag_max{connector="lagmax-sink",task="0",} 12.0
kafka_connect_sink_task_sink_record_read_total{connector="lagmax-sink",task="0",} 5.0
kafka_connect_task_status{connector="orders-sink",status="running",task="0",} 1.0
jvm_memory_bytes_used{area="heap",} 1.0E8
"""


def test_parse_reads_position_and_lag_per_sink_task() -> None:
    samples = progress.parse_lines(EXPORTER_TEXT.splitlines())
    assert samples[("orders-sink", 0)] == Sample(position=1200.0, waiting=True, detail="lag 345")
    assert samples[("orders-sink", 1)] == Sample(position=7.0, waiting=False, detail="lag 0")
    assert samples[('odd "name"', 0)] == Sample(position=3.0, waiting=True, detail="lag 2")
    # records-lag-max (a max over a time window, NaN once a blocked consumer has not fetched within it) is no lag:
    # without a per-partition lag a task is not judged at all
    assert ("lagmax-sink", 0) not in samples and ("idle-sink", 0) not in samples
    assert len(samples) == 3


@pytest.mark.parametrize("line", [
    "kafka_connect_sink_task_sink_record_read_total{connector=\"a\",task=\"x\",} 1.0",  # task not a number
    "kafka_connect_sink_task_sink_record_read_total{connector=\"a\",task=\"0\",} many",  # value not a number
    "kafka_connect_sink_task_sink_record_read_total{task=\"0\",} 1.0",  # no connector label
    "kafka_connect_sink_task_sink_record_read_total{connector=\"a,task=\"0\"} 1.0",  # broken quoting
    "kafka_connect_sink_consumer_records_lag{connector=\"a\",task=\"0\",} +Inf",
    "kafka_connect_sink_task_sink_record_read_total 3",
])
def test_parse_skips_lines_it_cannot_read(line: str) -> None:
    good = ["kafka_connect_sink_task_sink_record_read_total{connector=\"a\",task=\"0\",} 1.0",
            "kafka_connect_sink_consumer_records_lag{connector=\"a\",partition=\"0\",task=\"0\",topic=\"t\",} 4.0"]
    assert progress.parse_lines([line, *good]) == {("a", 0): Sample(1.0, True, "lag 4")}


# The tracker, by table: each row is a sequence of polls (now, samples present?, position, waiting, running) and
# whether the task is stalled after the last one, with stall_after = 60.
K = ("s", 0)
TABLE = [
    ("lag, no progress for stall-after: stalled", [(0, 10, True), (30, 10, True), (60, 10, True)], True),
    ("lag, no progress, not yet stall-after", [(0, 10, True), (30, 10, True), (59, 10, True)], False),
    ("position advances each poll: never stalled", [(0, 10, True), (30, 11, True), (60, 12, True), (90, 13, True)],
     False),
    ("idle sink (lag 0), position still: never stalled", [(0, 10, False), (60, 10, False), (600, 10, False)], False),
    ("lag appears late: counted from when it appeared", [(0, 10, False), (50, 10, True), (100, 10, True)], False),
    ("lag appears late, then stall-after without progress",
     [(0, 10, False), (50, 10, True), (80, 10, True), (110, 10, True)], True),
    ("progress resets the clock", [(0, 10, True), (50, 11, True), (100, 11, True)], False),
    ("a restarted task's counter going back is no progress", [(0, 10, True), (50, 0, True), (60, 0, True)], True),
    ("after a restart, counting forward from 0 is progress", [(0, 10, True), (50, 0, True), (100, 2, True)], False),
    ("stalled then progress: cleared", [(0, 10, True), (60, 10, True), (61, 12, True)], False),
    ("stalled then idle: cleared", [(0, 10, True), (60, 10, True), (61, 10, False)], False),
]


@pytest.mark.parametrize("polls, expected", [(p, e) for _, p, e in TABLE], ids=[t[0] for t in TABLE])
def test_tracker_table(polls: list[tuple[float, float, bool]], expected: bool) -> None:
    tracks: dict[tuple[str, int], Track] = {}
    now = 0.0
    for now, position, waiting in polls:
        tracks = track(tracks, {K: Sample(position, waiting, "lag ?")}, {K}, now)
    assert (K in stalled(tracks, now, 60.0)) is expected


def test_a_task_no_longer_running_or_unseen_is_forgotten() -> None:
    tracks = track({}, {K: Sample(1, True, "")}, {K}, 0.0)
    tracks = track(tracks, {K: Sample(1, True, "")}, {K}, 100.0)
    assert K in stalled(tracks, 100.0, 60.0)
    assert track(tracks, {K: Sample(1, True, "")}, set(), 200.0) == {}  # PAUSED, FAILED, moved: not RUNNING here
    assert track(tracks, {}, {K}, 200.0) == {}  # no sample for it: not judged (its clock starts over)


def test_stalled_reports_how_long_and_the_detail() -> None:
    tracks = track({}, {K: Sample(5, True, "lag 7")}, {K}, 10.0)
    tracks = track(tracks, {K: Sample(5, True, "lag 9")}, {K}, 100.0)
    assert stalled(tracks, 100.0, 60.0) == {K: (90.0, "lag 9")}


polls = st.lists(st.tuples(st.floats(0.0, 50.0), st.integers(0, 3), st.booleans()), min_size=1, max_size=30)


def run(seq: list[tuple[float, int, bool]]) -> tuple[dict[tuple[str, int], Track], float]:
    tracks: dict[tuple[str, int], Track] = {}
    now = 0.0
    for gap, position, waiting in seq:
        now += gap
        tracks = track(tracks, {K: Sample(float(position), waiting, "")}, {K}, now)
    return tracks, now


@settings(max_examples=300, deadline=None)
@given(polls, st.floats(1.0, 200.0))
def test_property_stalled_only_after_stall_after_of_waiting_without_progress(
        seq: list[tuple[float, int, bool]], stall_after: float) -> None:
    tracks, now = run(seq)
    got = stalled(tracks, now, stall_after)
    # Recompute from the sequence: the time since the last poll that moved the position forward or was not waiting
    # (or followed one not waiting).
    last_change, t, prev = 0.0, 0.0, None
    for gap, position, waiting in seq:
        t += gap
        if prev is None or not waiting or position > prev[0] or not prev[1]:
            last_change = t
        prev = (position, waiting)
    assert prev is not None
    expect = prev[1] and now - last_change >= stall_after
    assert (K in got) is expect


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 500.0), st.integers(0, 5)), min_size=1, max_size=30))
def test_property_an_idle_task_is_never_stalled(seq: list[tuple[float, int]]) -> None:
    tracks, now = run([(gap, position, False) for gap, position in seq])
    assert stalled(tracks, now, 1.0) == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 500.0), min_size=1, max_size=30))
def test_property_a_task_that_moves_every_poll_is_never_stalled(gaps: list[float]) -> None:
    tracks, now = run([(gap, i, True) for i, gap in enumerate(gaps)])
    assert stalled(tracks, now, 1.0) == {}


# --- the scrape: bounded in size and time, one line on failure -----------------------------------------------
class _Exporter(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[type[_Exporter]]:
    handler = type("Handler", (_Exporter,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/metrics"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


def test_scrape_reads_the_exporter(exporter: type[_Exporter]) -> None:
    exporter.body = EXPORTER_TEXT.encode()
    samples = progress.scrape(exporter.url, timeout=5.0)  # type: ignore[attr-defined]
    assert samples[("orders-sink", 0)].waiting


def test_scrape_refuses_an_answer_over_its_limit(exporter: type[_Exporter]) -> None:
    exporter.body = EXPORTER_TEXT.encode() * 50
    with pytest.raises(progress.ScrapeError, match="more than 1000 bytes"):
        progress.scrape(exporter.url, timeout=5.0, limit=1000)  # type: ignore[attr-defined]


def test_scrape_errors_are_one_line(exporter: type[_Exporter]) -> None:
    exporter.status = 500
    with pytest.raises(progress.ScrapeError, match="answered 500"):
        progress.scrape(exporter.url, timeout=5.0)  # type: ignore[attr-defined]
    with pytest.raises(progress.ScrapeError) as info:
        progress.scrape("http://127.0.0.1:1/metrics", timeout=2.0)
    assert "\n" not in str(info.value)


# --- sources: Debezium PostgreSQL's streaming metrics, mapped to the connector by its topic.prefix ------------------

PG = "io.debezium.connector.postgresql.PostgresConnector"
DEBEZIUM_TEXT = """\
# TYPE debezium_postgres_streaming_events_seen_total counter
debezium_postgres_streaming_events_seen_total{server="shop",} 41.0
debezium_postgres_streaming_connected{server="shop",} 1.0
debezium_postgres_streaming_events_seen_total{server="snapshotting",} 0.0
debezium_postgres_streaming_connected{server="snapshotting",} 0.0
debezium_postgres_streaming_events_seen_total{server="no-connected-series",} 3.0
debezium_postgres_streaming_connected{server="nan",} NaN
debezium_postgres_streaming_events_seen_total{server="nan",} 5.0
debezium_postgres_streaming_events_seen_total{} 9.0
"""


def test_parse_streams_reads_events_and_connected_per_server() -> None:
    assert progress.parse_streams(DEBEZIUM_TEXT.splitlines()) == {
        "shop": progress.Stream(41.0, True), "snapshotting": progress.Stream(0.0, False)}
    assert progress.parse_lines(DEBEZIUM_TEXT.splitlines()) == {}  # no sink series among them
    assert progress.parse_streams(EXPORTER_TEXT.splitlines()) == {}


def pg(prefix: str = "shop", **extra: str) -> dict[str, str]:
    return {"connector.class": PG, "topic.prefix": prefix, **extra}


HEARTBEAT = {"heartbeat.interval.ms": "10000", "heartbeat.action.query": "insert into hb values (now())"}


@pytest.mark.parametrize(("config", "expected"), [
    (pg(**HEARTBEAT), {"shop": progress.Source("cdc", 10000)}),
    # plain heartbeats are records made by the task when nothing arrives: no progress of the stream is expected
    (pg(**{"heartbeat.interval.ms": "10000"}), {}),
    (pg(**{**HEARTBEAT, "heartbeat.interval.ms": "0"}), {}),  # heartbeats off (Debezium's default)
    (pg(**{**HEARTBEAT, "heartbeat.interval.ms": "soon"}), {}),
    (pg(**{**HEARTBEAT, "heartbeat.action.query": "  "}), {}),
    (pg(prefix="", **HEARTBEAT), {}),
    ({**pg(**HEARTBEAT), "connector.class": "io.debezium.connector.mysql.MySqlConnector"}, {}),  # no rule for it
    (None, {}),  # no config known (yet)
])
def test_sources_are_debezium_postgres_with_a_heartbeat_query(config: dict[str, str] | None,
                                                               expected: dict[str, progress.Source]) -> None:
    assert progress.sources({"cdc": config}) == expected


def test_source_samples_map_streams_to_task_0_of_their_connector() -> None:
    streams = progress.parse_streams(DEBEZIUM_TEXT.splitlines())
    known = progress.sources({"cdc": pg(**HEARTBEAT), "other": pg(prefix="elsewhere", **HEARTBEAT)})
    assert progress.source_samples(streams, known) == {("cdc", 0): Sample(
        41.0, True, "no change event although heartbeat.action.query runs every 10000 ms")}
    # still snapshotting (not streaming yet): no progress of the stream expected, never stalled
    waiting = progress.source_samples(streams, progress.sources({"cdc": pg(prefix="snapshotting", **HEARTBEAT)}))
    assert waiting == {("cdc", 0): Sample(0.0, False, waiting[("cdc", 0)].detail)}


@pytest.mark.parametrize(("counts", "stalled_at_end"), [
    ([41, 42, 43, 44, 45], False),  # the heartbeat's event comes back every interval: progressing
    ([41, 41, 41, 41, 41], True),  # the stream brings nothing although the heartbeat query writes: stalled
    ([41, 41, 41, 42, 42], False),  # it moved within --stall-after
    ([41, 41, 0, 0, 0], True),  # restarted (its count starts over) and still nothing: still stalled
    ([41, 41, 0, 1, 1], False),  # restarted and streaming again
])
def test_a_heartbeat_source_is_stalled_when_its_event_count_stands(counts: list[int], stalled_at_end: bool) -> None:
    known = progress.sources({"cdc": pg(**HEARTBEAT)})
    tracks: dict[tuple[str, int], Track] = {}
    for i, n in enumerate(counts):
        streams = {"shop": progress.Stream(float(n), True)}
        tracks = track(tracks, progress.source_samples(streams, known), {("cdc", 0)}, i * 10.0)
    assert (("cdc", 0) in stalled(tracks, 40.0, 30.0)) is stalled_at_end


def test_watch_asks_for_configs_only_while_a_debezium_stream_is_served() -> None:
    w = progress.Watch("http://127.0.0.1:1/metrics", 30.0, 1.0)
    assert not w.wants_configs(0.0, 30.0)  # nothing of Debezium seen
    w.unknown_streams = True  # a scrape saw a stream of no known connector
    assert w.wants_configs(0.0, 30.0)
    w.learn({"cdc": pg(**HEARTBEAT), "sink": {"connector.class": "x"}}, 0.0)
    assert w.sources == {"shop": progress.Source("cdc", 10000)}
    assert not w.wants_configs(29.0, 30.0) and w.wants_configs(30.0, 30.0)  # then refreshed like declared configs
    assert not progress.Watch(None, 30.0, 1.0).wants_configs(0.0, 30.0)  # detection off: never
