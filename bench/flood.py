#!/usr/bin/env python3
"""A connection flood with trickled headers against one ``connect-health serve`` (issue 18, item 2), while a
kubelet-like prober measures ``/livez``.

The attacker (a child process, so it does not share the prober's interpreter) holds ``--connections`` connections,
each sending a request line and then one header line every ``--trickle`` seconds, never finishing; a connection the
sidecar closes is opened again at once (at most ``--reopen-rate`` a second). The prober opens a fresh connection
per probe from 127.0.0.1 every ``--period`` seconds with the kubelet's default 1 s timeout. Variants:

- ``same-address``: the flood from 127.0.0.1, the prober's own address (a hostNetwork pod shares the kubelet's);
- ``many-addresses``: the flood from ``--sources`` other loopback addresses (127.0.0.2...), each under the
  per-address bound, together past the total one;
- ``nofile-1024``: as ``same-address``, the sidecar started with a hard open-file limit of 1,024 (it cannot raise it);
- ``probe-port``: as ``many-addresses`` on the main port, the prober on ``--probe-port``;
- ``probe-port-flooded``: the many-addresses flood aimed at ``--probe-port`` itself, the prober there too.

Connect is bench/scale_connect.py's stand-in (10 connectors): the flood is about the sidecar's listener, not Connect.
Everything listens on and connects to loopback addresses; each variant is bounded by ``--seconds``.

    .tools/venv/bin/python bench/flood.py                          # about 3 minutes, writes results/flood.{json,md}
    .tools/venv/bin/python bench/flood.py --variants same-address --seconds 10 --out /tmp/flood
    .tools/venv/bin/python bench/flood.py --sidecar-src /path/to/old/sidecar/src   # the same flood, other code

Targets (issue 18): /livez p99 < 100 ms, 0 timeouts, log < 1 MB. Recorded, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import scale_connect  # bench/: a script's own folder

HERE = Path(__file__).resolve().parent
TARGET_P99_MS = 100.0
TARGET_LOG_BYTES = 1_000_000
VARIANTS = ("same-address", "many-addresses", "nofile-1024", "probe-port", "probe-port-flooded")


# --- the attacker (child process) ---------------------------------------------------------------------------------

def attack(port: int, connections: int, sources: list[str], trickle: float, seconds: float, reopen_rate: int) -> None:
    """Hold ``connections`` trickling connections to 127.0.0.1:``port`` for ``seconds``; print counts as JSON."""
    socks: dict[socket.socket, list[Any]] = {}  # socket -> [when its next line is due, request line sent]
    opened = closed = failed = 0
    end = time.monotonic() + seconds
    tick = 0.05
    src = 0
    while time.monotonic() < end:
        now = time.monotonic()
        budget = max(1, int(reopen_rate * tick))
        while len(socks) < connections and budget > 0:
            budget -= 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((sources[src % len(sources)], 0))
                src += 1
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            except OSError:
                s.close()
                failed += 1
                break
            socks[s] = [now, False]
            opened += 1
        for s, state in list(socks.items()):
            if state[0] > now:
                continue
            try:
                if state[1] and s.recv(4096) == b"":
                    raise ConnectionResetError
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                del socks[s]
                s.close()
                closed += 1
                continue
            try:
                s.send(b"X-Trickle: 1\r\n" if state[1] else b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                state[:] = [now + trickle, True]
            except (BlockingIOError, InterruptedError):
                state[0] = now + 0.2  # still connecting (the backlog was full): try again soon
            except OSError:
                del socks[s]
                s.close()
                closed += 1
        time.sleep(tick)
    for s in socks:
        s.close()
    print(json.dumps({"opened": opened, "closed_by_sidecar": closed, "connect_failed": failed,
                      "held_at_end": len(socks)}), flush=True)


# --- the bench (parent) -------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe(port: int, timeout: float = 1.0) -> tuple[str, float]:
    """One kubelet-like probe: a fresh connection, GET /livez, the whole answer read."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/livez", headers={"User-Agent": "kube-probe/1.31", "Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        answer = str(resp.status)
    except TimeoutError:
        answer = "timeout"
    except OSError as exc:
        answer = f"error: {type(exc).__name__}"
    except http.client.HTTPException as exc:
        answer = f"error: {type(exc).__name__}"
    finally:
        conn.close()
    return answer, time.perf_counter() - t0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def start_sidecar(connect_url: str, port: int, log: Path, nofile: tuple[int, int] | None,
                  sidecar_src: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    exe = shutil.which("connect-health", path=str(Path(sys.executable).parent)) or "connect-health"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_")}
    env["PYTHONPATH"] = str(sidecar_src)

    def limits() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "serve", "--connect-url", connect_url, "--worker-id", "10.0.0.1:8083",
                                 "--host", "127.0.0.1", "--port", str(port), "--poll-interval", "1", *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=limits)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if probe(port)[0] in ("200", "503"):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"the sidecar exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sidecar did not answer within 30 s")


def run_variant(name: str, args: argparse.Namespace, connect_url: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    log = workdir / f"{name}.log"
    nofile = (1024, 1024) if name == "nofile-1024" else None
    many = name in ("many-addresses", "probe-port", "probe-port-flooded")
    sources = [f"127.0.0.{i}" for i in range(2, 2 + args.sources)] if many else ["127.0.0.1"]
    probe_port = free_port() if name.startswith("probe-port") else None
    extra = ["--probe-port", str(probe_port)] if probe_port else []
    target = probe_port if name == "probe-port-flooded" and probe_port else port
    probed = probe_port or port
    sidecar = start_sidecar(connect_url, port, log, nofile, args.sidecar_src, extra)
    try:
        time.sleep(1.5)  # a first poll, so /livez has a verdict
        attacker = subprocess.Popen([sys.executable, __file__, "--attack", str(target), "--connections",
                                     str(args.connections), "--trickle", str(args.trickle), "--seconds",
                                     str(args.seconds + args.ramp), "--reopen-rate", str(args.reopen_rate),
                                     "--attack-sources", ",".join(sources)],
                                    stdout=subprocess.PIPE, text=True, preexec_fn=raise_fds)
        time.sleep(args.ramp)  # the flood opens its connections
        answers: list[str] = []
        latencies: list[float] = []
        log_at_start = log.stat().st_size
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            answer, took = probe(probed)
            answers.append(answer)
            if answer in ("200", "503"):
                latencies.append(took)
            time.sleep(max(0.0, args.period - (time.monotonic() - t0)))
        out, _ = attacker.communicate(timeout=args.seconds + 60)
        flood = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        after = [probe(probed)[0] for _ in range(3)]
    finally:
        rss = peak_rss_mb(sidecar.pid)
        sidecar.terminate()
        try:
            sidecar.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sidecar.kill()
            sidecar.wait()
    text = log.read_text(errors="replace")
    counted = [line for line in text.splitlines() if "connections refused or cut" in line]
    timeouts = answers.count("timeout")
    run = worst = 0
    for a in answers:  # the kubelet restarts the container after failureThreshold (default 3) failures in a row
        run = run + 1 if a not in ("200", "503") else 0
        worst = max(worst, run)
    others = {a: answers.count(a) for a in sorted(set(answers)) if a not in ("200", "503", "timeout")}
    p99 = 1000 * quantile(latencies, 0.99)
    return {
        "variant": name, "flood_sources": len(sources), "flooded": "probe port" if target != port else "main port",
        "probed": "probe port" if probe_port else "main port",
        "sidecar_nofile": "1024 (hard)" if nofile else "raised to hard",
        "probes": len(answers), "answers": {a: answers.count(a) for a in sorted(set(answers))},
        "timeouts": timeouts, "errors": others, "most_failures_in_a_row": worst,
        "p50_ms": round(1000 * quantile(latencies, 0.5), 2), "p99_ms": round(p99, 2),
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
        "log_bytes": len(text.encode()), "log_bytes_during_flood": len(text.encode()) - log_at_start,
        "log_count_lines": len(counted), "last_count_line": counted[-1][-400:] if counted else "",
        "tracebacks": text.count("Traceback"), "peak_rss_mb": round(rss, 1), "flood": flood, "after": after,
        "met": timeouts == 0 and not others and p99 < TARGET_P99_MS and len(text.encode()) < TARGET_LOG_BYTES,
    }


def raise_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def markdown(doc: dict[str, Any]) -> str:
    a = doc["args"]
    lines = [
        "## Connection flood with trickled headers (issue 18, item 2)", "",
        f"Measured {doc['date']} (load average {', '.join(f'{x:.1f}' for x in doc['loadavg'])}, "
        f"{doc['cpus']} CPUs) by `bench/flood.py`: {a['connections']:,} connections, each a request line then one "
        f"header line every {a['trickle']:g} s, never finished, reopened when the sidecar closes them (at most "
        f"{a['reopen_rate']:,}/s); a kubelet-like prober on 127.0.0.1 (a fresh connection per probe, 1 s timeout) "
        f"every {a['period'] * 1000:g} ms for {a['seconds']:g} s after a {a['ramp']:g} s ramp. Sidecar code: "
        f"`{doc['sidecar_src']}`.", "",
        "| variant | flood from, to | probes to | sidecar open files | probes | timeouts (+ errors) | most failed in a "
        "row | /livez p50 / p99 / max "
        "| log (during flood) "
        "| count lines | tracebacks | peak RSS | flood: opened / closed by sidecar | target met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        f = r["flood"]
        lines.append(
            f"| {r['variant']} | {r['flood_sources']} address(es), {r['flooded']} | {r['probed']} | "
            f"{r['sidecar_nofile']} | {r['probes']} | "
            f"{r['timeouts']}{' + ' + str(r['errors']) if r['errors'] else ''} | {r['most_failures_in_a_row']} | "
            f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']} ms | {r['log_bytes']:,} B "
            f"({r['log_bytes_during_flood']:,} B) | {r['log_count_lines']} | {r['tracebacks']} | "
            f"{r['peak_rss_mb']} MB | "
            f"{f.get('opened', '?'):,} / {f.get('closed_by_sidecar', '?'):,} | {'yes' if r['met'] else 'NO'} |")
    lines += ["", f"Targets: /livez p99 < {TARGET_P99_MS:g} ms, 0 timeouts, log < {TARGET_LOG_BYTES:,} B. "
              "Timings on a shared 2-core machine are noisy: compare rows of one run.", ""]
    for r in doc["results"]:
        if r["last_count_line"]:
            lines.append(f"- {r['variant']}, last count line: `{r['last_count_line']}`")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--connections", type=int, default=4100)
    ap.add_argument("--sources", type=int, default=128, help="addresses of the many-addresses flood")
    ap.add_argument("--trickle", type=float, default=5.0, help="seconds between a connection's header lines")
    ap.add_argument("--reopen-rate", type=int, default=2000, help="connections the attacker opens per second at most")
    ap.add_argument("--seconds", type=float, default=45.0, help="probing time per variant")
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds the flood runs before probing starts")
    ap.add_argument("--period", type=float, default=0.1, help="seconds between probes")
    ap.add_argument("--sidecar-src", type=Path, default=HERE.parent / "sidecar" / "src")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "flood", help="writes OUT.json and OUT.md")
    ap.add_argument("--attack", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--attack-sources", default="127.0.0.1", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attack is not None:
        attack(args.attack, args.connections, args.attack_sources.split(","), args.trickle, args.seconds,
               args.reopen_rate)
        return 0
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants) or not 1 <= args.connections <= 15000 or \
            not 1 <= args.sources <= 250 or not 0 < args.seconds <= 600 or args.period <= 0:
        ap.error(f"variants of {VARIANTS}; connections 1-15000; sources 1-250; seconds in (0, 600]; period > 0")
    raise_fds()
    connect = scale_connect.serve(scale_connect.Cluster(10, 4, 10))
    connect_url = f"http://127.0.0.1:{connect.server_port}"
    results = []
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        for name in variants:
            print(f"flood: {name} ...", file=sys.stderr, flush=True)
            results.append(run_variant(name, args, connect_url, Path(tmp)))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    connect.shutdown()
    src = args.sidecar_src.resolve()
    shown = str(src.relative_to(HERE.parent)) if src.is_relative_to(HERE.parent) else str(src)
    doc = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "loadavg": list(os.getloadavg()),
           "cpus": os.cpu_count(), "sidecar_src": shown, "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
           "args": {k: v for k, v in vars(args).items() if k in ("connections", "sources", "trickle", "reopen_rate",
                                                                  "seconds", "ramp", "period")},
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
