#!/usr/bin/env python3
"""`make faults`: connect-health and kafka-connect-healthcheck 0.3.0 under the same faults, on a real broker and
Connect worker on 127.0.0.1; writes bench/FAULTS.md (expected vs observed for both).

Every case is a real fault on the real stack (launcher): a sink failing on this worker, Connect stopped and
started again with the cause still there, a second worker joining and leaving (a rebalance), the broker restarted,
the JVM frozen (SIGSTOP), hostile clients (1,000 half-sent requests and 50 MiB bodies) while a kubelet-like
prober measures /livez, a restart storm (many sinks failing at once, restart answers held by the launcher's fault
proxy) and a poison connector under sharedFate (both containers restarted at each /livez failure, with and without
--state-file). The faults a real worker cannot produce on demand (409 answers, a trickling answer, a
rotated password refused with 401, a flapping task, fuzzed answers) are covered by the unit suite against the
fake worker (tests/sidecar/test_stale_beliefs.py, test_properties.py) and listed as such in the report.
Every wait is bounded; all traffic goes to 127.0.0.1. Timings are recorded, never asserted.

    .tools/venv/bin/python bench/faults.py                 # all cases, writes bench/FAULTS.md (see below)
    .tools/venv/bin/python bench/faults.py --quick --out /tmp/FAULTS.md
    .tools/venv/bin/python bench/faults.py --only storm,poison --storm 20,500 --out /tmp/FAULTS.md
    .tools/venv/bin/python bench/faults.py --only classes   # failure classes, beside fa0baae's sidecar and kchc

All cases take well over 10 minutes here: the storm and poison cases alone took 713 s with 1,000 connectors (storm
of 20: about 1 min; of 500: about 2 min to create, 1.5 min observed, 1.5 min to delete; poison: 3.5 min); the
others about 150 s. ``run_cases`` is also what tests/integration/test_faults.py runs (its fast subset) in
`make test`, and ``restart_storm`` and ``kubelet_shared_fate`` are what test_restart_storm.py and test_faults.py's
poison test drive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import launcher
import requests
from measure import HealthcheckSidecar, ensure_kchc, process_tree, status_kb  # bench/: a script's own folder

SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
CH_ARGS = ["--poll-interval", "0.5", "--request-timeout", "1", "--unresponsive-after", "4", "--restart-attempts", "1",
           "--restart-backoff", "1", "--flap-window", "4"]
say = launcher.Progress("faults")


@dataclass
class Row:
    case: str
    kind: str  # no false positive | true positive | hostile client
    expected: str
    connect_health: str
    ch_ok: bool
    kchc: str = "-"
    kchc_ok: bool | None = None
    notes: str = ""


@dataclass
class Env:
    stack: launcher.Stack
    ch: launcher.Sidecar
    kchc: launcher.Sidecar | None
    workdir: Path
    rows: list[Row] = field(default_factory=list)


def probe(url: str, timeout: float = 2.0) -> str:
    """The answer a kubelet would get: the status code, 'timeout' or 'refused'."""
    try:
        return str(requests.get(url, timeout=timeout).status_code)
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        return "refused"


def until(check: Callable[[], bool], seconds: float, step: float = 0.2) -> float | None:
    """Seconds until ``check`` holds, or None if it never did within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    return None


class Sampler:
    """A kubelet-like prober: GET url every ``period`` s (timeout 1 s) in a thread; answers and latencies."""

    def __init__(self, url: str, period: float = 0.2, timeout: float = 1.0) -> None:
        self.url, self.period, self.timeout = url, period, timeout
        self.answers: list[str] = []
        self.latencies: list[float] = []
        self.failures: list[tuple[float, str, str]] = []  # (s since start, answer, body) of the first 1,000 non-200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        start = time.monotonic()
        while not self._stop.is_set() and len(self.answers) < 10_000:
            t0 = time.monotonic()
            answer, body = answer_with(session, self.url, self.timeout)
            self.latencies.append(time.monotonic() - t0)
            self.answers.append(answer)
            if answer != "200" and len(self.failures) < 1000:
                self.failures.append((t0 - start, answer, body[:500]))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))
        session.close()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def summary(self) -> str:
        counts = {a: self.answers.count(a) for a in sorted(set(self.answers))}
        return ", ".join(f"{n}× {a}" for a, n in counts.items()) or "no answer"

    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def probe_with(session: requests.Session, url: str, timeout: float) -> str:
    return answer_with(session, url, timeout)[0]


def answer_with(session: requests.Session, url: str, timeout: float) -> tuple[str, str]:
    """(the status code, 'timeout' or 'refused'; the body, '' without one)."""
    try:
        resp = session.get(url, timeout=timeout)
        return str(resp.status_code), resp.text
    except requests.Timeout:
        return "timeout", ""
    except requests.ConnectionError:
        return "refused", ""


def kchc_url(env: Env) -> str | None:
    return env.kchc.url + "/" if env.kchc is not None else None


# ------------------------------------------------------------------------------------------------- the cases

def case_true_positive_then_restart(env: Env) -> None:
    """FAILED on this worker past the ladder; then Connect stopped and started with the cause still there."""
    worker, ch = env.stack.worker, env.ch
    name = "faults-poison-sink"
    worker.put_connector(name, {"connector.class": SINK, "tasks.max": "1", "topics": f"{name}-topic",
                                "file": str(env.workdir / "missing-dir" / "out.txt")})
    took = until(lambda: probe(ch.url + "/livez") == "503", 60)
    k = kchc_url(env)
    kchc_answer = probe(k, timeout=5) if k else "-"
    env.rows.append(Row("task FAILED on this worker past the ladder", "true positive", "/livez 503",
                        f"/livez 503 after {took:.1f}s" if took is not None else "/livez never 503", took is not None,
                        f"/ {kchc_answer}", kchc_answer == "503" if k else None))

    # Connect goes away: the kubelet re-runs the startup probe on the new container.
    worker.stop()
    time.sleep(1.5)  # a few polls see the refused port
    down = {p: probe(ch.url + p) for p in ("/startupz", "/livez", "/readyz")}
    kchc_down = probe(k, timeout=5) if k else "-"
    env.rows.append(Row("Connect stopped (container restarting)", "no false positive",
                        "/startupz 503 (no stale 200), /readyz 503",
                        ", ".join(f"{p} {a}" for p, a in down.items()),
                        down["/startupz"] == "503" and down["/readyz"] == "503", f"/ {kchc_down}", None,
                        "kafka-connect-healthcheck has no startup probe of its own"))
    with Sampler(ch.url + "/livez") as while_starting:
        worker.start()
        started = until(lambda: probe(ch.url + "/startupz") == "200", 60)
    # The kubelet probes liveness only once the startup probe passed: sample from then on.
    with Sampler(ch.url + "/livez") as sampler, Sampler(k or ch.url + "/ping") as kchc_sampler:
        time.sleep(8)  # the new ladder runs (1 attempt, 1 s backoff) and the failure outlives it again
    readyz = requests.get(ch.url + "/readyz", timeout=5).json()
    spared = any(name in w and "pod restart" in w for w in readyz.get("warnings", []))
    env.rows.append(Row("Connect restarted, the same connector fails again past a new ladder (poison connector)",
                        "no false positive", "/livez 200 throughout (a 2nd pod restart would not fix it), "
                        "reported failed in /readyz warnings", f"/livez {sampler.summary()}; warning: {spared}",
                        set(sampler.answers) <= {"200"} and spared,
                        f"/ {kchc_sampler.summary()}" if k else "-",
                        ("503" not in kchc_sampler.answers) if k else None,
                        "kafka-connect-healthcheck would restart the pod again, and again; connect-health's "
                        f"/startupz passed {started if started is None else round(started, 1)} s after the worker "
                        f"was started, /livez while it started (not probed by the kubelet then): "
                        f"{while_starting.summary()} (503 once down longer than --unresponsive-after)"))
    worker.delete_connector(name)
    until(lambda: probe(ch.url + "/livez") == "200", 30)


def case_rebalance(env: Env) -> None:
    """A second worker joins and leaves: tasks move, UNASSIGNED for a while: nobody may fail liveness."""
    ch, k = env.ch, kchc_url(env)
    src = env.workdir / "rebalance-in.txt"
    src.write_text("a\nb\n")
    env.stack.worker.put_connector("faults-rebalance-src", {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "tasks.max": "2",
        "file": str(src), "topic": "faults-rebalance"})
    env.stack.worker.wait_connector_state("faults-rebalance-src", tasks=None, timeout=60)
    with Sampler(ch.url + "/livez") as sampler, Sampler(k or ch.url + "/ping") as kchc_sampler:
        second = env.stack.add_worker(name="faults-second")
        time.sleep(6)
        second.stop()
        time.sleep(6)
    env.rows.append(Row("a second worker joins, then leaves (rebalance)", "no false positive", "/livez 200 throughout",
                        f"/livez {sampler.summary()}", set(sampler.answers) <= {"200"},
                        f"/ {kchc_sampler.summary()}" if k else "-",
                        set(kchc_sampler.answers) <= {"200"} if k else None))
    env.stack.worker.delete_connector("faults-rebalance-src")


def case_failed_elsewhere(env: Env) -> None:
    """A sink FAILED on another worker: the pod of the worker without it stays healthy (worker scope)."""
    second = env.stack.add_worker(name="faults-other")
    time.sleep(3)  # the join's rebalance settles before the connector is placed
    name = "faults-remote-sink"
    env.stack.worker.put_connector(name, {"connector.class": SINK, "tasks.max": "1", "topics": f"{name}-topic",
                                          "file": str(env.workdir / "missing-dir" / "remote.txt")})
    failed_on = None
    deadline = time.monotonic() + 60
    while failed_on is None and time.monotonic() < deadline:
        status = env.stack.worker.connector_status(name) or {}
        tasks = [t for t in status.get("tasks", []) if t.get("state") == "FAILED"]
        failed_on = tasks[0]["worker_id"] if tasks else None
        time.sleep(0.5)
    clean = env.stack.worker if failed_on == second.worker_id else second
    workdir = env.workdir / "other"
    sc = env.stack.add(launcher.Sidecar(workdir, clean.url, [*CH_ARGS, "--worker-id", clean.worker_id],
                                        name="connect-health-other"), start=True)
    kchc = env.stack.add(HealthcheckSidecar(workdir, clean, ensure_kchc()), start=True) if env.kchc else None
    until(lambda: probe(sc.url + "/startupz") == "200", 30)
    with Sampler(sc.url + "/livez", 0.5) as live, Sampler(kchc.url + "/" if kchc else sc.url + "/ping", 0.5) as other:
        time.sleep(6)
    env.rows.append(Row("a task FAILED on another worker, judged by the pod without it", "no false positive",
                        "/livez 200 throughout (that pod's business)", f"/livez {live.summary()}",
                        failed_on is not None and set(live.answers) <= {"200"},
                        f"/ {other.summary()}" if kchc else "-", set(other.answers) <= {"200"} if kchc else None,
                        f"the task failed on {failed_on}"))
    sc.stop()
    if kchc is not None:
        kchc.stop()
    env.stack.worker.delete_connector(name)
    second.stop()


def case_broker_restart(env: Env) -> None:
    ch, k = env.ch, kchc_url(env)
    with Sampler(ch.url + "/livez") as sampler, Sampler(k or ch.url + "/ping") as kchc_sampler:
        env.stack.broker.restart()
        time.sleep(5)
    env.rows.append(Row("the broker restarted", "no false positive", "/livez 200 throughout",
                        f"/livez {sampler.summary()}", set(sampler.answers) <= {"200"},
                        f"/ {kchc_sampler.summary()}" if k else "-",
                        set(kchc_sampler.answers) <= {"200"} if k else None))


def case_frozen_jvm(env: Env) -> None:
    ch, k = env.ch, kchc_url(env)
    worker = env.stack.worker
    worker.pause()
    try:
        took = until(lambda: probe(ch.url + "/livez") == "503", 30)
        kchc_answer = probe(k, timeout=5) if k else "-"
        ping = probe(ch.url + "/ping", timeout=2)
    finally:
        worker.resume()
    back = until(lambda: probe(ch.url + "/livez") == "200", 60)
    env.rows.append(Row("Connect's JVM frozen (SIGSTOP)", "true positive",
                        "/livez 503 after --unresponsive-after (4 s); probes still answer",
                        f"/livez 503 after {took:.1f}s; /ping {ping}; 200 again {back:.1f}s after SIGCONT"
                        if took is not None and back is not None else f"503 after {took}, back after {back}",
                        took is not None and ping == "200", f"/ {kchc_answer} (5 s client timeout)",
                        kchc_answer == "503" if k else None,
                        "kafka-connect-healthcheck calls Connect on every probe, without a timeout"))


def case_slow_connect_and_409(env: Env) -> None:
    """Through launcher.FaultProxy: every request 2 s slower, then GET /connectors answered 409 for 10 s. A sidecar
    pair with production-like timeouts watches the worker through the proxy (no real worker does either on demand)."""
    from launcher.faultproxy import FaultProxy

    worker = env.stack.worker
    with FaultProxy(worker.url) as proxy:
        ch = env.stack.add(launcher.Sidecar(env.workdir / "slow", proxy.url, [
            "--poll-interval", "1", "--request-timeout", "5", "--unresponsive-after", "20", "--worker-id",
            worker.worker_id], name="connect-health-via-proxy"), start=True)
        kchc = None
        if env.kchc is not None:
            kchc = HealthcheckSidecar(env.workdir / "slow", worker, ensure_kchc())
            kchc.connect_url = proxy.url
            env.stack.add(kchc, start=True)
        until(lambda: probe(ch.url + "/startupz") == "200", 30)
        k = kchc.url + "/" if kchc is not None else ch.url + "/ping"
        proxy.delay = 2.0
        with Sampler(ch.url + "/livez", 0.5) as live, Sampler(ch.url + "/readyz", 0.5) as ready, \
                Sampler(k, 0.5) as other:
            time.sleep(12)
        proxy.delay = 0.0
        env.rows.append(Row("Connect slowed by 2 s per request (proxy)", "no false positive",
                            "/livez and /readyz 200 throughout (--request-timeout 5)",
                            f"/livez {live.summary()}; /readyz {ready.summary()}",
                            set(live.answers) <= {"200"} and set(ready.answers) <= {"200"},
                            f"/ {other.summary()} (1 s probe timeout)" if kchc else "-",
                            set(other.answers) <= {"200"} if kchc else None))
        time.sleep(2)
        proxy.conflict_for(10)
        with Sampler(ch.url + "/livez", 0.5) as live, Sampler(ch.url + "/readyz", 0.5) as ready, \
                Sampler(k, 0.5) as other:
            time.sleep(10)
        warned = any("rebalance" in w for w in requests.get(ch.url + "/readyz", timeout=5).json().get("warnings", []))
        env.rows.append(Row("GET /connectors answered 409 for 10 s (a long rebalance, proxy)", "no false positive",
                            "/livez and /readyz 200 (last answer kept, a warning) for up to --unresponsive-after",
                            f"/livez {live.summary()}; /readyz {ready.summary()}",
                            set(live.answers) <= {"200"} and set(ready.answers) <= {"200"},
                            f"/ {other.summary()}" if kchc else "-",
                            set(other.answers) <= {"200"} if kchc else None,
                            "the warning is gone once the 409s stop" if not warned else ""))
        ch.stop()
        if kchc is not None:
            kchc.stop()


def case_heavy_pages(env: Env, connectors: int, seconds: float) -> None:
    """/metrics and /status read by 24 clients at once at 3,000 connectors while /livez is probed every 50 ms.

    Against the stand-in Connect of bench/scale_connect.py: a real worker cannot hold 3,000 connectors here."""
    import scale_connect

    server = scale_connect.serve(scale_connect.Cluster(connectors))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sc = env.stack.add(launcher.Sidecar(env.workdir / "scale", url, [
        "--worker-id", scale_connect.worker(0), "--poll-interval", "5"], name="connect-health-3000"), start=True)
    try:
        until(lambda: probe(sc.url + "/startupz") == "200", 60)
        stop = threading.Event()
        pages: list[str] = []

        def reader(path: str) -> None:
            session = requests.Session()
            while not stop.is_set() and len(pages) < 100_000:
                pages.append(probe_with(session, sc.url + path, 10))
            session.close()

        readers = [threading.Thread(target=reader, args=("/metrics" if i % 2 else "/status",), daemon=True)
                   for i in range(24)]
        with Sampler(sc.url + "/livez", period=0.05) as sampler:
            for t in readers:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in readers:
                t.join(15)
        pid = sc.pid
        rss_kb = sum(status_kb(Path(f"/proc/{p}/status"), "VmHWM") for p in process_tree(pid)) if pid else 0
        timeouts = sampler.answers.count("timeout") + sampler.answers.count("refused")
        counts = {a: pages.count(a) for a in sorted(set(pages))}
        env.rows.append(Row(f"/metrics and /status read by 24 clients at once at {connectors:,} connectors, /livez "
                            f"probed every 50 ms for {seconds:g} s", "hostile client",
                            "/livez p99 < 50 ms, zero probe timeouts; pages beyond the lane get 503 at once",
                            f"p99 {sampler.p99_ms():.1f} ms over {len(sampler.answers)} probes, {timeouts} timeouts; "
                            f"pages: {', '.join(f'{n}× {a}' for a, n in counts.items())}; peak RSS "
                            f"{rss_kb / 1024:.0f} MiB", timeouts == 0 and sampler.p99_ms() < 50, "not run", None,
                            "stand-in Connect (bench/scale_connect.py); kafka-connect-healthcheck would make 3,001 "
                            "calls to Connect per probe"))
    finally:
        sc.stop()
        server.shutdown()
        server.server_close()


@contextmanager
def hostile_clients(port: int, slow: int, big_bodies: int) -> Iterator[int]:
    """``slow`` half-sent requests held open and ``big_bodies`` POSTs announcing 50 MiB, sending 1 MiB each."""
    socks: list[socket.socket] = []
    refused = 0
    deadline = time.monotonic() + 15  # a server that stops accepting gets 15 s of attempts, not one per client
    try:
        for _ in range(slow):
            if time.monotonic() > deadline:
                refused += 1
                continue
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                refused += 1
        chunk = b"x" * (1 << 20)
        for _ in range(big_bodies):
            if time.monotonic() > deadline:
                refused += 1
                continue
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                s.sendall(b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n")
                with suppress(OSError):
                    s.sendall(chunk)
                socks.append(s)
            except OSError:
                refused += 1
        yield refused
    finally:
        for s in socks:
            s.close()


def case_hostile(env: Env, slow: int, seconds: float) -> None:
    targets = [("connect-health", env.ch)] + ([("kafka-connect-healthcheck", env.kchc)] if env.kchc else [])
    results: dict[str, tuple[str, bool]] = {}
    for label, svc in targets:
        path = "/livez" if label == "connect-health" else "/"
        with hostile_clients(svc.port, slow, 5) as refused, Sampler(svc.url + path, period=0.05) as sampler:
            time.sleep(seconds)
        timeouts = sampler.answers.count("timeout") + sampler.answers.count("refused")
        p99 = sampler.p99_ms()
        text = (f"p99 {p99:.1f} ms over {len(sampler.answers)} probes, {timeouts} timeouts"
                f"{f', {refused} attacker connections not accepted' if refused else ''}")
        results[label] = (text, timeouts == 0 and p99 < 50)
    ch_text, ch_ok = results["connect-health"]
    kchc_text, kchc_ok = results.get("kafka-connect-healthcheck", ("-", False))
    env.rows.append(Row(f"{slow} half-sent requests and 5 bodies of 50 MiB, probed every 50 ms for {seconds:g} s",
                        "hostile client", "/livez p99 < 50 ms, zero probe timeouts", ch_text, ch_ok, kchc_text,
                        kchc_ok if env.kchc else None))


# ------------------------------------------------------------------------------------------------- restart storm

# A restart as the sidecar sends it (KIP-745), or per task on workers older than Kafka 3.0.
RESTART_PATH = r"/connectors/(?P<name>[^/?]+)/(?:tasks/\d+/)?restart(?:\?.*)?"
# Chart defaults compressed to fit a test: the poll's deadline is 3 x --request-timeout = 6 s, a restart answered
# 6 s late is a timed-out attempt, and a poll judged "answers too slowly" fails /livez after 10 s.
STORM_ARGS = ["--poll-interval", "1", "--request-timeout", "2", "--unresponsive-after", "10", "--restart-attempts",
              "1", "--restart-backoff", "1", "--flap-window", "4"]
STORM_COUNTS = (20, 500)  # 500: what one worker here creates in about 2 minutes (1,000 took 320 s)
STORM_DELAY = 6.0  # seconds the fault proxy holds each restart POST before forwarding it to the worker
SLOW_VERDICT = ("answers too slowly", "unresponsive")  # /livez reasons of a worker judged not answering


@dataclass
class Storm:
    """What a restart storm did: /livez as a kubelet saw it and the restarts, sent and received."""

    names: list[str]
    create_s: float  # from the first PUT until every connector had a FAILED task
    livez: Sampler  # connect-health's /livez every 0.5 s, from the first PUT to the end
    sent: dict[str, int]  # restart POSTs the sidecar sent per storm connector (the fault proxy's record)
    reached: dict[str, int]  # restart POSTs that reached the worker per storm connector (its request log)
    reached_s: float | None  # from the first PUT until every connector's restart had reached the worker
    seconds: float  # observed, from the first PUT (restarts begin as soon as the first connector failed)
    other: Sampler | None = None  # kafka-connect-healthcheck's / beside it

    def slow_verdicts(self) -> list[tuple[float, str, str]]:
        """/livez answers that judged Connect not answering (or no answer at all)."""
        return [f for f in self.livez.failures if f[1] != "503" or any(w in f[2] for w in SLOW_VERDICT)]

    def total_sent(self) -> int:
        return sum(self.sent.values())


def restart_storm(worker: launcher.Worker, workdir: Path, count: int, *, sidecar_args: list[str] | None = None,
                  delay: float = STORM_DELAY, window: float = 90.0, settle: float = 4.0,
                  kchc_exe: Path | None = None, say_: Callable[[str], None] = say) -> Storm:
    """``count`` FileStream sinks fail at once (their file under a missing folder) on ``worker``, watched by a
    `connect-health serve` (``STORM_ARGS`` + ``sidecar_args``) through a fault proxy that holds each restart POST
    ``delay`` s. Observed until every connector's restart reached the worker, or ``window`` s after they all failed,
    then ``settle`` s more (any extra restart shows). The connectors are deleted at the end."""
    from concurrent.futures import ThreadPoolExecutor

    from launcher.faultproxy import FaultProxy

    prefix = f"storm-{count}-{int(time.time()) % 100000}-"
    names = [f"{prefix}{i:04d}" for i in range(count)]
    rx = re.compile(RESTART_PATH)
    missing = workdir / "storm-missing-dir"
    with FaultProxy(worker.url) as proxy, ThreadPoolExecutor(4) as pool:
        proxy.slow("POST", RESTART_PATH, delay)
        ch = launcher.Sidecar(workdir / f"storm-{count}", proxy.url,
                              [*STORM_ARGS, *(sidecar_args or []), "--worker-id", worker.worker_id],
                              name=f"connect-health-storm-{count}").start(timeout=60)
        kchc = None
        if kchc_exe is not None:
            kchc = HealthcheckSidecar(workdir / f"storm-{count}", worker, kchc_exe)
            kchc.connect_url = proxy.url
            kchc.start(timeout=60)
        try:
            until(lambda: probe(ch.url + "/startupz") == "200", 60)
            offset = worker.request_log.offset()
            with Sampler(ch.url + "/livez", 0.5) as livez, \
                    Sampler(kchc.url + "/" if kchc else ch.url + "/ping", 0.5) as other:
                t0 = time.monotonic()
                list(pool.map(lambda n: worker.put_connector(n, {
                    "connector.class": SINK, "tasks.max": "1", "topics": "storm-topic",
                    "file": str(missing / f"{n}.txt")}, timeout=120), names))
                say_(f"storm: {count} connectors created in {time.monotonic() - t0:.1f}s")
                failed = until(lambda: len(failed_tasks(worker, prefix)) >= count, 60 + count * 0.3, step=1.0)
                create_s = time.monotonic() - t0
                say_(f"storm: {len(failed_tasks(worker, prefix))}/{count} FAILED after {create_s:.1f}s")
                reached_s = None
                end = time.monotonic() + window
                while time.monotonic() < end:
                    if len(restarts_of(worker.request_log.since(offset), rx, prefix)) >= count:
                        reached_s = time.monotonic() - t0
                        break
                    time.sleep(0.5)
                time.sleep(settle)
                observed = time.monotonic() - t0
            if failed is None:
                say_("storm: not every connector FAILED in time")
            reached = restarts_of(worker.request_log.since(offset), rx, prefix)
            sent: dict[str, int] = {}
            for _, method, path in list(proxy.seen):
                m = rx.fullmatch(path)
                if method == "POST" and m and m["name"].startswith(prefix):
                    sent[m["name"]] = sent.get(m["name"], 0) + 1
            return Storm(names, create_s, livez, sent, reached, reached_s, observed, other if kchc else None)
        finally:
            ch.stop()
            if kchc is not None:
                kchc.stop()
            t1 = time.monotonic()
            list(pool.map(lambda n: worker.delete_connector(n, timeout=120), names))
            say_(f"storm: {count} connectors deleted in {time.monotonic() - t1:.1f}s")


def failed_tasks(worker: launcher.Worker, prefix: str) -> set[str]:
    """The connectors named ``prefix``... with a FAILED task (one expanded status call)."""
    code, body = worker.request("GET", "/connectors?expand=status", timeout=30)
    if code != 200 or not isinstance(body, dict):
        return set()
    return {n for n, e in body.items() if n.startswith(prefix)
            and any(t.get("state") == "FAILED" for t in e.get("status", {}).get("tasks", []))}


def restarts_of(logged: list[launcher.Request], rx: re.Pattern[str], prefix: str) -> dict[str, int]:
    """Restart POSTs per connector named ``prefix``... in the worker's request log."""
    out: dict[str, int] = {}
    for r in logged:
        m = rx.fullmatch(r.path)
        if r.method == "POST" and m and m["name"].startswith(prefix):
            out[m["name"]] = out.get(m["name"], 0) + 1
    return out


def case_restart_storm(env: Env, count: int, window: float) -> None:
    env.ch.stop()  # the main sidecar would restart the storm's connectors too, straight to the worker
    try:
        s = restart_storm(env.stack.worker, env.workdir, count, window=window,
                          kchc_exe=ensure_kchc() if env.kchc is not None else None)
    finally:
        env.ch.start(timeout=60)
    attempts = int(STORM_ARGS[STORM_ARGS.index("--restart-attempts") + 1])
    timeout = float(STORM_ARGS[STORM_ARGS.index("--request-timeout") + 1])
    slow = s.slow_verdicts()
    bounded = s.total_sent() <= count * attempts and max(s.sent.values(), default=0) <= attempts
    every = len(s.reached) == count
    rate = len(s.reached) / s.seconds if s.seconds else 0.0
    if every and s.reached_s is not None:
        reached = f"every connector's restart reached the worker {s.reached_s:.0f} s after the first PUT"
    else:
        pace = f"one per {1 / rate:.1f} s: all in about {count / rate:.0f} s" if rate else "none"
        reached = (f"restarts of {len(s.reached)}/{count} connectors reached the worker in the {s.seconds:.0f} s "
                   f"since the first PUT ({pace})")
    other = s.other
    env.rows.append(Row(
        f"restart storm: {count:,} FileStream sinks failing at once, restart answers {STORM_DELAY:g} s late (proxy)",
        "no false positive",
        f"/livez never 503 'answers too slowly'; every failing connector restarted over REST; restart POSTs "
        f"<= {count:,} x --restart-attempts",
        f"/livez {s.livez.summary()}, {len(slow)} judging Connect unresponsive; {reached}; {s.total_sent()} restart "
        f"POSTs sent", not slow and bounded and (every or rate > 0),
        f"/ {other.summary()}; 0 restarts (it restarts nothing)" if other is not None else "-",
        False if other is not None else None,
        f"sidecar `{' '.join(STORM_ARGS)}` (poll deadline {3 * timeout:g} s); {count:,} connectors created and FAILED "
        f"in {s.create_s:.0f} s; each restart is a timed-out attempt ({STORM_DELAY:g} s > --request-timeout) the "
        f"worker still receives; the lane sends one at a time, so n restarts take up to n x --request-timeout"))


# ------------------------------------------------------------------------------------------------- sharedFate poison

POISON_ARGS = [*CH_ARGS, "--pod-restarts", "2", "--pod-restart-window", "120"]


def kubelet_shared_fate(worker: launcher.Worker, ch: launcher.Sidecar, seconds: float, *, period: float = 0.5,
                        failures: int = 2, restart_connect: bool = True) -> list[float]:
    """A kubelet's liveness probe on ``ch``/livez (every ``period`` s once /startupz passed) with sharedFate: after
    ``failures`` failures in a row, both containers restart (the sidecar and the Connect worker, stopped and started
    again; only the sidecar with ``restart_connect=False``). Runs ``seconds``; returns the times (since start) of
    the restarts. No crash-loop back-off."""
    kills: list[float] = []
    t0 = time.monotonic()
    failed = 0
    while time.monotonic() - t0 < seconds:
        if probe(ch.url + "/startupz") != "200":
            failed = 0
            time.sleep(period)
            continue
        failed = failed + 1 if probe(ch.url + "/livez", timeout=1) != "200" else 0
        if failed >= failures:
            kills.append(time.monotonic() - t0)
            what = "both containers" if restart_connect else "the sidecar"
            say(f"poison: /livez failed {failures}x: restarting {what} ({len(kills)})")
            ch.stop()
            if restart_connect:
                worker.stop()
                worker.start()
            ch.start(timeout=60)
            failed = 0
        time.sleep(period)
    return kills


def case_shared_fate_poison(env: Env, seconds: float) -> None:
    """A connector failing for good under sharedFate: the pod restarts it costs with and without --state-file."""
    worker = env.stack.worker
    name = "faults-shared-fate-poison"
    worker.put_connector(name, {"connector.class": SINK, "tasks.max": "1", "topics": f"{name}-topic",
                                "file": str(env.workdir / "missing-dir" / "poison.txt")})
    counts: dict[bool, list[float]] = {}
    kchc_after: Sampler | None = None
    try:
        for with_state in (True, False):
            args = [*POISON_ARGS, "--worker-id", worker.worker_id]
            if with_state:
                args += ["--state-file", str(env.workdir / "poison-state.json")]
            ch = env.stack.add(launcher.Sidecar(env.workdir / f"poison-{with_state}", worker.url, args,
                                                name=f"connect-health-poison-{'state' if with_state else 'memory'}"),
                               start=True)
            counts[with_state] = kubelet_shared_fate(worker, ch, seconds)
            if with_state and env.kchc is not None:
                # kafka-connect-healthcheck after that pod restart: does it fail again (another restart)?
                with Sampler(env.kchc.url + "/", 0.5) as kchc_after:
                    time.sleep(5)
            ch.stop()
    finally:
        worker.delete_connector(name)
    kept, lost = counts[True], counts[False]
    env.rows.append(Row(
        "sharedFate: a connector failing for good, both containers restarted at each /livez failure (kubelet "
        f"emulated, {seconds:g} s each way)", "no false positive",
        "pod restarts <= --pod-restarts (2), and 1 when the first did not fix it",
        f"with --state-file: {len(kept)} pod restart(s) (at {', '.join(f'{t:.0f}' for t in kept)} s); without: "
        f"{len(lost)} (at {', '.join(f'{t:.0f}' for t in lost)} s)", len(kept) == 1,
        f"/ {kchc_after.summary()} after the restart: restarted again at each probe failure"
        if kchc_after is not None else "-", ("503" not in kchc_after.answers) if kchc_after is not None else None,
        f"sidecar `{' '.join(POISON_ARGS)}`; kubelet: /livez every 0.5 s once /startupz passed, 2 failures in a row "
        "restart Connect and the sidecar (no crash-loop back-off); the connector's FAILED state persists in Connect's "
        "config and status topics"))


# ------------------------------------------------------------------------------------------------- running

FAKE_ONLY = [
    ("restarts answered 409 (bounded)", "tests/sidecar/test_stale_beliefs.py::test_restarts_answered_409_*"),
    ("a worker trickling its answer (one byte every 0.2 s)", "test_a_trickling_*: no real worker does it"),
    ("credential rotation (401 until the mounted file changes)", "test_a_rotated_password_file_*"),
    ("a task FAILED 75 % of the time (flapping)", "test_a_task_failed_75_percent_*"),
    ("fuzzed Connect answers, memory bounded", "tests/sidecar/test_properties.py (hypothesis, 32 MiB body cap)"),
]


CASES = ("poison-restart", "hostile", "rebalance", "elsewhere", "broker", "frozen", "slow", "pages", "storm", "poison")
QUICK = ("poison-restart", "hostile")


def run_cases(workdir: Path, *, with_kchc: bool = True, quick: bool = False, only: Collection[str] | None = None,
              storm_counts: Sequence[int] = STORM_COUNTS, storm_window: float = 90.0,
              poison_seconds: float = 90.0) -> list[Row]:
    """Start a stack and both sidecars, run the cases (``only``: those of CASES; ``quick``: QUICK), stop
    everything; the rows of the report."""
    chosen = set(QUICK if quick else CASES) & set(only if only is not None else CASES)
    with launcher.Stack(workdir / "stack", launcher.KAFKA_VERSION, progress=say) as stack:
        ch = stack.add(launcher.Sidecar(workdir, stack.connect_url, [*CH_ARGS, "--worker-id",
                                                                    stack.worker.worker_id]), start=True)
        kchc = stack.add(HealthcheckSidecar(workdir, stack.worker, ensure_kchc()), start=True) if with_kchc else None
        env = Env(stack, ch, kchc, workdir)
        until(lambda: probe(ch.url + "/startupz") == "200", 60)
        hostile = 200 if quick else 1000
        steps: list[tuple[str, str, Callable[[], None]]] = [
            ("poison-restart", "FAILED past the ladder, then Connect restarted with the cause still there",
             lambda: case_true_positive_then_restart(env)),
            ("hostile", f"{hostile} hostile clients", lambda: case_hostile(env, hostile, 3 if quick else 10)),
            ("rebalance", "rebalance", lambda: case_rebalance(env)),
            ("elsewhere", "FAILED on another worker", lambda: case_failed_elsewhere(env)),
            ("broker", "broker restart", lambda: case_broker_restart(env)),
            ("frozen", "frozen JVM", lambda: case_frozen_jvm(env)),
            ("slow", "slow Connect and 409s (proxy)", lambda: case_slow_connect_and_409(env)),
            ("pages", "heavy pages at 3,000 connectors", lambda: case_heavy_pages(env, 3000, 10)),
            *[("storm", f"restart storm of {n:,} connectors", lambda n=n: case_restart_storm(env, n, storm_window))
              for n in storm_counts],
            ("poison", "sharedFate poison connector, with and without --state-file",
             lambda: case_shared_fate_poison(env, poison_seconds)),
        ]
        for key, what, run in steps:
            if key in chosen:
                say(f"case: {what}")
                run()
        return env.rows


def mark(ok: bool | None) -> str:
    return {True: "as expected", False: "**not as expected**", None: "-"}[ok]


def report(rows: list[Row], started: dt.datetime, seconds: float, only: Collection[str] | None = None) -> str:
    run = f"`bench/faults.py --only {','.join(only)}`" if only else "`make faults` (bench/faults.py)"
    lines = ["# Faults: connect-health and kafka-connect-healthcheck 0.3.0 under the same faults", "",
             f"Generated by {run} on {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s: a real "
             f"Kafka {launcher.KAFKA_VERSION} broker and Connect worker on 127.0.0.1, connect-health "
             f"(`{' '.join(CH_ARGS)}`) and kafka-connect-healthcheck 0.3.0 from PyPI (its `/`, worker id set) "
             "watching the same worker. Timings come from a shared 2-core machine.", "",
             "| case | kind | expected (connect-health) | connect-health observed | | kafka-connect-healthcheck "
             "observed | | notes |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case} | {r.kind} | {r.expected} | {r.connect_health} | {mark(r.ch_ok)} | {r.kchc} | "
                     f"{mark(r.kchc_ok)} | {r.notes} |")
    lines += ["", "Faults a real worker cannot produce on demand, covered against the fake worker in `make test`:", ""]
    lines += [f"- {what}: {where}" for what, where in FAKE_ONLY]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="two cases, 200 hostile clients (about a minute)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "FAULTS.md"))
    ap.add_argument("--no-kchc", action="store_true", help="connect-health only (no PyPI install)")
    ap.add_argument("--only", type=lambda v: [c.strip() for c in v.split(",") if c.strip()], default=None,
                    metavar="CASE,...", help=f"only these cases, of: {', '.join(CASES)}")
    ap.add_argument("--storm", type=lambda v: [int(n) for n in v.split(",")], default=list(STORM_COUNTS),
                    metavar="N,...", help="connectors failing at once in each restart storm (default "
                    f"{','.join(map(str, STORM_COUNTS))}; 1,000 took 320 s to create and as long to delete here)")
    ap.add_argument("--classes-before", default="fa0baae", metavar="REF",
                    help="--only classes: the commit whose sidecar runs beside this one (default: before the classes)")
    args = ap.parse_args()
    if args.only == ["classes"]:  # issue 21: its own stack (Debezium, PostgreSQL, a test-only plugin); a table
        from failure_classes import run as run_classes  # bench/: a script's own folder

        with tempfile.TemporaryDirectory(prefix="classes-", dir=launcher.TOOLS / "tmp") as tmp:
            table, took = run_classes(Path(tmp), args.classes_before)
        out = Path(__file__).parent / "results" / "classes.md"
        when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
        out.write_text(f"# Failure classes (`bench/faults.py --only classes`, {when} UTC, {took:.0f} s)\n\n{table}")
        print(table)
        return 0
    unknown = sorted(set(args.only or ()) - set(CASES))
    if unknown:
        ap.error(f"--only: unknown case {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-", dir=launcher.TOOLS / "tmp") as tmp:
        rows = run_cases(Path(tmp), with_kchc=not args.no_kchc, quick=args.quick, only=args.only,
                         storm_counts=args.storm)
    text = report(rows, started, time.monotonic() - t0, args.only)
    Path(args.out).write_text(text)
    say(f"wrote {args.out}")
    print(text)
    bad = [r.case for r in rows if not r.ch_ok]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
