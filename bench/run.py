#!/usr/bin/env python3
"""connect-health benchmarks on a real Kafka broker and Connect worker (127.0.0.1), baselines from the same run.

`make bench` runs this with the project venv (.tools/venv/bin/python bench/run.py). It starts a Kafka stack with
ci/localstack.py (the pinned KAFKA_VERSION), declares FileStream source connectors with `connect-health apply`, and
measures:

1. probe latency at --connections concurrent clients (wrk, --rounds interleaved rounds of --duration seconds each):
   connect-health /livez under waitress (what `serve` runs) and under gunicorn, kafka-connect-healthcheck 0.3.0's
   probe (the best existing sidecar, which calls Connect on every probe) and Connect's own GET / (the baseline);
   then connect-health /livez again while the Connect JVM is SIGSTOPped;
2. memory: VmRSS summed over each server's process tree (and PSS, which does not double-count pages a forking
   server shares), idle and after the load runs;
3. REST calls per poll at 1, 10 and --connectors connectors, from connect_health_rest_calls_last_poll and from
   Connect's request log, and kafka-connect-healthcheck's calls per probe for contrast;
4. `connect-health apply` of --connectors unchanged connectors: wall time and writes in the request log;
5. `helm template` with 100 declared connectors (bench/chart_template_bench.py).

Timings on a shared 2-core machine are noisy: nothing here fails on speed. Each target is reported as met or not,
and results go to bench/results/latest.json and latest.md. wrk comes from Debian (installed when missing);
kafka-connect-healthcheck is installed from PyPI into .tools/bench-venv. Every process started here is stopped at
the end (the launcher's process groups, plus explicit stops for wrk, gunicorn and kafka-connect-healthcheck).

    .tools/venv/bin/python bench/run.py                      # everything, about 2.5 minutes
    .tools/venv/bin/python bench/run.py --duration 3 --rounds 2 --skip-helm
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "ci"))

import localstack  # noqa: E402

TOOLS = ROOT / ".tools"
VENV_BIN = TOOLS / "venv" / "bin"
BENCH_VENV = TOOLS / "bench-venv"
KCHC_PACKAGE = "kafka-connect-healthcheck"
KCHC_VERSION = "0.3.0"
RESULTS = BENCH / "results"
WRK_LUA = BENCH / "wrk_report.lua"
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"

# Targets of issues 2, 3 and 4 (reported, never asserted).
TARGET_LIVEZ_P99_MS = 5.0
TARGET_RSS_MB = 40.0
TARGET_APPLY_S = 5.0
TARGET_HELM_S = 1.0

# One line of Connect's request log (extended NCSA + duration): method, path, status, referer, user agent.
REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) \S+ '
                          r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"')
CH_AGENT = "connect-health"  # the sidecar's ConnectClient sets this User-Agent
KCHC_AGENT = "python-requests/"  # kafka-connect-healthcheck uses requests' default

T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------- preparations

def ensure_wrk() -> str:
    """wrk from Debian; installed with apt-get when missing (idempotent)."""
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() != 0:
        sys.exit("bench: wrk is missing: apt-get install -y wrk (needs root)")
    say("wrk missing: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True, timeout=300)
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench: could not install wrk with apt-get: install it (apt-get install -y wrk) and run again")
    return wrk


def ensure_kchc() -> Path:
    """kafka-connect-healthcheck (pinned) in its own venv, .tools/bench-venv (idempotent)."""
    exe = BENCH_VENV / "bin" / "kafka-connect-healthcheck"
    py = BENCH_VENV / "bin" / "python"
    if exe.exists() and kchc_installed_version() == KCHC_VERSION:
        return exe
    say(f"installing {KCHC_PACKAGE}=={KCHC_VERSION} into {BENCH_VENV.relative_to(ROOT)}")
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True, timeout=300)
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"{KCHC_PACKAGE}=={KCHC_VERSION}"], check=True,
                   timeout=600)
    if not exe.exists():
        sys.exit(f"bench: {exe} missing after pip install")
    return exe


def kchc_installed_version() -> str | None:
    py = BENCH_VENV / "bin" / "python"
    if not py.exists():
        return None
    r = subprocess.run([str(py), "-c", f"import importlib.metadata as m; print(m.version('{KCHC_PACKAGE}'))"],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else None


def first_line(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (r.stdout or r.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_total_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "os": first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"])}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions(wrk: str) -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"
    out = {"connect-health": dist("connect-health"), "flask": dist("Flask"), "waitress": dist("waitress"),
           "gunicorn": dist("gunicorn"), "requests": dist("requests"), "python": platform.python_version(),
           KCHC_PACKAGE: kchc_installed_version() or "?", "kafka": localstack.KAFKA_VERSION,
           "java": first_line([localstack.require_java(), "-version"]),
           "wrk": first_line([wrk, "--version"]).split(" [")[0]}
    for helm in ("helm3", "helm4"):
        exe = TOOLS / "bin" / helm
        out[helm] = first_line([str(exe), "version", "--short"]) if exe.exists() else "missing"
    return out


# ------------------------------------------------------------------------------------------------- processes

class GunicornSidecar(localstack.Sidecar):
    """connect-health's app under gunicorn (bench/gunicorn_app.py), settings from CONNECT_HEALTH_* variables."""

    def command(self) -> list[str]:
        return [str(VENV_BIN / "gunicorn"), "-w", "1", "--threads", "8", "-b", f"{localstack.HOST}:{self.port}",
                "--chdir", str(BENCH), "--graceful-timeout", "5", "--log-level", "warning", "gunicorn_app:app"]


class HealthcheckSidecar(localstack.Sidecar):
    """kafka-connect-healthcheck, configured with its documented HEALTHCHECK_* variables (it listens on 0.0.0.0)."""

    def command(self) -> list[str]:
        return [self.executable]


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _kb(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def import_footprint() -> dict[str, float]:
    """RSS of a bare interpreter, and of one that only imports what `connect-health serve` runs (the floor)."""
    probe = "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    out = {}
    for key, imports in (("python_bare", ""),
                         ("imports_only", "import connect_health.cli, connect_health.app, connect_health.poller, "
                                          "waitress; ")):
        r = subprocess.run([str(VENV_BIN / "python"), "-c", imports + probe], capture_output=True, text=True,
                           timeout=60, env=clean_env())
        with contextlib.suppress(ValueError):
            out[key] = round(int(r.stdout.strip()) / 1024, 1)
    return out


def memory(pid: int | None) -> dict[str, Any]:
    """VmRSS and PSS summed over the process tree, in MB (MiB)."""
    if pid is None:
        return {}
    pids = process_tree(pid)
    rss = sum(_kb(Path(f"/proc/{p}/status"), "VmRSS") for p in pids)
    pss = sum(_kb(Path(f"/proc/{p}/smaps_rollup"), "Pss") for p in pids)
    return {"processes": len(pids), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}


# ------------------------------------------------------------------------------------------------ request log

class RequestLog:
    """Connect's request log, read from byte offsets (the Connect baseline load writes many lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, offset: int, end: int | None = None) -> list[dict[str, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read() if end is None else f.read(max(0, end - offset))
        except OSError:
            return []
        out = []
        for line in data.decode("utf-8", "replace").splitlines():
            m = REQUEST_LINE.search(line)
            if m:
                out.append(m.groupdict())
        return out


def is_write(r: dict[str, str]) -> bool:
    return r["method"] in ("PUT", "POST", "DELETE") and "/config/validate" not in r["path"]


# -------------------------------------------------------------------------------------------------- wrk runs

def run_wrk(wrk: str, url: str, duration: float, connections: int, timeout_s: float,
            think_ms: float = 0.0) -> dict[str, Any]:
    """One wrk run (one thread: it leaves the second core to the server under test)."""
    cmd = [wrk, "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "--timeout", f"{timeout_s:g}s",
           "-s", str(WRK_LUA), url]
    env = {**os.environ, "WRK_THINK_MS": f"{think_ms:g}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=env)
    try:
        out, err = proc.communicate(timeout=duration + timeout_s + 30)
    except subprocess.TimeoutExpired:
        out, err = "", "wrk did not finish in time (killed)"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        return {"url": url, "error": (err or out).strip()[-300:] or f"wrk exit {proc.returncode}"}
    data = json.loads(line[len("WRKJSON "):])
    lat = data["latency_us"]
    errors = data["errors"]
    return {
        "url": url, "requests": data["requests"], "seconds": round(data["duration_us"] / 1e6, 2),
        "rps": round(data["requests"] / max(data["duration_us"] / 1e6, 1e-9), 1),
        "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000, "mean_ms": round(lat["mean"] / 1000, 3),
        "errors": {k: v for k, v in errors.items() if v}, "non_2xx_3xx": errors["status"],
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"rounds": len(runs), "error": runs[0].get("error") if runs else "no run"}
    med = lambda key: round(statistics.median(r[key] for r in ok), 3)  # noqa: E731
    return {"rounds": len(ok), "requests": sum(r["requests"] for r in ok), "rps": med("rps"),
            "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"), "p99_ms": med("p99_ms"),
            "max_ms": round(max(r["max_ms"] for r in ok), 3),
            "timeouts": sum(r["errors"].get("timeout", 0) for r in ok),
            "connect_errors": sum(r["errors"].get("connect", 0) for r in ok),
            "read_errors": sum(r["errors"].get("read", 0) for r in ok),
            "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in ok)}


# ------------------------------------------------------------------------------------------------ connectors

def connector_config(i: int, data_dir: Path) -> dict[str, str]:
    return {"connector.class": FILE_SOURCE, "tasks.max": "1", "file": str(data_dir / f"in-{i:03d}.txt"),
            "topic": f"bench-{i:03d}"}


def write_declarations(path: Path, count: int, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    declared = {}
    for i in range(count):
        (data_dir / f"in-{i:03d}.txt").touch()
        declared[f"bench-{i:03d}"] = {"config": connector_config(i, data_dir), "state": "running",
                                      "policy": "critical"}
    path.write_text(json.dumps(declared, indent=1) + "\n")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_") and k != "POD_IP"}


def run_apply(connect_url: str, declarations: Path, log: RequestLog) -> dict[str, Any]:
    """One `connect-health apply` process: wall time, exit code and what it sent (from Connect's request log)."""
    start_offset = log.offset()
    cmd = [str(VENV_BIN / "connect-health"), "apply", "--connectors-file", str(declarations),
           "--connect-url", connect_url, "--wait", "60"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=clean_env(), cwd=ROOT)
    wall = time.perf_counter() - t
    time.sleep(0.3)  # Jetty logs a request after its answer
    sent = [r for r in log.since(start_offset) if r["agent"] == CH_AGENT]
    writes = [r for r in sent if is_write(r) and "/restart" not in r["path"]]
    return {"exit": proc.returncode, "wall_s": round(wall, 3), "requests": len(sent),
            "writes": len(writes), "write_lines": [f"{r['method']} {r['path']}" for r in writes[:5]],
            "validates": sum(1 for r in sent if "/config/validate" in r["path"]),
            "gets": sum(1 for r in sent if r["method"] == "GET"),
            "summary": (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1][:300]}


def apply_until_done(connect_url: str, declarations: Path, log: RequestLog, tries: int = 6) -> dict[str, Any]:
    """apply until it exits 0 (a PUT can meet a 409 while the worker rebalances after the previous create)."""
    runs = []
    for _ in range(tries):
        r = run_apply(connect_url, declarations, log)
        runs.append(r)
        if r["exit"] == 0:
            break
        time.sleep(2)
    return {"runs": len(runs), "exit": runs[-1]["exit"], "wall_s": round(sum(r["wall_s"] for r in runs), 3),
            "writes": sum(r["writes"] for r in runs), "last_summary": runs[-1]["summary"]}


def status(sidecar: localstack.Sidecar) -> dict[str, Any]:
    code, body = sidecar.get("/status?format=json", timeout=5)
    return body if code in (200, 503) and isinstance(body, dict) else {}


def running_connectors(doc: dict[str, Any]) -> int:
    n = 0
    for c in doc.get("connectors", []):
        states = [c.get("connector", {}).get("state")] + [t.get("state") for t in c.get("tasks", [])]
        if c.get("tasks") and all(s == "RUNNING" for s in states):
            n += 1
    return n


def wait_view(sidecar: localstack.Sidecar, count: int, timeout: float = 120.0) -> bool:
    try:
        localstack.wait_until(lambda: running_connectors(status(sidecar)) >= count, timeout,
                              f"connect-health to see {count} RUNNING connectors", interval=0.5)
        return True
    except localstack.StackError as e:
        say(f"warning: {e}")
        return False


def metric(sidecar: localstack.Sidecar, name: str) -> float | None:
    code, body = sidecar.get("/metrics")
    if code != 200 or not isinstance(body, str):
        return None
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def next_poll(sidecar: localstack.Sidecar, after: int, timeout: float = 30.0) -> int:
    polls: int = localstack.wait_until(lambda: (p := status(sidecar).get("polls", 0)) > after and p, timeout,
                                       "the next poll", interval=0.05)
    time.sleep(0.3)  # its last request is in the request log; the next poll is an interval away
    return polls


def calls_per_poll(sidecar: localstack.Sidecar, log: RequestLog, polls: int = 4) -> dict[str, Any]:
    """GETs connect-health sent per poll, counted in Connect's request log between two poll boundaries."""
    p0 = next_poll(sidecar, status(sidecar).get("polls", 0))
    off0 = log.offset()
    p1 = p0
    while p1 < p0 + polls:
        p1 = next_poll(sidecar, p1)
    off1 = log.offset()
    sent = [r for r in log.since(off0, off1) if r["agent"] == CH_AGENT]
    gauge = metric(sidecar, "connect_health_rest_calls_last_poll")
    paths = sorted({f"{r['method']} {r['path']}" for r in sent})
    return {"polls": p1 - p0, "requests": len(sent), "per_poll": round(len(sent) / (p1 - p0), 2),
            "gauge_rest_calls_last_poll": gauge, "paths": paths}


def kchc_calls_per_probe(kchc: localstack.Sidecar, log: RequestLog) -> dict[str, Any]:
    off0 = log.offset()
    t = time.perf_counter()
    code, _ = localstack.http("GET", kchc.url + "/", timeout=60)
    wall = time.perf_counter() - t
    time.sleep(0.3)
    sent = [r for r in log.since(off0) if r["agent"].startswith(KCHC_AGENT)]
    return {"status": code, "requests": len(sent), "probe_ms": round(wall * 1000, 1)}


def sequential_probes(url: str, count: int, budget_s: float) -> dict[str, Any]:
    """One client, one probe at a time (what a kubelet does): wall time of each, connection setup included."""
    times = []
    deadline = time.monotonic() + budget_s
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t = time.perf_counter()
        with contextlib.suppress(OSError):
            localstack.http("GET", url, timeout=30)
        times.append((time.perf_counter() - t) * 1000)
    if not times:
        return {}
    return {"probes": len(times), "median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def drain(kchc: localstack.Sidecar, timeout: float = 120.0) -> float:
    """kafka-connect-healthcheck serves one request at a time: wait until the requests wrk left behind are done."""
    t = time.perf_counter()
    with contextlib.suppress(OSError):
        localstack.http("GET", kchc.url + "/ping", timeout=timeout)
    return round(time.perf_counter() - t, 2)


# ---------------------------------------------------------------------------------------------------- helm

def helm_bench(workdir: Path) -> dict[str, Any]:
    out = workdir / "chart-template.json"
    try:
        r = subprocess.run([sys.executable, str(BENCH / "chart_template_bench.py"), "--json", str(out)],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": "chart_template_bench.py timed out"}
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    data: dict[str, Any] = json.loads(out.read_text())
    return data


# ---------------------------------------------------------------------------------------------------- main

@contextlib.contextmanager
def running(*services: localstack.Sidecar) -> Iterator[None]:
    try:
        yield
    finally:
        for s in services:
            with contextlib.suppress(Exception):
                s.stop()


def bench(args: argparse.Namespace, wrk: str, kchc_exe: Path) -> dict[str, Any]:
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    res: dict[str, Any] = {}
    counts = sorted({1, min(10, args.connectors), args.connectors})
    with localstack.Stack(workdir / "stack", localstack.KAFKA_VERSION, progress=say) as stack:
        worker = stack.worker
        log = RequestLog(worker.request_log)
        res["stack_start_s"] = {k: round(v, 1) for k, v in stack.timings.items()}
        ch = localstack.Sidecar(workdir, stack.connect_url, ["--poll-interval", f"{args.poll_interval:g}"],
                                name="connect-health")
        kchc = HealthcheckSidecar(workdir, stack.connect_url, name="kafka-connect-healthcheck",
                                  executable=str(kchc_exe), env={})
        kchc.extra_env = {"HEALTHCHECK_PORT": str(kchc.port), "HEALTHCHECK_CONNECT_URL": stack.connect_url,
                          "HEALTHCHECK_CONNECT_WORKER_ID": worker.worker_id, "HEALTHCHECK_LOG_LEVEL": "WARNING"}
        gun = GunicornSidecar(workdir, stack.connect_url, name="connect-health-gunicorn",
                              executable=str(VENV_BIN / "gunicorn"),
                              env={"CONNECT_HEALTH_CONNECT_URL": stack.connect_url,
                                   "CONNECT_HEALTH_POLL_INTERVAL": f"{args.poll_interval:g}"})
        with running(ch, kchc, gun):
            ch.start()
            kchc.start()
            say(f"connect-health (waitress) on {ch.url}, {KCHC_PACKAGE} on {kchc.url}")

            # --- 3 and 4: connectors declared with apply; REST calls per poll at each count -----------------
            calls: list[dict[str, Any]] = []
            declarations = workdir / "connectors.json"
            for n in counts:
                write_declarations(declarations, n, data_dir)
                created = apply_until_done(stack.connect_url, declarations, log)
                say(f"apply: {n} declared -> {created['last_summary']} ({created['runs']} run(s), "
                    f"{created['wall_s']:.1f}s)")
                if n == args.connectors:
                    res["apply_create"] = {"connectors": n, **created}
                seen = wait_view(ch, n)
                per_poll = calls_per_poll(ch, log)
                probe = kchc_calls_per_probe(kchc, log)
                calls.append({"connectors": n, "all_running": seen, "connect_health": per_poll,
                              "kchc_per_probe": probe})
                say(f"{n} connectors: connect-health {per_poll['per_poll']} calls/poll "
                    f"(gauge {per_poll['gauge_rest_calls_last_poll']}); {KCHC_PACKAGE} {probe['requests']} "
                    f"calls/probe, {probe['probe_ms']} ms")
            res["rest_calls"] = calls

            unchanged = []
            for _ in range(args.apply_runs):
                unchanged.append(run_apply(stack.connect_url, declarations, log))
                say(f"apply of {args.connectors} unchanged: {unchanged[-1]['wall_s']:.2f}s, "
                    f"{unchanged[-1]['writes']} write(s), exit {unchanged[-1]['exit']}")
            res["apply_unchanged"] = {
                "connectors": args.connectors, "runs": unchanged,
                "median_wall_s": round(statistics.median(r["wall_s"] for r in unchanged), 3),
                "max_writes": max(r["writes"] for r in unchanged),
                "exits": [r["exit"] for r in unchanged]}

            # --- 1 and 2: latency rounds (interleaved) and memory -------------------------------------------
            gun.start()
            wait_view(gun, args.connectors, timeout=60)
            wait_view(ch, args.connectors, timeout=60)
            mem_idle = {"waitress": memory(ch.pid), "gunicorn": memory(gun.pid), "kchc": memory(kchc.pid)}
            targets = [("connect_baseline", stack.connect_url + "/"), ("waitress", ch.url + "/livez"),
                       ("gunicorn", gun.url + "/livez"), ("kchc", kchc.url + "/")]
            modes = [("flood", 0.0), *([("paced", args.think_ms)] if args.think_ms > 0 else [])]
            raw: dict[str, dict[str, list[dict[str, Any]]]] = {
                m: {k: [] for k, _ in targets if not (k == "kchc" and think)} for m, think in modes}
            drains = []
            for rnd in range(args.rounds):
                for mode, think in modes:
                    for key, url in targets:
                        if key == "kchc" and think:
                            continue  # its probes take 100s of ms: a 10 ms pause changes nothing, and drains cost
                        timeout_s = 30 if key == "kchc" else 5
                        r = run_wrk(wrk, url, args.duration, args.connections, timeout_s, think)
                        raw[mode][key].append(r)
                        say(f"round {rnd + 1}/{args.rounds} {mode} {key}: " + (
                            r.get("error") or f"{r['requests']} req, p50 {r['p50_ms']:.2f} ms, "
                                              f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms, "
                                              f"errors {r['errors']}"))
                        if key == "kchc":
                            drains.append(drain(kchc))
            mem_load = {"waitress": memory(ch.pid), "gunicorn": memory(gun.pid), "kchc": memory(kchc.pid)}
            res["memory"] = {"idle": mem_idle, "after_load": mem_load, "floor": import_footprint()}
            res["kchc_drain_s"] = drains
            res["single_probe"] = {"waitress": sequential_probes(ch.url + "/livez", 20, 10),
                                   "kchc": sequential_probes(kchc.url + "/", 5, 15)}

            # --- connect-health while the Connect JVM is stopped --------------------------------------------
            say("SIGSTOP the Connect worker JVM")
            worker.pause_jvm()
            stopped_at = time.perf_counter()
            try:
                time.sleep(1.5)  # the poller is now blocked in a call to the stopped worker
                for mode, _ in modes:
                    raw[mode]["waitress_connect_stopped"] = []
                for _ in range(args.rounds):
                    for mode, think in modes:
                        raw[mode]["waitress_connect_stopped"].append(
                            run_wrk(wrk, ch.url + "/livez", args.duration, args.connections, 5, think))
                t = time.perf_counter()
                try:
                    code, _ = localstack.http("GET", kchc.url + "/", timeout=3)
                    kchc_paused: dict[str, Any] = {"status": code}
                except OSError as e:
                    kchc_paused = {"status": None, "error": f"no answer within 3 s ({type(e).__name__})"}
                kchc_paused["waited_s"] = round(time.perf_counter() - t, 2)
                livez_code, _ = ch.get("/livez")
                readyz_code, _ = ch.get("/readyz")
            finally:
                worker.resume_jvm()
                stopped_for = time.perf_counter() - stopped_at
                say(f"SIGCONT the Connect worker JVM after {stopped_for:.1f}s")
            res["latency_raw"] = raw
            res["latency"] = {m: {k: summarize(v) for k, v in per.items()} for m, per in raw.items()}
            res["connect_stopped"] = {"seconds": round(stopped_for, 1),
                                      "livez_status_at_end": livez_code,
                                      "readyz_status_at_end": readyz_code, "kchc_probe": kchc_paused}
            stopped = {m: res["latency"][m]["waitress_connect_stopped"].get("p99_ms") for m, _ in modes}
            say(f"while stopped: connect-health /livez p99 {stopped} ms, /livez {livez_code}; "
                f"{KCHC_PACKAGE}: {kchc_paused}")
    say("stack stopped")
    return res


def evaluate(res: dict[str, Any]) -> dict[str, Any]:
    lat = res.get("latency", {})
    mem = res.get("memory", {}).get("after_load", {})

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    ratios: dict[str, dict[str, Any]] = {}
    for mode, per in lat.items():
        base = per.get("connect_baseline", {})
        ratios[mode] = {k: {"p99_vs_connect": ratio(v.get("p99_ms"), base.get("p99_ms")),
                            "p50_vs_connect": ratio(v.get("p50_ms"), base.get("p50_ms"))}
                        for k, v in per.items() if k != "connect_baseline"}
    waitress = mem.get("waitress", {})
    mem_ratios = {k: {"rss_vs_waitress": ratio(v.get("rss_mb"), waitress.get("rss_mb")),
                      "pss_vs_waitress": ratio(v.get("pss_mb"), waitress.get("pss_mb"))}
                  for k, v in mem.items() if k != "waitress"}
    per_poll = [c["connect_health"]["per_poll"] for c in res.get("rest_calls", [])]
    gauges = [c["connect_health"]["gauge_rest_calls_last_poll"] for c in res.get("rest_calls", [])]
    apply_u = res.get("apply_unchanged", {})
    helm = res.get("helm", {}).get("results", [])

    def p99(mode: str, key: str) -> float | None:
        value: float | None = lat.get(mode, {}).get(key, {}).get("p99_ms")
        return value

    targets = {
        "livez_p99_le_5ms_16_clients_flood": _met(p99("flood", "waitress"), TARGET_LIVEZ_P99_MS),
        "livez_p99_le_5ms_16_clients_paced": _met(p99("paced", "waitress"), TARGET_LIVEZ_P99_MS),
        "livez_p99_le_5ms_connect_stopped_flood": _met(p99("flood", "waitress_connect_stopped"), TARGET_LIVEZ_P99_MS),
        "livez_p99_le_5ms_connect_stopped_paced": _met(p99("paced", "waitress_connect_stopped"), TARGET_LIVEZ_P99_MS),
        "sidecar_rss_le_40mb": _met(waitress.get("rss_mb"), TARGET_RSS_MB),
        "rest_calls_per_poll_constant": (len(set(per_poll)) == 1 and len(set(gauges)) == 1) if per_poll else None,
        "apply_unchanged_0_writes": (apply_u.get("max_writes") == 0 and set(apply_u.get("exits", [])) == {0})
        if apply_u else None,
        "apply_unchanged_under_5s": _met(apply_u.get("median_wall_s"), TARGET_APPLY_S),
        "helm_template_100_under_1s": all(h["median_s"] < TARGET_HELM_S for h in helm) if helm else None,
    }
    return {"latency_ratios": ratios, "memory_ratios": mem_ratios, "targets_met": targets}


def _met(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


# ------------------------------------------------------------------------------------------------ reporting

def fmt(v: Any, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def yes(v: bool | None) -> str:
    return "n/a" if v is None else ("**met**" if v else "**NOT met**")


def markdown(report: dict[str, Any]) -> str:
    res, ev, m = report["results"], report["evaluation"], report["machine"]
    v = report["versions"]
    prm = report["params"]
    lat = res.get("latency", {})
    t = ev["targets_met"]
    mem = res.get("memory", {}).get("after_load", {})
    au = res.get("apply_unchanged", {})
    helm = res.get("helm", {}).get("results", [])
    conns = prm["connections"]

    def p99(mode: str, key: str) -> str:
        return fmt(lat.get(mode, {}).get(key, {}).get("p99_ms"), " ms")

    calls = res.get("rest_calls", [])
    per_poll = (", ".join(f"{c['connect_health']['per_poll']:g}" for c in calls) + " with "
                + ", ".join(str(c["connectors"]) for c in calls) + " connectors") if calls else "-"
    setup = (f"Setup: one KRaft broker and one Connect distributed worker on 127.0.0.1 (ci/localstack.py), "
             f"{prm['connectors']} FileStream source connectors declared with `connect-health apply`, sidecars "
             f"polling every {prm['poll_interval']:g} s. Load: wrk, {conns} connections, one wrk thread, "
             f"{prm['rounds']} interleaved rounds of {prm['duration']:g} s per server and mode; the tables show the "
             "median over rounds (max: over all). *flood*: each client sends its next request as soon as the answer "
             f"arrives (latency then includes queueing behind the other {conns - 1} clients).")
    if prm["think_ms"]:
        setup += (f" *paced*: each client waits {prm['think_ms']:g} ms between requests (at most "
                  f"{1000 * conns / prm['think_ms']:.0f} requests/s in all).")
    lines = [
        "# connect-health benchmark results",
        "",
        f"Recorded {report['date']} by `make bench` (`bench/run.py`, {report['total_s']:.0f} s). Machine: "
        f"{m['nproc']} × {m['cpu_model']}, {m['mem_total_gib']} GiB, {m['os']}, kernel {m['kernel']}; load average "
        f"{report['loadavg_start'][0]} at the start, {report['loadavg_end'][0]} at the end. Timings on this shared "
        "machine are noisy: compare rows of the same run, not runs.",
        "",
        f"Versions: connect-health {v['connect-health']} (Flask {v['flask']}, waitress {v['waitress']}, gunicorn "
        f"{v['gunicorn']}), {KCHC_PACKAGE} {v[KCHC_PACKAGE]}, Kafka {v['kafka']} ({v['java']}), Python {v['python']},"
        f" {v['wrk']}, helm {v['helm3']} / {v['helm4']}.",
        "",
        setup,
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| /livez p99 ≤ 5 ms, {conns} clients, flood | {p99('flood', 'waitress')} |"
        f" {yes(t['livez_p99_le_5ms_16_clients_flood'])} |",
        f"| /livez p99 ≤ 5 ms, {conns} clients, paced | {p99('paced', 'waitress')} |"
        f" {yes(t['livez_p99_le_5ms_16_clients_paced'])} |",
        f"| /livez p99 ≤ 5 ms while the Connect JVM is SIGSTOPped, flood | {p99('flood', 'waitress_connect_stopped')} |"
        f" {yes(t['livez_p99_le_5ms_connect_stopped_flood'])} |",
        f"| /livez p99 ≤ 5 ms while the Connect JVM is SIGSTOPped, paced | {p99('paced', 'waitress_connect_stopped')} |"
        f" {yes(t['livez_p99_le_5ms_connect_stopped_paced'])} |",
        f"| sidecar RSS ≤ 40 MB (waitress, after load) | {fmt(mem.get('waitress', {}).get('rss_mb'), ' MB', 1)} |"
        f" {yes(t['sidecar_rss_le_40mb'])} |",
        f"| REST calls per poll independent of the connector count | {per_poll} |"
        f" {yes(t['rest_calls_per_poll_constant'])} |",
        f"| apply of {au.get('connectors')} unchanged connectors sends 0 writes | {au.get('max_writes')} |"
        f" {yes(t['apply_unchanged_0_writes'])} |",
        f"| apply of {au.get('connectors')} unchanged connectors < 5 s | {fmt(au.get('median_wall_s'), ' s')} |"
        f" {yes(t['apply_unchanged_under_5s'])} |",
        "| helm template with 100 declared connectors < 1 s | "
        + (", ".join(f"{h['helm']} {h['median_s'] * 1000:.0f} ms" for h in helm) or "not measured")
        + f" | {yes(t['helm_template_100_under_1s'])} |",
    ]
    names = {"connect_baseline": "Connect `GET /` (baseline)", "waitress": "connect-health `/livez`, waitress",
             "gunicorn": "connect-health `/livez`, gunicorn -w 1 --threads 8",
             "kchc": f"{KCHC_PACKAGE} {v[KCHC_PACKAGE]} `/`",
             "waitress_connect_stopped": "connect-health `/livez`, waitress, Connect SIGSTOPped"}
    for mode, per in lat.items():
        lines += [
            "",
            f"## Probe latency, {mode} ({prm['connectors']} connectors, {conns} concurrent clients)",
            "",
            "| server | requests | req/s | p50 | p90 | p99 | max | non-2xx / timeouts | p99 vs Connect `GET /` |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, label in names.items():
            s = per.get(key, {})
            if not s:
                continue
            if "error" in s:
                lines.append(f"| {label} | error: {s['error']} | | | | | | | |")
                continue
            r = ev["latency_ratios"].get(mode, {}).get(key, {}).get("p99_vs_connect")
            lines.append(f"| {label} | {s['requests']} | {fmt(s['rps'], '', 0)} | {fmt(s['p50_ms'], ' ms')} | "
                         f"{fmt(s['p90_ms'], ' ms')} | {fmt(s['p99_ms'], ' ms')} | {fmt(s['max_ms'], ' ms', 1)} | "
                         f"{s['non_2xx_3xx']} / {s['timeouts']} | "
                         f"{'1 (baseline)' if key == 'connect_baseline' else fmt(r, '×')} |")
    sp = res.get("single_probe", {})
    cs = res.get("connect_stopped", {})
    kp = cs.get("kchc_probe", {})
    lines += [
        "",
        f"One probe at a time (as a kubelet probes; connection setup included), {prm['connectors']} connectors: "
        f"connect-health median {fmt(sp.get('waitress', {}).get('median_ms'), ' ms')}, {KCHC_PACKAGE} median "
        f"{fmt(sp.get('kchc', {}).get('median_ms'), ' ms')} (max {fmt(sp.get('kchc', {}).get('max_ms'), ' ms')}).",
        "",
        f"Connect JVM stopped (SIGSTOP, {cs.get('seconds')} s): connect-health kept answering from its cached view "
        f"(/livez {cs.get('livez_status_at_end')}, /readyz {cs.get('readyz_status_at_end')} at the end; /livez turns "
        f"503 only after --unresponsive-after); {KCHC_PACKAGE}: {kp.get('error') or kp.get('status')} (it has no "
        "timeout on its calls to Connect).",
        "",
        f"{KCHC_PACKAGE} serves one request at a time (http.server.HTTPServer, listen backlog 5) and makes 1 + N "
        "REST calls per probe. wrk starts the clock when a request is written, so time spent waiting to be accepted "
        "is not in its numbers; it answers HTTP/1.0 and closes each connection, which wrk also counts as read "
        "errors (the answers are complete).",
        "",
        "## Memory (after the load runs)",
        "",
        "| server | processes | RSS (sum) | PSS (sum) | RSS vs waitress | idle RSS |",
        "|---|---|---|---|---|---|",
    ]
    idle = res.get("memory", {}).get("idle", {})
    floor = res.get("memory", {}).get("floor", {})
    mnames = {"waitress": "connect-health, waitress (`serve`)", "gunicorn": "connect-health, gunicorn -w 1 --threads 8",
              "kchc": f"{KCHC_PACKAGE} {v[KCHC_PACKAGE]}"}
    for key, label in mnames.items():
        s = mem.get(key, {})
        r = ev["memory_ratios"].get(key, {}).get("rss_vs_waitress")
        lines.append(f"| {label} | {s.get('processes')} | {fmt(s.get('rss_mb'), ' MB', 1)} | "
                     f"{fmt(s.get('pss_mb'), ' MB', 1)} | {'1' if key == 'waitress' else fmt(r, '×')} | "
                     f"{fmt(idle.get(key, {}).get('rss_mb'), ' MB', 1)} |")
    lines += [
        "",
        "RSS sums count pages a forked gunicorn worker shares with its master twice; PSS splits them (and also "
        "shared libraries with every other process of the host, which a sidecar container does not share). "
        f"MB = MiB. Floor measured in the same run: a bare Python {fmt(floor.get('python_bare'), ' MB', 1)}, a "
        f"Python that only imports what `serve` runs (Flask, requests, prometheus_client, PyYAML, waitress) "
        f"{fmt(floor.get('imports_only'), ' MB', 1)}.",
        "",
        "## REST calls to Connect",
        "",
        f"| connectors | connect-health GETs per poll (request log) | `rest_calls_last_poll` | {KCHC_PACKAGE} calls "
        "per probe | its probe time |",
        "|---|---|---|---|---|",
    ]
    for c in res.get("rest_calls", []):
        lines.append(f"| {c['connectors']} | {c['connect_health']['per_poll']:g} "
                     f"({c['connect_health']['requests']} in {c['connect_health']['polls']} polls) | "
                     f"{fmt(c['connect_health']['gauge_rest_calls_last_poll'], '', 0)} | "
                     f"{c['kchc_per_probe']['requests']} | {c['kchc_per_probe']['probe_ms']} ms |")
    if res.get("rest_calls"):
        lines += ["", "connect-health's calls in each poll: "
                  + "; ".join(f"`{p}`" for p in res["rest_calls"][-1]["connect_health"]["paths"]) + "."]
    ac = res.get("apply_create", {})
    lines += [
        "",
        "## connect-health apply",
        "",
        f"- growing the declarations to {ac.get('connectors')} connectors (creates the missing ones): "
        f"{fmt(ac.get('wall_s'), ' s')}, {ac.get('writes')} writes, {ac.get('runs')} run(s): {ac.get('last_summary')}",
        f"- the unchanged file applied again, {len(au.get('runs', []))} times: median "
        f"{fmt(au.get('median_wall_s'), ' s')} (whole process, Python start included); writes per run "
        f"{[r['writes'] for r in au.get('runs', [])]}; exit codes {au.get('exits')}",
        "",
        "## helm template (bench/chart_template_bench.py)",
        "",
    ]
    if helm:
        for h in helm:
            lines.append(f"- {h['helm']}: {h['connectors']} declared connectors, median {h['median_s'] * 1000:.0f} ms "
                         f"(min {h['min_s'] * 1000:.0f}, max {h['max_s'] * 1000:.0f}, {h['runs']} runs)")
    else:
        lines.append(f"- not measured: {res.get('helm', {}).get('error', 'skipped (--skip-helm)')}")
    gm, wm = mem.get("gunicorn", {}), mem.get("waitress", {})
    lines += [
        "",
        "## WSGI server",
        "",
        f"waitress (`connect-health serve`): {fmt(wm.get('rss_mb'), ' MB', 1)} RSS in {wm.get('processes')} process, "
        f"/livez p99 {p99('flood', 'waitress')} flood, {p99('paced', 'waitress')} paced. gunicorn -w 1 --threads 8: "
        f"{fmt(gm.get('rss_mb'), ' MB', 1)} RSS ({fmt(gm.get('pss_mb'), ' MB', 1)} PSS) in {gm.get('processes')} "
        f"processes, /livez p99 {p99('flood', 'gunicorn')} flood, {p99('paced', 'gunicorn')} paced.",
        "",
    ]
    return "\n".join(lines)


def _rel(p: Path) -> str:
    p = p.resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", type=int, default=100, help="connectors declared at the end (default 100)")
    ap.add_argument("--connections", type=int, default=16, help="concurrent probe clients (default 16)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of load per server and round (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server (default 3)")
    ap.add_argument("--think-ms", type=float, default=10.0,
                    help="paced mode: each client's pause between requests (default 10 ms; 0 skips that mode)")
    ap.add_argument("--poll-interval", type=float, default=1.0, help="sidecar poll interval (default 1 s)")
    ap.add_argument("--apply-runs", type=int, default=3, help="runs of apply on the unchanged file (default 3)")
    ap.add_argument("--skip-helm", action="store_true", help="leave out the helm template benchmark")
    ap.add_argument("--workdir", type=Path, default=TOOLS / "bench-run", help="logs and stack files")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest", help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    if args.connectors < 1 or args.rounds < 1 or args.duration <= 0 or args.connections < 2:
        ap.error("--connectors, --rounds >= 1, --duration > 0, --connections >= 2")

    localstack.require_java(localstack.KAFKA_VERSION)
    localstack.require_fetched(localstack.KAFKA_VERSION)
    wrk = ensure_wrk()
    kchc_exe = ensure_kchc()
    started = dt.datetime.now(dt.UTC)
    load_start = loadavg()
    results = bench(args, wrk, kchc_exe)
    if not args.skip_helm:
        say("helm template benchmark (bench/chart_template_bench.py)")
        results["helm"] = helm_bench(args.workdir.resolve())
    report = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total_s": round(time.monotonic() - T0, 1),
        "machine": machine(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "versions": versions(wrk),
        "params": {k: (_rel(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": {"livez_p99_ms": TARGET_LIVEZ_P99_MS, "rss_mb": TARGET_RSS_MB, "apply_unchanged_s": TARGET_APPLY_S,
                    "helm_template_s": TARGET_HELM_S},
        "results": results,
    }
    report["evaluation"] = evaluate(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    print()
    print(md_path.read_text())
    say(f"wrote {_rel(json_path)} and {_rel(md_path)}")
    for name, met in report["evaluation"]["targets_met"].items():
        say(f"target {name}: {'met' if met else 'n/a' if met is None else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
