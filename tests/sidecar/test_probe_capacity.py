"""Probes answer whatever else arrives (issue 11, item 3): bounded bodies, many idle or half-sent connections, heavy
pages unable to take the probes' threads, and /status and /metrics behind a token when one is set.

A real ``connect-health serve`` process against the fake worker; the timing target (p99 < 50 ms under 1,000 slow
clients) is measured by ``make faults`` (bench/faults), not asserted here.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from connect_health.app import ProbeAnswers

from .conftest import WORKER
from .fakeconnect import FakeConnect
from .test_cli import CLI, clean_env, free_port


@pytest.fixture
def served(fake: FakeConnect, tmp_path: Path) -> Iterator[str]:
    token = tmp_path / "token"
    token.write_text("page-token-4Rt\n")
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--connect-url", fake.url, "--worker-id", WORKER, "--host", "127.0.0.1",
                             "--port", str(port), "--pages-token-file", str(token)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                if requests.get(base + "/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_probes_answer_past_hundreds_of_half_sent_requests(served: str) -> None:
    port = int(served.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        for _ in range(300):  # twice what once exhausted the connection limit
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")  # never finished
            idle.append(s)
        for _ in range(5):
            assert requests.get(served + "/livez", timeout=5).status_code == 200
    finally:
        for s in idle:
            s.close()


def test_a_large_body_is_refused_before_it_is_read(served: str) -> None:
    port = int(served.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n" + b"x" * 65536)
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert requests.get(served + "/livez", timeout=5).status_code == 200


def test_status_and_metrics_need_the_token_and_the_probes_do_not(served: str) -> None:
    for path in ("/status", "/metrics", "/"):
        assert requests.get(served + path, timeout=5).status_code == 401
        wrong = requests.get(served + path, headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.status_code == 401 and "page-token" not in wrong.text
        good = requests.get(served + path, headers={"Authorization": "Bearer page-token-4Rt"}, timeout=5)
        assert good.status_code == 200
    for path in ("/livez", "/readyz", "/startupz", "/ping", "/health"):
        assert requests.get(served + path, timeout=5).status_code in (200, 503)


def test_heavy_pages_cannot_take_the_probes_lane(make_sidecar: Any) -> None:
    """Pages beyond HEAVY_LANE at once get 503 at once, so the threads left always answer the probes."""
    sidecar = make_sidecar()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_page(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        entered.release()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    lane = ProbeAnswers(sidecar.poller, slow_page)
    results: list[str] = []

    def call(path: str) -> None:
        out: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            out.append(status)
            return lambda data: None

        lane({"REQUEST_METHOD": "GET", "PATH_INFO": path}, start_response)
        results.append(out[0])

    busy = [threading.Thread(target=call, args=("/metrics",), daemon=True) for _ in range(lane.heavy_limit)]
    for t in busy:
        t.start()
    for _ in busy:
        assert entered.acquire(timeout=5)
    call("/status")  # one more heavy page: refused at once, not queued behind the others
    call("/livez")
    release.set()
    for t in busy:
        t.join(10)
    assert results[0].startswith("503") and results[1].startswith("200"), results
    assert sorted(results[2:]) == ["200 OK"] * lane.heavy_limit
