"""Load and probe clients for bench/scale.py's "probes isolated from pages" measurement (issue 22), each run as its
own process so that neither's GIL is the sidecar's or the other's:

    python bench/readers.py read --port 8090 --clients 24 --seconds 10   # page readers; prints a JSON summary
    python bench/readers.py probe --port 8091 --count 1000                # /livez one at a time; JSON latencies

``read``: each client keeps one connection and asks, in turn, /metrics, /status?format=json and /status as HTML,
as fast as the answers come. ``probe``: one GET /livez at a time on a new connection each (as the kubelet probes),
for ``--count`` probes or ``--seconds``; prints p50/p90/p99/max in ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from collections import Counter

PAGES: tuple[tuple[str, dict[str, str]], ...] = (
    ("/metrics", {}), ("/status?format=json", {}), ("/status", {"Accept": "text/html"}))


def read(port: int, clients: int, seconds: float) -> dict[str, object]:
    stop = time.monotonic() + seconds
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = i
        while time.monotonic() < stop:
            path, headers = PAGES[n % len(PAGES)]
            n += 1
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                key = f"{path.split('?')[0]} {resp.status}"
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                key = f"error {type(e).__name__}"
            with lock:
                codes[key] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    took = time.monotonic() - t0
    total = sum(codes.values())
    return {"clients": clients, "seconds": round(took, 1), "requests": total,
            "per_second": round(total / max(took, 1e-9), 1), "answers": dict(sorted(codes.items()))}


def probe(port: int, count: int, seconds: float) -> dict[str, object]:
    times: list[float] = []
    failures: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    while len(times) < count and time.monotonic() < stop:
        t = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/livez")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures[str(resp.status)] += 1
        except (OSError, http.client.HTTPException) as e:
            failures[type(e).__name__] += 1
        finally:
            conn.close()
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(0.002)  # a few probes a second per container is what a kubelet sends; this is many more
    times.sort()

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(p * len(times)))], 2)

    return {"probes": len(times), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "max_ms": round(times[-1], 2), "mean_ms": round(statistics.fmean(times), 2),
            "failures": dict(failures)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("read", "probe"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args(argv)
    if not 0 < args.port < 65536 or args.clients < 1 or args.seconds <= 0 or args.count < 1:
        ap.error("--port 1-65535, --clients >= 1, --seconds > 0, --count >= 1")
    out = read(args.port, args.clients, args.seconds) if args.mode == "read" else probe(args.port, args.count,
                                                                                          args.seconds)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
