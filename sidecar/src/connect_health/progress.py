"""Stalled units: tasks that stay RUNNING while doing nothing (issue 21).

Connect's REST API says RUNNING for a sink task blocked in ``put()`` on a hung downstream; only the worker's own
metrics show it. The chart runs the Prometheus JMX exporter agent in the Connect container; one scrape of it per
poll (``--worker-metrics-url``, on localhost, never on the probe path) gives, per sink task on this worker:

- its *position*: ``kafka_connect_sink_task_sink_record_read_total`` (Connect's ``sink-record-read-total``, records
  the task's consumer handed it since the task started);
- its *lag*: the sum of ``kafka_connect_sink_consumer_records_lag`` over its partitions (the consumer's last known
  ``records-lag`` per partition of the client ``connector-consumer-<connector>-<task>``; a Value stat, so it keeps
  its last value while the task is blocked and does not poll). The client-level ``records-lag-max`` is no stand-in:
  it is a max over a time window, NaN once the blocked consumer has not fetched within it, so it would clear a
  stall that goes on.

A RUNNING task with lag above zero whose position has not moved for ``--stall-after`` seconds is *stalled*; a task
with lag 0 is idle and never stalled, a task with no lag known is not judged. Only a position moving forward is
progress: a restarted task counts from 0 again, which is no progress yet (its clock goes on from the new count), so
a restart that does not help keeps the task stalled and the ladder goes on to its end.
Sources: Connect's own source metrics keep moving while a source is stuck (Debezium emits heartbeat records while
its database sends nothing), so a source is judged only where a connector gives a real progress signal. One is read:
Debezium PostgreSQL's streaming metrics (``debezium.postgres:type=connector-metrics,context=streaming,
server=<topic.prefix>``, served by the chart's rules as ``debezium_postgres_streaming_events_seen_total`` and
``debezium_postgres_streaming_connected``). ``TotalNumberOfEventsSeen`` counts the change events the task took from
the replication stream, filtered ones included (Debezium's CommonEventMeter.onEvent/onFilteredEvent); a plain
heartbeat does not move it (PostgresStreamingChangeEventSource.processMessages dispatches a heartbeat record when
nothing arrives, outside the metrics). With ``heartbeat.action.query`` the connector writes to its database every
``heartbeat.interval.ms`` and that write comes back through the stream as an event, so an event is expected at
least that often while the task streams (``Connected``, set once the snapshot is done): such a source's position is
its event count and it is always ``waiting``. The MBean names the connector by its ``topic.prefix``, so the poller
lends the configs of the connectors with tasks here (:func:`sources`); docs/health/stalled.md.

:func:`track` and :func:`stalled` are pure (state in, verdict out); :class:`Watch` is the poller's part: it scrapes
(bounded in bytes and time) and keeps the tracks.
"""

from __future__ import annotations

import http.client
import math
import re
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import HealthSettings
from .model import is_local
from .snapshot import Snapshot
from .transport import Transport

Key = tuple[str, int]  # (connector, task id), as model.Key

POSITION = "kafka_connect_sink_task_sink_record_read_total"
LAG = "kafka_connect_sink_consumer_records_lag"
EVENTS = "debezium_postgres_streaming_events_seen_total"
CONNECTED = "debezium_postgres_streaming_connected"
WANTED = (POSITION, LAG, EVENTS, CONNECTED)
SCRAPED = (b"kafka_connect_sink_", b"debezium_postgres_streaming_")  # the lines kept of the exporter's answer
POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
LIMIT = 64 * 1024 * 1024  # bytes read from the exporter at most (about 4,000 tasks' worth of series)
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


class ScrapeError(Exception):
    """The worker's metrics could not be read; the message is one line."""


@dataclass(frozen=True)
class Sample:
    """What one scrape says of one task."""

    position: float  # a counter that moves while the task makes progress
    waiting: bool  # work is waiting for it (lag > 0), so its position should move
    detail: str  # e.g. "lag 345", shown in the reason


@dataclass(frozen=True)
class Stream:
    """What one scrape says of one Debezium streaming MBean (by its ``server``, the connector's topic.prefix)."""

    events: float  # TotalNumberOfEventsSeen
    connected: bool  # Connected: streaming (the snapshot is over)


@dataclass(frozen=True)
class Source:
    """A Debezium PostgreSQL connector whose stream must bring an event at least every ``interval_ms``."""

    connector: str
    interval_ms: int


@dataclass(frozen=True)
class Track:
    position: float
    since: float  # when the position last moved (or work started waiting)
    waiting: bool
    detail: str


def _labels(text: str) -> dict[str, str] | None:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None:
            return None
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        pos = m.end()
        if not m.group(3):
            break
    return out if text[pos:].strip() == "" else None


def _series(lines: Iterable[str]) -> Iterable[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of the wanted series' lines that can be read (finite values)."""
    for line in lines:
        if not line.startswith(WANTED):
            continue
        m = _LINE.match(line)
        if m is None or m.group(1) not in WANTED:
            continue
        labels = _labels(m.group(2))
        if labels is None:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if not math.isinf(value) and not math.isnan(value):
            yield m.group(1), labels, value


def parse_streams(lines: Iterable[str]) -> dict[str, Stream]:
    """{server: Stream} of every Debezium PostgreSQL streaming MBean with both series; other lines are skipped."""
    events: dict[str, float] = {}
    connected: dict[str, bool] = {}
    for name, labels, value in _series(lines):
        server = labels.get("server")
        if server is None:
            continue
        if name == EVENTS:
            events[server] = value
        elif name == CONNECTED:
            connected[server] = value == 1.0
    return {server: Stream(n, connected[server]) for server, n in events.items() if server in connected}


def sources(configs: Mapping[str, Mapping[str, str] | None]) -> dict[str, Source]:
    """{topic.prefix: Source} of the connectors (by name: config) where progress is expected: Debezium PostgreSQL
    with ``heartbeat.interval.ms`` > 0 and a ``heartbeat.action.query``. Plain heartbeats are no progress signal
    (they do not come through the stream), so a connector without the query is never judged."""
    out: dict[str, Source] = {}
    for name, config in sorted(configs.items()):
        if not config or config.get("connector.class") != POSTGRES:
            continue
        prefix = (config.get("topic.prefix") or "").strip()
        interval = (config.get("heartbeat.interval.ms") or "").strip()
        if not prefix or not interval.isdigit() or int(interval) <= 0:
            continue
        if not (config.get("heartbeat.action.query") or "").strip():
            continue
        out[prefix] = Source(name, int(interval))
    return out


def source_samples(streams: Mapping[str, Stream], known: Mapping[str, Source]) -> dict[Key, Sample]:
    """The samples of the Debezium tasks (task 0: the PostgreSQL connector has one) whose stream is known."""
    out: dict[Key, Sample] = {}
    for server, stream in streams.items():
        src = known.get(server)
        if src is not None:
            detail = f"no change event although heartbeat.action.query runs every {src.interval_ms} ms"
            out[(src.connector, 0)] = Sample(stream.events, stream.connected, detail)
    return out


def parse_lines(lines: Iterable[str]) -> dict[Key, Sample]:
    """The samples of every sink task the exporter's text names; lines that cannot be read are skipped."""
    position: dict[Key, float] = {}
    lag: dict[Key, float] = {}
    for name, labels, value in _series(lines):
        if "connector" not in labels or not labels.get("task", "").isdigit():
            continue
        key = (labels["connector"], int(labels["task"]))
        if name == POSITION:
            position[key] = value
        elif name == LAG:
            lag[key] = lag.get(key, 0.0) + max(0.0, value)
    out: dict[Key, Sample] = {}
    for key, pos in position.items():
        known = lag.get(key)
        if known is not None:
            out[key] = Sample(position=pos, waiting=known > 0, detail=f"lag {known:.0f}")
    return out


def scrape(url: str, timeout: float, limit: int = LIMIT) -> dict[Key, Sample]:
    """The sink tasks' samples of the exporter's text (:func:`scrape_lines`)."""
    return parse_lines(scrape_lines(url, timeout, limit))


def scrape_lines(url: str, timeout: float, limit: int = LIMIT) -> list[str]:
    """GET the exporter's text, reading at most ``limit`` bytes within ``timeout`` seconds in all: the lines of the
    series read here. Raises ScrapeError (one line) when it cannot."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    read = 0
    try:
        parts = urlsplit(url)
        answer = Transport(url, timeout=timeout).send(
            "GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), None,
            {"Accept": "text/plain", "User-Agent": "connect-health"})
        try:
            if answer.status != 200:
                raise ScrapeError(f"worker metrics at {url} answered {answer.status}")
            while True:
                raw = answer.readline(1024 * 1024)
                if not raw:
                    break
                read += len(raw)
                if read > limit:
                    raise ScrapeError(f"worker metrics at {url}: more than {limit} bytes, not read further")
                if time.monotonic() > deadline:
                    raise ScrapeError(f"worker metrics at {url}: not read within {timeout:g}s")
                if raw.startswith(SCRAPED):
                    lines.append(raw.decode("utf-8", "replace"))
        finally:
            answer.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ScrapeError(f"worker metrics at {url} not read: {reason}") from None
    return lines


def track(previous: Mapping[Key, Track], samples: Mapping[Key, Sample], running: Collection[Key],
          now: float) -> dict[Key, Track]:
    """The tracks after one scrape: one per RUNNING task on this worker with a sample. Its clock starts over when
    its position moves forward, when it is idle (nothing waiting) and when it was not tracked before; a position
    going back (the task restarted) is taken as the new count without starting the clock over."""
    out: dict[Key, Track] = {}
    for key in running:
        s = samples.get(key)
        if s is None:
            continue
        p = previous.get(key)
        if p is None or not s.waiting or not p.waiting or s.position > p.position:
            out[key] = Track(s.position, now, s.waiting, s.detail)
        else:
            out[key] = Track(s.position, p.since, True, s.detail)
    return out


def stalled(tracks: Mapping[Key, Track], now: float, stall_after: float) -> dict[Key, tuple[float, str]]:
    """{task: (seconds without progress while work waited, detail)} of the stalled tasks."""
    return {k: (now - t.since, t.detail) for k, t in sorted(tracks.items())
            if t.waiting and now - t.since >= stall_after}


def running_here(snapshot: Snapshot, settings: HealthSettings) -> set[Key]:
    """The RUNNING tasks this pod judges (on this worker; every one with ``--scope cluster``)."""
    return {(c.name, t.id) for c in snapshot.connectors.values() for t in c.tasks
            if t.state == "RUNNING" and is_local(t.worker_id, settings)}


class Watch:
    """The poller's stall detection: at most one scrape per poll, after its REST calls."""

    def __init__(self, url: str | None, stall_after: float, timeout: float) -> None:
        self.url = url
        self.stall_after = stall_after
        self.timeout = timeout
        self.tracks: dict[Key, Track] = {}
        self.stalled: dict[Key, tuple[float, str]] = {}
        self.note: str | None = None  # why the last scrape failed: stall detection is blind meanwhile
        self.sources: dict[str, Source] = {}  # Debezium sources expected to progress, by topic.prefix
        self.sources_at: float | None = None  # when they were last learnt from connector configs
        self.unknown_streams = False  # the last scrape saw a Debezium stream of no known connector
        self.configs_of: frozenset[str] = frozenset()  # whose configs to learn: connectors running tasks here

    def wants_configs(self, now: float, refresh: float) -> bool:
        """Whether this poll's GET /connectors should bring the configs (expand=info): a Debezium stream is served
        here and the configs are older than ``refresh`` seconds (or an unknown stream appeared, at most that often)."""
        if self.url is None or not (self.unknown_streams or self.sources):
            return False
        return self.sources_at is None or now - self.sources_at >= refresh

    def learn(self, configs: Mapping[str, Mapping[str, str] | None], now: float) -> None:
        """The configs of :attr:`configs_of` (from an answer with expand=info, which keeps their configs)."""
        self.sources, self.sources_at = sources(configs), now

    def observe(self, running: Collection[Key], now: float) -> None:
        """Scrape (only when a task runs here) and judge the RUNNING tasks on this worker."""
        if self.url is None:
            return
        if not running:
            self.tracks, self.stalled, self.note = {}, {}, None
            return
        try:
            lines = scrape_lines(self.url, self.timeout)
        except ScrapeError as exc:
            # Nothing is known of this poll: keep the tracks (a position unchanged across the gap is still
            # unchanged), judge nothing meanwhile.
            self.tracks = {k: t for k, t in self.tracks.items() if k in running}
            self.stalled, self.note = {}, f"stall detection blind: {exc}"
            return
        streams = parse_streams(lines)
        self.unknown_streams = any(server not in self.sources for server in streams)
        self.configs_of = frozenset(name for name, _ in running) if streams else frozenset()
        samples = {**parse_lines(lines), **source_samples(streams, self.sources)}
        self.tracks = track(self.tracks, samples, running, now)
        self.stalled, self.note = stalled(self.tracks, now, self.stall_after), None

    @property
    def working(self) -> bool:
        """On, and the last scrape (if one was needed) read the worker's metrics."""
        return self.url is not None and self.note is None

    def reset(self) -> None:
        """A new Connect incarnation: its tasks start over."""
        self.tracks, self.stalled = {}, {}

    def tasks(self) -> dict[str, tuple[int, ...]]:
        """{connector: its stalled task ids}: the restart ladder's work besides FAILED units."""
        out: dict[str, tuple[int, ...]] = {}
        for name, task in self.stalled:
            out[name] = (*out.get(name, ()), task)
        return out
