"""Scale benchmark (issue 12): one sidecar's cost at N connectors x 4 tasks over 10 workers, this pod owning 1/10.

Connect is the stand-in of scale_connect.py (a real worker cannot hold 3,000 connectors on this machine; the
sidecar's cost depends only on the size and shape of the answers, which the stand-in serves as Connect shapes
them). For each N the real `connect-health serve` runs as its own process against it (--scope worker, this pod
worker 10.0.0.1:8083, --poll-interval 1), and this measures, with nothing else asking the sidecar anything while
polls are counted:

- RSS (VmRSS, and the peak VmHWM) of the sidecar process after the polls;
- CPU per poll: the process's user+system CPU time over the polls, divided by the polls the stand-in answered;
- /metrics: series (sample lines) and bytes per scrape; /status JSON (this worker's view, and one page of the
  whole cluster) and HTML: median time of 5 and bytes; /livez: p50/p99 of 300 sequential requests;
- CPU per poll again with the answer changing at every poll (one task's state flips: the sidecar decodes each);
- at the largest N, probes isolated from pages (issue 22): /livez p50/p99 one probe at a time (a new connection
  each, as the kubelet probes) on the probe port (--probe-port, as the chart runs it) and on the main port, first
  with nobody else asking, then while 24 clients read /metrics, /status JSON and /status HTML as fast as they are
  answered (bench/readers.py, each in its own process, the readers at nice 10: they stand for clients on other
  machines), three interleaved rounds, medians;
- with 10 declared connectors as well: CPU per poll averaged over a config fetch (every 30 s) and the polls between;
- kafka-connect-healthcheck 0.3.0 (1 + N REST calls per probe) against the same stand-in: median probe time, and
  the ratio to connect-health's /livez p50.

    python bench/scale.py                      # N = 100, 1000, 3000; writes results/scale.json and scale.md
    python bench/scale.py --sizes 100 --polls 5 --skip-kchc   # a quick check

The "before" column is the issue's own measurement of the previous version (expand=info on every poll, every
connector in full, one-hot series for every unit of the cluster) on the same kind of stand-in. Timing targets
are reported met or not; nothing fails on speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import scale_connect
from measure import free_port, process_tree, rss_once_kb, status_kb, stop

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
SIZES = (100, 1000, 3000)
WORKER = scale_connect.worker(0)
TARGETS = {"rss_mb_3000": 50.0, "cpu_ms_per_poll_3000": 20.0, "series_3000": 3000, "status_json_ms_3000": 50.0,
           "rss_mb_100": 40.0, "livez_p99_ms_with_readers": 50.0, "livez_p99_ratio_with_readers": 3.0}
READERS = 24
NICE_READERS = int(os.environ.get("BENCH_READERS_NICE", "10"))  # 0 to measure them at the sidecar's priority
# issue 12, measured on the previous version: N -> (answer MB, RSS MB, mean poll ms, series, /metrics MB,
# /status HTML s, /status HTML MB)
BEFORE = {100: (0.27, 43.5, 26, 3127, 0.25, 0.046, 0.15), 1000: (2.7, 72.5, 159, 31027, 2.4, 0.31, 1.5),
          3000: (8.2, 153.7, 408, 93027, 7.3, 1.33, 4.4)}
CLK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"scale: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def status_mb(pid: int, key: str) -> float:
    return status_kb(Path(f"/proc/{pid}/status"), key) / 1024


def rss_once_mb(pid: int) -> float:
    """The sidecar's RSS with its probe process's own pages (measure.rss_once_kb)."""
    return rss_once_kb(process_tree(pid)) / 1024


class Client:
    """One keep-alive connection to 127.0.0.1:port; get() returns (status, body, seconds)."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        t = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=headers or {})
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request opens a new connection
            raise
        return resp.status, body, time.perf_counter() - t

    def close(self) -> None:
        self.conn.close()


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"scale: gave up waiting for {what} after {timeout:g}s")


def start_sidecar(connect_port: int, workdir: Path,
                  connectors_file: Path | None) -> tuple[subprocess.Popen[bytes], int, int]:
    port, probe_port = free_port(), free_port()
    cmd = [str(VENV_BIN / "connect-health"), "serve", "--connect-url", f"http://127.0.0.1:{connect_port}",
           "--worker-id", WORKER, "--scope", "worker", "--poll-interval", "1", "--host", "127.0.0.1",
           "--port", str(port), "--probe-port", str(probe_port)]
    if connectors_file is not None:
        cmd += ["--connectors-file", str(connectors_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_")}
    log = open(workdir / f"sidecar-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, port, probe_port


def cpu_per_poll(proc: subprocess.Popen[bytes], cluster: scale_connect.Cluster, polls: int) -> dict[str, Any]:
    """CPU of the sidecar over ``polls`` polls (counted at the stand-in), with nobody else asking it anything."""
    def answered() -> int:
        return cluster.calls["expanded"] + cluster.calls["expanded_info"]
    start_polls, start_cpu = answered(), cpu_seconds(proc.pid)
    wait_until(lambda: answered() - start_polls >= polls, polls * 20 + 60, f"{polls} polls")
    n, cpu = answered() - start_polls, cpu_seconds(proc.pid) - start_cpu
    return {"polls": n, "cpu_s": round(cpu, 3), "cpu_ms_per_poll": round(1000 * cpu / n, 1),
            "with_configs": cluster.calls["expanded_info"]}


def after_poll(cluster: scale_connect.Cluster) -> None:
    """Return shortly after the stand-in answered the next poll (the sidecar polls every second)."""
    seen = cluster.calls["expanded"] + cluster.calls["expanded_info"]
    wait_until(lambda: cluster.calls["expanded"] + cluster.calls["expanded_info"] > seen, 30, "a poll")
    time.sleep(0.25)


def clients(mode: str, port: int, niceness: int | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """bench/readers.py in its own process; the readers at NICE_READERS unless ``niceness`` says otherwise."""
    cmd = [sys.executable, str(BENCH / "readers.py"), mode, "--port", str(port)]
    for k, v in kwargs.items():
        cmd += [f"--{k}", str(v)]
    if niceness is None:
        niceness = NICE_READERS if mode == "read" else 0
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(niceness)) if niceness else None)


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    return dict(json.loads(out.strip().splitlines()[-1])) if out.strip() else {"error": f"exit {proc.returncode}"}


ROUNDS = 3  # interleaved rounds of the isolation measurement: each figure is the median of the rounds


def isolation(port: int, probe_port: int) -> dict[str, Any]:
    """/livez one probe at a time on both ports, alone and while READERS clients read the pages (issue 22): ROUNDS
    interleaved rounds, each port's p50/p99/max the median over the rounds (a p99 of one round on a shared 2-core
    machine swings by 2x)."""
    out: dict[str, Any] = {"readers": READERS, "readers_nice": NICE_READERS, "rounds": []}
    reads = []
    for _ in range(ROUNDS):
        one: dict[str, Any] = {}
        for key, p, count in (("probe_port", probe_port, 1000), ("main_port", port, 500)):
            one[f"{key}_alone"] = result(clients("probe", p, count=count, seconds=8), 120)
        readers = clients("read", port, clients=READERS, seconds=22)
        time.sleep(3)  # the readers are up to speed
        for key, p, count in (("probe_port", probe_port, 1000), ("main_port", port, 500)):
            one[f"{key}_with_readers"] = result(clients("probe", p, count=count, seconds=8), 120)
        reads.append(result(readers, 300))
        if NICE_READERS:  # the same readers at the sidecar's priority, for the probe port: shown beside
            readers = clients("read", port, niceness=0, clients=READERS, seconds=14)
            time.sleep(3)
            one["probe_port_with_readers_nice0"] = result(clients("probe", probe_port, count=1000, seconds=8), 120)
            result(readers, 300)
        out["rounds"].append(one)
    for key in ("probe_port_alone", "main_port_alone", "probe_port_with_readers", "main_port_with_readers",
                "probe_port_with_readers_nice0"):
        runs = [r[key] for r in out["rounds"] if "p99_ms" in r.get(key, {})]
        if runs:
            out[key] = {m: round(statistics.median(r[m] for r in runs), 2) for m in ("p50_ms", "p99_ms", "max_ms")}
            out[key]["probes"] = sum(r.get("probes", 0) for r in runs)
    answers: dict[str, int] = {}
    for rd in reads:
        for k, v in rd.get("answers", {}).items():
            answers[k] = answers.get(k, 0) + v
    total = sum(rd.get("requests", 0) for rd in reads)
    seconds = sum(rd.get("seconds", 0) for rd in reads)
    out["read"] = {"requests": total, "seconds": round(seconds, 1), "per_second": round(total / max(seconds, 1e-9), 1),
                   "answers": dict(sorted(answers.items()))}
    return out


def measure_sidecar(cluster: scale_connect.Cluster, connect_port: int, polls: int, workdir: Path,
                    readers: bool = False) -> dict[str, Any]:
    proc, port, probe_port = start_sidecar(connect_port, workdir, None)
    try:
        client = Client(port)
        wait_until(lambda: json.loads(client.get("/status?format=json")[1]).get("polls", 0) >= 3, 180,
                   "the sidecar's first polls")
        client.close()
        time.sleep(0.5)
        cpu = cpu_per_poll(proc, cluster, polls)
        rss, hwm = rss_once_mb(proc.pid), status_mb(proc.pid, "VmHWM")
        cluster.churn = True  # every answer differs from the one before: nothing is skipped
        after_poll(cluster)
        churn = cpu_per_poll(proc, cluster, polls)
        cluster.churn = False
        client = Client(port)
        code, metrics, metrics_s = client.get("/metrics")
        series = sum(1 for line in metrics.decode().splitlines() if line and not line.startswith("#"))
        out: dict[str, Any] = {"rss_mb": round(rss, 1), "rss_peak_mb": round(hwm, 1), **cpu,
                               "changing_answer": churn,
                               "metrics": {"series": series, "bytes": len(metrics), "ms": round(metrics_s * 1000, 1)}}
        for key, path, headers in (("status_json", "/status?format=json", {}),
                                   ("status_cluster_json", "/status?format=json&view=cluster", {}),
                                   ("status_html", "/status", {"Accept": "text/html"})):
            times, size = [], 0
            after_poll(cluster)  # between two polls: the requests do not wait for a poll's hold on the GIL
            cpu_before = cpu_seconds(proc.pid)
            for _ in range(5):
                code, body, secs = client.get(path, headers)
                assert code == 200, (path, code)
                times.append(secs)
                size = len(body)
            # the first request after a poll builds the page; the next four read the page built (app.PageCache)
            out[key] = {"median_ms": round(statistics.median(times) * 1000, 1), "bytes": size,
                        "build_ms": round(times[0] * 1000, 1),
                        "cpu_ms": round((cpu_seconds(proc.pid) - cpu_before) * 1000 / 5, 1)}
        doc = json.loads(client.get("/status?format=json")[1])
        out["shown_here"] = doc["cluster"]["shown_here"]
        out["summarised"] = doc["cluster"]["summarised"]
        lat = []
        for _ in range(300):
            lat.append(client.get("/livez")[2])
        lat.sort()
        out["livez_ms"] = {"p50": round(lat[149] * 1000, 2), "p99": round(lat[296] * 1000, 2)}
        client.close()
        out["rss_after_pages_mb"] = round(rss_once_mb(proc.pid), 1)
        if readers:
            say("probes alone, then with page readers")
            out["isolation"] = isolation(port, probe_port)
        return out
    finally:
        stop(proc)


def measure_declared(cluster: scale_connect.Cluster, connect_port: int, workdir: Path) -> dict[str, Any]:
    """10 declared connectors: configs fetched at the first poll and every 30 s; CPU per poll over 31 polls."""
    declared = {scale_connect.connector_name(i): {"config": {k: v for k, v in scale_connect.config(i).items()
                                                             if k != "name"}} for i in range(10)}
    path = workdir / "declared.json"
    path.write_text(json.dumps(declared))
    proc, port, _ = start_sidecar(connect_port, workdir, path)
    try:
        client = Client(port)
        wait_until(lambda: json.loads(client.get("/status?format=json")[1]).get("polls", 0) >= 2, 180,
                   "the first polls")
        doc = json.loads(client.get("/status?format=json")[1])
        client.close()
        cluster.calls.clear()
        cpu = cpu_per_poll(proc, cluster, 31)
        return {**cpu, "drift": len(doc["drift"]), "rss_mb": round(status_mb(proc.pid, "VmRSS"), 1)}
    finally:
        stop(proc)


def ensure_kchc() -> Path:
    from measure import ensure_kchc as install  # one installer of kafka-connect-healthcheck: measure.py's

    return install()


def measure_kchc(exe: Path, connect_port: int, workdir: Path, probes: int) -> dict[str, Any]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HEALTHCHECK_PORT": str(port),
           "HEALTHCHECK_CONNECT_URL": f"http://127.0.0.1:{connect_port}", "HEALTHCHECK_CONNECT_WORKER_ID": WORKER,
           "HEALTHCHECK_LOG_LEVEL": "WARNING"}
    log = open(workdir / "kchc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(exe)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        client = Client(port, timeout=300)
        wait_until(lambda: client.get("/ping")[0] == 200, 60, "kafka-connect-healthcheck")
        times = [client.get("/")[2] for _ in range(probes)]
        client.close()
        return {"probes": probes, "median_ms": round(statistics.median(times) * 1000, 1),
                "rest_calls_per_probe": None}
    finally:
        stop(proc)


def run(sizes: list[int], polls: int, kchc: bool, declared: bool) -> dict[str, Any]:
    exe = ensure_kchc() if kchc else None
    workdir = Path(tempfile.mkdtemp(prefix="scale-", dir=str(ROOT / ".tools")))
    rows: dict[str, Any] = {}
    for n in sizes:
        say(f"{n} connectors x 4 tasks over 10 workers: rendering the stand-in's answers")
        cluster = scale_connect.Cluster(n)
        server = scale_connect.serve(cluster)
        try:
            row: dict[str, Any] = {"answer_mb": round(len(cluster.by_status) / 1e6, 2),
                                   "answer_with_configs_mb": round(len(cluster.by_status_info) / 1e6, 2)}
            row["sidecar"] = measure_sidecar(cluster, server.server_port, polls, workdir, readers=n == max(sizes))
            calls_before = dict(cluster.calls)
            if declared:
                row["declared_10"] = measure_declared(cluster, server.server_port, workdir)
            if exe is not None:
                cluster.calls.clear()
                row["kchc"] = measure_kchc(exe, server.server_port, workdir, 3 if n >= 1000 else 5)
                row["kchc"]["rest_calls_per_probe"] = round(sum(cluster.calls.values()) / row["kchc"]["probes"], 1)
                row["kchc"]["ratio_to_livez_p50"] = round(
                    row["kchc"]["median_ms"] / max(row["sidecar"]["livez_ms"]["p50"], 0.001))
            row["calls_seen"] = calls_before
            say(f"{n}: {json.dumps(row)}")
            rows[str(n)] = row
        finally:
            server.shutdown()
            server.server_close()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": os.getloadavg(),
            "stand_in": "bench/scale_connect.py", "sizes": rows, "targets": TARGETS}


def _g(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _built(page: dict[str, Any]) -> str:
    """A page's time: built (the first request after a poll) and read again (the median of five), when known."""
    if "build_ms" not in page:
        return f"{page['median_ms']:,.1f} ms"
    return f"{page['build_ms']:,.1f} ms built, {page['median_ms']:,.1f} ms cached"


def markdown(res: dict[str, Any]) -> str:
    """The scale section of the bench report: old (issue 12) beside new, then the targets."""
    lines = [
        "## Scale: one pod's cost at N connectors (issue 12)",
        "",
        f"Measured {res['date']} (load average {', '.join(f'{x:.1f}' for x in res['loadavg'])}) by "
        "`bench/scale.py` against the stand-in Connect of `bench/scale_connect.py` (a real worker cannot hold "
        "3,000 connectors here): N connectors x 4 tasks over 10 workers, configs of 33 keys, this pod's worker "
        "owning 1/10, `--scope worker --poll-interval 1`, no declared connectors unless said. Before: the issue's "
        "measurement of the previous version (expand=info on every poll, all units in full, one-hot series). Pages: "
        "the first request after a poll builds the page, the others of the same poll read it (issue 22).",
        "",
        "| connectors | answer (status / +configs) | RSS before → now (peak) | CPU per poll before (mean poll time) → "
        "now | `/metrics` series before → now (bytes) | `/status` HTML before → now | `/status` JSON, this worker"
        " | `/status` JSON, cluster page | `/livez` p50 / p99 | kafka-connect-healthcheck probe (REST calls) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_text, row in res["sizes"].items():
        n = int(n_text)
        b = BEFORE.get(n)
        sc = row["sidecar"]
        k = row.get("kchc")
        kchc = (f"{k['median_ms']:,.0f} ms ({k['rest_calls_per_probe']:g} calls), {k['ratio_to_livez_p50']:,}x"
                if k else "not measured")
        lines.append(
            f"| {n:,} | {row['answer_mb']} / {row['answer_with_configs_mb']} MB "
            f"| {b[1] if b else '?'} → **{sc['rss_mb']} MB** ({sc['rss_peak_mb']}) "
            f"| {b[2] if b else '?'} ms → **{sc['cpu_ms_per_poll']} ms** "
            f"| {f'{b[3]:,}' if b else '?'} → **{sc['metrics']['series']:,}** ({sc['metrics']['bytes'] / 1e3:,.0f} kB) "
            f"| {f'{b[5] * 1000:,.0f} ms, {b[6]} MB' if b else '?'} → **{_built(sc['status_html'])}, "
            f"{sc['status_html']['bytes'] / 1e6:.2f} MB** "
            f"| {_built(sc['status_json'])} (CPU {sc['status_json'].get('cpu_ms', '?')} ms), "
            f"{sc['status_json']['bytes'] / 1e3:,.0f} kB "
            f"({sc['shown_here']:,} connectors judged here) "
            f"| {_built(sc['status_cluster_json'])} "
            f"| {sc['livez_ms']['p50']} / {sc['livez_ms']['p99']} ms | {kchc} |")
    lines.append("")
    churn = [(n, r["sidecar"]["changing_answer"]) for n, r in res["sizes"].items()
             if "changing_answer" in r["sidecar"]]
    if churn:
        per_n = "; ".join(f"{int(n):,}: {c['cpu_ms_per_poll']} ms" for n, c in churn)
        lines.append("CPU per poll when the answer changes at every poll (one task's state flips, so each answer is "
                     f"decoded; an unchanged answer, as in the table, is recognised and not decoded again): {per_n}.")
        lines.append("")
    iso_n, iso = next(((n, r["sidecar"]["isolation"]) for n, r in res["sizes"].items()
                       if "isolation" in r["sidecar"]), (None, None))
    if iso is not None:
        lines += [f"Probes isolated from pages at {int(iso_n or 0):,} connectors: `/livez` one probe at a time, a new "
                  f"connection each (as the kubelet probes), medians of {len(iso.get('rounds', [])) or 1} interleaved "
                  "rounds, alone and while "
                  f"{iso['readers']} clients read `/metrics`, `/status` JSON and `/status` HTML as fast as they are "
                  f"answered (bench/readers.py, separate processes; the readers' at nice {iso.get('readers_nice', 0)}: "
                  "they stand for Prometheus and browsers on other machines, and on this 2-core machine they would "
                  "otherwise take the core a probe waits for; the sidecar and the probing client at nice 0):", "",
                  "| port | alone p50 / p99 | with readers p50 / p99 (max) | p99 ratio |", "|---|---|---|---|"]
        for key, label in (("probe_port", "probe port (`--probe-port`, the chart's default)"),
                           ("main_port", "main port (shared with the pages)")):
            a, w = iso.get(f"{key}_alone", {}), iso.get(f"{key}_with_readers", {})
            ratio = round(w["p99_ms"] / a["p99_ms"], 1) if a.get("p99_ms") and w.get("p99_ms") else None
            lines.append(f"| {label} | {a.get('p50_ms')} / {a.get('p99_ms')} ms | {w.get('p50_ms')} / "
                         f"{w.get('p99_ms')} ms ({w.get('max_ms')}) | {ratio}x |")
        a, w = iso.get("probe_port_alone", {}), iso.get("probe_port_with_readers_nice0", {})
        if w.get("p99_ms") and a.get("p99_ms"):
            lines.append(f"| probe port, the readers at nice 0 (the sidecar's) | {a.get('p50_ms')} / "
                         f"{a.get('p99_ms')} ms | {w.get('p50_ms')} / {w.get('p99_ms')} ms ({w.get('max_ms')}) | "
                         f"{round(w['p99_ms'] / a['p99_ms'], 1)}x |")
        rd = iso.get("read", {})
        lines += ["", f"The readers: {rd.get('requests', 0):,} pages in {rd.get('seconds')} s "
                  f"({rd.get('per_second')}/s); answers {rd.get('answers')}.", ""]
    declared = [(n, r["declared_10"]) for n, r in res["sizes"].items() if "declared_10" in r]
    if declared:
        lines.append("With 10 declared connectors (configs fetched at the first poll, then every 30 s): CPU per "
                     "poll averaged over 31 polls: " + "; ".join(
                         f"{int(n):,}: {d['cpu_ms_per_poll']} ms ({d['with_configs']} with configs), "
                         f"RSS {d['rss_mb']} MB" for n, d in declared) + ".")
        lines.append("")
    t = res["targets"]
    big, small = res["sizes"].get("3000"), res["sizes"].get("100")
    checks = []
    if big:
        s = big["sidecar"]
        checks += [("RSS at 3,000", s["rss_mb"], t["rss_mb_3000"], "MB"),
                   ("CPU per poll at 3,000", s["cpu_ms_per_poll"], t["cpu_ms_per_poll_3000"], "ms"),
                   ("/metrics series per pod at 3,000", s["metrics"]["series"], t["series_3000"], ""),
                   ("/status JSON (this worker) at 3,000, built", s["status_json"].get("build_ms",
                                                                                    s["status_json"]["median_ms"]),
                    t["status_json_ms_3000"], "ms")]
    if big and "changing_answer" in big["sidecar"]:
        checks.append(("CPU per poll at 3,000, the answer changing at every poll",
                       big["sidecar"]["changing_answer"]["cpu_ms_per_poll"], t["cpu_ms_per_poll_3000"], "ms"))
    if iso is not None and "livez_p99_ms_with_readers" in t:
        a, w = iso["probe_port_alone"], iso["probe_port_with_readers"]
        checks.append((f"/livez p99 (probe port) with {iso['readers']} page readers", w["p99_ms"],
                       t["livez_p99_ms_with_readers"], "ms"))
        checks.append(("... its ratio to /livez p99 with no readers", round(w["p99_ms"] / max(a["p99_ms"], 1e-9), 2),
                       t["livez_p99_ratio_with_readers"], "x"))
    if small:
        checks.append(("RSS at 100", small["sidecar"]["rss_mb"], t["rss_mb_100"], "MB"))
    if checks:
        lines.append("| target | measured | limit | met |")
        lines.append("|---|---|---|---|")
        for what, value, limit, unit in checks:
            lines.append(f"| {what} | {value:,} {unit} | {limit:,} {unit} | {'yes' if value <= limit else 'NO'} |")
        if big and small:
            lines.append(f"| /livez p99 unchanged (100 → 3,000) | {small['sidecar']['livez_ms']['p99']} → "
                         f"{big['sidecar']['livez_ms']['p99']} ms | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="connector counts (default 100,1000,3000)")
    ap.add_argument("--polls", type=int, default=10, help="polls counted for CPU per poll (default 10)")
    ap.add_argument("--skip-kchc", action="store_true", help="leave out kafka-connect-healthcheck")
    ap.add_argument("--skip-declared", action="store_true", help="leave out the run with declared connectors")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--sizes: comma-separated integers, got {args.sizes!r}")
    if not sizes or any(n < 1 or n > 20000 for n in sizes) or args.polls < 1:
        ap.error("--sizes from 1 to 20000 each, --polls at least 1")
    res = run(sizes, args.polls, not args.skip_kchc, not args.skip_declared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    say(f"wrote {args.out.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
