#!/usr/bin/env python3
"""connect-health benchmarks on a real Kafka broker and Connect worker (127.0.0.1), baselines from the same run.

`make bench` runs this with the project venv (.tools/venv/bin/python bench/measure.py), then bench/report.py. It
starts a Kafka stack with the launcher (`import launcher`, the pinned KAFKA_VERSION), declares FileStream source
connectors with `connect-health apply`, and measures:

1. probe latency at --connections concurrent clients (wrk, --rounds interleaved rounds of --duration seconds each):
   connect-health /livez under waitress (what `serve` runs) and under gunicorn, kafka-connect-healthcheck 0.3.0's
   probe (the best existing sidecar, which calls Connect on every probe) and Connect's own GET / (the baseline);
   then connect-health /livez again while the Connect JVM is SIGSTOPped;
2. memory: VmRSS summed over each server's process tree (and PSS, which does not double-count pages a forking
   server shares), idle and after the load runs;
3. REST calls per poll at 1, 10 and --connectors connectors, from connect_health_rest_calls_last_poll and from
   Connect's request log, and kafka-connect-healthcheck's calls per probe for contrast;
4. `connect-health apply` of --connectors unchanged connectors: wall time and writes in the request log;
5. `helm template` with 100 declared FileStream connectors and 1,000 Debezium-sized ones
   (bench/chart_template_bench.py).

Timings on a shared 2-core machine are noisy: nothing here fails on speed. The numbers, with the targets they are
held against, go to bench/results/latest.json; bench/report.py turns that into latest.md (met or not, ratios).
wrk comes from Debian (installed when missing); kafka-connect-healthcheck is installed from PyPI into
.tools/bench-venv. Every process started here is stopped at the end (the launcher's process groups, and wrk's).

    .tools/venv/bin/python bench/measure.py                  # everything, about 2.5 minutes
    .tools/venv/bin/python bench/measure.py --quick --out /tmp/bench   # every part once, small: about a minute
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
from pathlib import Path
from typing import Any

import launcher

ROOT = launcher.ROOT
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent  # the venv this runs in (make bench: .tools/venv)
BENCH_VENV = launcher.TOOLS / "bench-venv"
KCHC_PACKAGE = "kafka-connect-healthcheck"
KCHC_VERSION = "0.3.0"
RESULTS = BENCH / "results"
WRK_LUA = BENCH / "wrk_report.lua"
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"

# Targets of issues 2, 3 and 4 (recorded with the numbers and reported by report.py, never asserted).
TARGETS = {"livez_p99_ms": 5.0, "rss_mb": 40.0, "apply_unchanged_s": 5.0, "helm_template_s": 1.0,
           "helm_template_1000_debezium_s": 2.0, "start_ping_s": 0.5}  # issue 22: also RSS <= kchc's, same run
CH_AGENT = "connect-health"  # the sidecar's ConnectClient sets this User-Agent
KCHC_AGENT = "python-requests/"  # kafka-connect-healthcheck uses requests' default

say = launcher.Progress("bench")


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
    say(f"installing {KCHC_PACKAGE}=={KCHC_VERSION} into {_rel(BENCH_VENV)}")  # .tools may be a symlink
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
           KCHC_PACKAGE: kchc_installed_version() or "?", "kafka": launcher.KAFKA_VERSION,
           "java": first_line([launcher.require_java(), "-version"]),
           "wrk": first_line([wrk, "--version"]).split(" [")[0]}
    for helm in ("helm3", "helm4"):
        exe = shutil.which(helm)  # make puts .tools/bin on PATH
        out[helm] = first_line([exe, "version", "--short"]) if exe else "missing"
    return out


# ------------------------------------------------------------------------------------------------- processes

class GunicornSidecar(launcher.Sidecar):
    """connect-health's app under gunicorn (bench/gunicorn_app.py), settings from CONNECT_HEALTH_* variables."""

    def command(self) -> list[str]:
        return [str(VENV_BIN / "gunicorn"), "-w", "1", "--threads", "8", "-b", f"{launcher.HOST}:{self.port}",
                "--chdir", str(BENCH), "--graceful-timeout", "5", "--log-level", "warning", "gunicorn_app:app"]


class HealthcheckSidecar(launcher.Sidecar):
    """kafka-connect-healthcheck, configured with its documented HEALTHCHECK_* variables (it listens on 0.0.0.0)."""

    def __init__(self, workdir: Path, worker: launcher.Worker, executable: Path) -> None:
        super().__init__(workdir, worker.url, name="kafka-connect-healthcheck", executable=str(executable))
        self.worker_id = worker.worker_id

    def command(self) -> list[str]:
        return [self.executable]

    def env(self) -> dict[str, str]:
        return launcher.sidecar_env({"HEALTHCHECK_PORT": str(self.port), "HEALTHCHECK_CONNECT_URL": self.connect_url,
                                     "HEALTHCHECK_CONNECT_WORKER_ID": self.worker_id,
                                     "HEALTHCHECK_LOG_LEVEL": "WARNING"})


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


def status_kb(path: Path, key: str) -> int:
    """A kB field (VmRSS, VmHWM, Pss, ...) of a /proc status-like file; 0 when the process is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def import_footprint() -> dict[str, float]:
    """RSS of a bare interpreter, and of one that only imports what `connect-health serve` runs (the floor)."""
    probe = "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    out = {}
    serve = "import connect_health.cli, connect_health.app, connect_health.poller, waitress; "
    for key, imports in (("python_bare", ""), ("imports_only", serve),  # as a library would: OpenSSL included
                         ("imports_as_command", "from connect_health.entry import http_client_without_ssl; "
                                                "http_client_without_ssl(); " + serve)):
        r = subprocess.run([str(VENV_BIN / "python"), "-c", imports + probe], capture_output=True, text=True,
                           timeout=60, env=launcher.sidecar_env())
        with contextlib.suppress(ValueError):
            out[key] = round(int(r.stdout.strip()) / 1024, 1)
    return out


def memory(pid: int | None) -> dict[str, Any]:
    """VmRSS and PSS summed over the process tree, in MB (MiB)."""
    if pid is None:
        return {}
    pids = process_tree(pid)
    rss = sum(status_kb(Path(f"/proc/{p}/status"), "VmRSS") for p in pids)
    pss = sum(status_kb(Path(f"/proc/{p}/smaps_rollup"), "Pss") for p in pids)
    return {"processes": len(pids), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1),
            "rss_once_mb": round(rss_once_kb(pids) / 1024, 1)}


def private_kb(pid: int) -> int:
    """The pages only this process maps (Private_Clean + Private_Dirty)."""
    smaps = Path(f"/proc/{pid}/smaps_rollup")
    return status_kb(smaps, "Private_Clean") + status_kb(smaps, "Private_Dirty")


def rss_once_kb(pids: list[int]) -> int:
    """The RSS of a process tree counting each page once: the first process's RSS, plus the pages only each of the
    others maps. For connect-health's probe process (probe_process.py, forked from the main one) this is what the
    pair holds: the pages they share are in the main process's RSS already. For one process it is its RSS."""
    if not pids:
        return 0
    return status_kb(Path(f"/proc/{pids[0]}/status"), "VmRSS") + sum(private_kb(p) for p in pids[1:])


READ_ONLY_ROOT = 'mount -o bind,remount,ro / && exec "$0" "$@"'  # run in a private mount namespace (unshare -m)


def read_only_root_works() -> bool:
    """Whether this machine can run a process on a read-only root filesystem (root, unshare): a write must fail."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh", "-c",
             f"touch {ROOT}/.bench-ro-probe"]
    r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    return r.returncode != 0 and "Read-only file system" in r.stderr


def start_times(connect_url: str, poll_interval: float, runs: int, workdir: Path) -> dict[str, Any]:
    """From exec to /ping answering, and to the first verdict (/startupz 200: a poll found the worker started), of
    `connect-health serve` started anew ``runs`` times, as the chart runs it: on a read-only root filesystem (a
    private mount namespace with / remounted read-only; the clock starts before unshare) with
    PYTHONDONTWRITEBYTECODE=1, the package's bytecode compiled beforehand as the image's build does."""
    import connect_health

    pkg = Path(connect_health.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(pkg)], check=False, timeout=120)
    ro = read_only_root_works()
    runs_out = []
    for i in range(runs):
        port, probe_port = free_port(), free_port()
        cmd = [launcher.connect_health_executable(), "serve", "--connect-url", connect_url, "--host", "127.0.0.1",
               "--port", str(port), "--probe-port", str(probe_port), "--poll-interval", f"{poll_interval:g}"]
        if ro:
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, *cmd]
        log = open(workdir / f"start-{i}.log", "wb")  # noqa: SIM115 (closed below)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=launcher.sidecar_env({"PYTHONDONTWRITEBYTECODE": "1"}))
        ping = verdict = cpu = None
        try:
            while time.perf_counter() - t0 < 30 and proc.poll() is None and verdict is None:
                path = "/ping" if ping is None else "/startupz"
                try:
                    code, _ = launcher.http("GET", f"http://127.0.0.1:{probe_port}{path}", timeout=2)
                except OSError:
                    code = None
                if code == 200:
                    if ping is None:
                        ping = time.perf_counter() - t0
                        cpu = process_cpu(proc.pid)  # the process's own, whatever the machine's load
                    else:
                        verdict = time.perf_counter() - t0
                else:
                    time.sleep(0.002)
        finally:
            stop(proc)
            log.close()
        runs_out.append({"ping_s": None if ping is None else round(ping, 3), "cpu_at_ping_s": cpu,
                         "first_verdict_s": None if verdict is None else round(verdict, 3)})
        say(f"start {i + 1}/{runs}: /ping after {runs_out[-1]['ping_s']} s, first verdict after "
            f"{runs_out[-1]['first_verdict_s']} s")
    pings = [r["ping_s"] for r in runs_out if r["ping_s"] is not None]
    verdicts = [r["first_verdict_s"] for r in runs_out if r["first_verdict_s"] is not None]
    cpus = [r["cpu_at_ping_s"] for r in runs_out if r["cpu_at_ping_s"] is not None]
    return {"read_only_root": ro, "poll_interval_s": poll_interval, "runs": runs_out,
            "cpu_at_ping_median_s": round(statistics.median(cpus), 3) if cpus else None,
            "ping_median_s": round(statistics.median(pings), 3) if pings else None,
            "ping_max_s": max(pings) if pings else None,
            "first_verdict_median_s": round(statistics.median(verdicts), 3) if verdicts else None,
            "first_verdict_max_s": max(verdicts) if len(verdicts) == len(runs_out) else None}


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None when gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 3)
    return None


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_write(r: launcher.Request) -> bool:
    return r.method in ("PUT", "POST", "DELETE") and "/config/validate" not in r.path


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

    def med(key: str) -> float:
        return round(float(statistics.median(r[key] for r in ok)), 3)

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


def run_apply(connect_url: str, declarations: Path, log: launcher.RequestLog) -> dict[str, Any]:
    """One `connect-health apply` process: wall time, exit code and what it sent (from Connect's request log)."""
    start_offset = log.offset()
    cmd = [launcher.connect_health_executable(), "apply", "--connectors-file", str(declarations),
           "--connect-url", connect_url, "--wait", "60"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=launcher.sidecar_env(), cwd=ROOT)
    wall = time.perf_counter() - t
    time.sleep(0.3)  # Jetty logs a request after its answer
    sent = [r for r in log.since(start_offset) if r.agent == CH_AGENT]
    writes = [r for r in sent if is_write(r) and "/restart" not in r.path]
    return {"exit": proc.returncode, "wall_s": round(wall, 3), "requests": len(sent),
            "writes": len(writes), "write_lines": [f"{r.method} {r.path}" for r in writes[:5]],
            "validates": sum(1 for r in sent if "/config/validate" in r.path),
            "gets": sum(1 for r in sent if r.method == "GET"),
            "summary": (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1][:300]}


def apply_until_done(connect_url: str, declarations: Path, log: launcher.RequestLog, tries: int = 6) -> dict[str, Any]:
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


def status(sidecar: launcher.Sidecar) -> dict[str, Any]:
    code, body = sidecar.get("/status?format=json", timeout=5)
    return body if code in (200, 503) and isinstance(body, dict) else {}


def running_connectors(doc: dict[str, Any]) -> int:
    n = 0
    for c in doc.get("connectors", []):
        states = [c.get("connector", {}).get("state")] + [t.get("state") for t in c.get("tasks", [])]
        if c.get("tasks") and all(s == "RUNNING" for s in states):
            n += 1
    return n


def wait_view(sidecar: launcher.Sidecar, count: int, timeout: float = 120.0) -> bool:
    try:
        launcher.wait_until(lambda: running_connectors(status(sidecar)) >= count, timeout,
                              f"connect-health to see {count} RUNNING connectors", interval=0.5)
        return True
    except launcher.StackError as e:
        say(f"warning: {e}")
        return False


def metric(sidecar: launcher.Sidecar, name: str) -> float | None:
    code, body = sidecar.get("/metrics")
    if code != 200 or not isinstance(body, str):
        return None
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)  # name with its labels, as written
    return float(m.group(1)) if m else None


def next_poll(sidecar: launcher.Sidecar, after: int, timeout: float = 30.0) -> int:
    polls: int = launcher.wait_until(lambda: (p := status(sidecar).get("polls", 0)) > after and p, timeout,
                                     "the next poll", interval=0.05)
    time.sleep(0.3)  # its last request is in the request log; the next poll is an interval away
    return polls


def calls_per_poll(sidecar: launcher.Sidecar, log: launcher.RequestLog, polls: int = 4) -> dict[str, Any]:
    """GETs connect-health sent per poll, counted in Connect's request log between two poll boundaries."""
    p0 = next_poll(sidecar, status(sidecar).get("polls", 0))
    off0 = log.offset()
    p1 = p0
    while p1 < p0 + polls:
        p1 = next_poll(sidecar, p1)
    off1 = log.offset()
    sent = [r for r in log.since(off0, off1) if r.agent == CH_AGENT]
    gauge = metric(sidecar, "connect_health_rest_calls_last_poll")
    paths = sorted({f"{r.method} {r.path}" for r in sent})
    return {"polls": p1 - p0, "requests": len(sent), "per_poll": round(len(sent) / (p1 - p0), 2),
            "gauge_rest_calls_last_poll": gauge, "paths": paths}


def kchc_calls_per_probe(kchc: launcher.Sidecar, log: launcher.RequestLog) -> dict[str, Any]:
    off0 = log.offset()
    t = time.perf_counter()
    code, _ = launcher.http("GET", kchc.url + "/", timeout=60)
    wall = time.perf_counter() - t
    time.sleep(0.3)
    sent = [r for r in log.since(off0) if r.agent.startswith(KCHC_AGENT)]
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
            launcher.http("GET", url, timeout=30)
        times.append((time.perf_counter() - t) * 1000)
    if not times:
        return {}
    return {"probes": len(times), "median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def drain(kchc: launcher.Sidecar, timeout: float = 120.0) -> float:
    """kafka-connect-healthcheck serves one request at a time: wait until the requests wrk left behind are done."""
    t = time.perf_counter()
    with contextlib.suppress(OSError):
        launcher.http("GET", kchc.url + "/ping", timeout=timeout)
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

def bench(args: argparse.Namespace, wrk: str, kchc_exe: Path) -> dict[str, Any]:
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    res: dict[str, Any] = {}
    counts = sorted({1, min(10, args.connectors), args.connectors})
    # The sidecars are services of the stack: stopped with it, whatever happens.
    with launcher.Stack(workdir / "stack", launcher.KAFKA_VERSION, progress=say) as stack:
        worker = stack.worker
        log = worker.request_log
        res["stack_start_s"] = {k: round(v, 1) for k, v in stack.timings.items()}
        ch = stack.add(launcher.Sidecar(workdir, stack.connect_url, ["--poll-interval", f"{args.poll_interval:g}"],
                                        name="connect-health"))
        kchc = stack.add(HealthcheckSidecar(workdir, worker, kchc_exe))
        gun = stack.add(GunicornSidecar(workdir, stack.connect_url, name="connect-health-gunicorn",
                                        executable=str(VENV_BIN / "gunicorn"),
                                        env={"CONNECT_HEALTH_CONNECT_URL": stack.connect_url,
                                             "CONNECT_HEALTH_POLL_INTERVAL": f"{args.poll_interval:g}"}))
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
        res["start"] = start_times(stack.connect_url, args.poll_interval, args.start_runs, workdir)
        res["apply_unchanged"] = {
            "connectors": args.connectors, "runs": unchanged,
            "median_wall_s": round(statistics.median(r["wall_s"] for r in unchanged), 3),
            "max_writes": max(r["writes"] for r in unchanged),
            "exits": [r["exit"] for r in unchanged]}

        # --- at rest (issue 22): a sidecar only probed and scraped, as the kubelet and Prometheus do ----------
        rest_probe_port = free_port()  # as the chart runs it: the probes on their own port, in their own process
        rest = stack.add(launcher.Sidecar(workdir, stack.connect_url, ["--poll-interval", f"{args.poll_interval:g}",
                                                                       "--probe-port", str(rest_probe_port)],
                                          name="connect-health-at-rest"))
        rest.start()
        running = 'connect_health_cluster_connectors{state="RUNNING"}'
        launcher.wait_until(lambda: (metric(rest, running) or 0) >= args.connectors, 60,
                            f"{args.connectors} RUNNING connectors in /metrics", interval=0.5)

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
        for _ in range(5):  # at rest = serving probes and metrics: a Prometheus scrape or five
            for sidecar in (ch, gun, rest):
                sidecar.get("/metrics")
            time.sleep(0.2)
        rest_probes = sequential_probes(f"http://127.0.0.1:{rest_probe_port}/livez", 50, 10)
        mem_load = {"waitress": memory(ch.pid), "gunicorn": memory(gun.pid), "kchc": memory(kchc.pid)}
        mem_rest = {**memory(rest.pid), "probes": rest_probes.get("probes"),
                    "flask_loaded": False}  # asked nothing but /livez, /metrics (and /ping while starting)
        ch.get("/status?format=html")  # the first page: Flask and Jinja are imported now
        mem_page = memory(ch.pid)
        res["memory"] = {"idle": mem_idle, "after_load": mem_load, "after_a_page": {"waitress": mem_page},
                         "at_rest": {"waitress": mem_rest},
                         "floor": import_footprint()}
        res["kchc_drain_s"] = drains
        res["single_probe"] = {"waitress": sequential_probes(ch.url + "/livez", 20, 10),
                               "kchc": sequential_probes(kchc.url + "/", 5, 15)}

        # --- connect-health while the Connect JVM is stopped --------------------------------------------
        say("SIGSTOP the Connect worker JVM")
        worker.pause()
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
                code, _ = launcher.http("GET", kchc.url + "/", timeout=3)
                kchc_paused: dict[str, Any] = {"status": code}
            except OSError as e:
                kchc_paused = {"status": None, "error": f"no answer within 3 s ({type(e).__name__})"}
            kchc_paused["waited_s"] = round(time.perf_counter() - t, 2)
            livez_code, _ = ch.get("/livez")
            readyz_code, _ = ch.get("/readyz")
        finally:
            worker.resume()
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


def _rel(p: Path) -> str:
    p = p.resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


QUICK = {"connectors": 2, "connections": 4, "duration": 1.0, "rounds": 1, "apply_runs": 1, "skip_helm": True,
         "start_runs": 1}


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
    ap.add_argument("--start-runs", type=int, default=5,
                    help="starts of `serve` timed to /ping and the first verdict (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="every part once, small (a check that the benchmark works, not a measurement): "
                         + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items() if v is not True)
                         + ", --skip-helm")
    ap.add_argument("--workdir", type=Path, default=launcher.TOOLS / "bench-run", help="logs and stack files")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the results go (JSON; default bench/results/latest.json, with --quick "
                         "<workdir>/quick.json)")
    args = ap.parse_args()
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.out is None:
        args.out = args.workdir / "quick.json" if args.quick else RESULTS / "latest.json"
    if args.connectors < 1 or args.rounds < 1 or args.duration <= 0 or args.connections < 2:
        ap.error("--connectors, --rounds >= 1, --duration > 0, --connections >= 2")

    launcher.require_java(launcher.KAFKA_VERSION)
    launcher.require_fetched(launcher.KAFKA_VERSION)
    wrk = ensure_wrk()
    kchc_exe = ensure_kchc()
    started = dt.datetime.now(dt.UTC)
    load_start = loadavg()
    results = bench(args, wrk, kchc_exe)
    if not args.skip_helm:
        say("helm template benchmark (bench/chart_template_bench.py)")
        results["helm"] = helm_bench(args.workdir.resolve())
    recorded = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total_s": round(time.monotonic() - say.t0, 1),
        "machine": machine(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "versions": versions(wrk),
        "params": {k: (_rel(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": TARGETS,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(recorded, indent=2) + "\n")
    say(f"wrote {_rel(args.out)} (bench/report.py {_rel(args.out)} writes the report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
