"""No client can starve the probes (issue 18, item 2): trickled headers, more connections than the sidecar has file
descriptors, floods from the probe's own address and from many others.

A real ``connect-health serve`` process against the fake worker, started with a low open-file limit (soft and hard
256, so it cannot raise it) and its log in a file. Flooders trickle one header line per connection each second
from 127.0.0.1 (the prober's own address, as a hostNetwork pod shares the kubelet's) or from other loopback
addresses (127.0.0.2...: every 127/8 address is this machine's loopback). Everything is bounded in count and time;
nothing here is timed beyond "answered within a generous timeout" (the p99 target is bench/flood.py's).
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .conftest import WORKER
from .fakeconnect import FakeConnect
from .test_cli import CLI, clean_env, free_port

FD_LIMIT = 256  # the sidecar's soft and hard RLIMIT_NOFILE in these tests
LOG_BUDGET = 100_000  # bytes of log a whole flood may cost


@pytest.fixture(autouse=True, scope="module")
def _enough_fds_here() -> None:
    """This test process opens hundreds of client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 <= hard or (soft < hard and hard == resource.RLIM_INFINITY):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))


@dataclass
class Served:
    base: str
    port: int
    pid: int
    log: Path

    def livez(self) -> int:
        return requests.get(self.base + "/livez", timeout=10).status_code

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start(fake: FakeConnect, tmp_path: Path, limits: tuple[int, int], *extra: str,
          port: int | None = None, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Served]:
    port = port or free_port()
    log = tmp_path / "serve.log"

    def lower_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    with open(log, "wb") as out:  # a file, not a pipe: a flood of log lines must not block the server on write
        proc = subprocess.Popen([CLI, "serve", "--connect-url", fake.url, "--worker-id", WORKER, "--host",
                                 "127.0.0.1", "--port", str(port), "--poll-interval", "1", *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=clean_env(**(env or {})),
                                preexec_fn=lower_fd_limit)
    served = Served(f"http://127.0.0.1:{port}", port, proc.pid, log)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(served.base + "/ping", timeout=1).status_code == 200:
                return proc, served
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, served.log_text()
        assert time.monotonic() < deadline, served.log_text()
        time.sleep(0.05)


@pytest.fixture
def served(fake: FakeConnect, tmp_path: Path) -> Iterator[Served]:
    proc, out = start(fake, tmp_path, (FD_LIMIT, FD_LIMIT))
    try:
        yield out
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Trickle:
    """Connections that each send a request line, then one header line at a time and never finish."""

    def __init__(self, port: int, sources: list[str], per_source: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = []
        self.closed_by_server = 0
        for _ in range(per_source):
            for src in sources:
                self.socks.append(self._open(src))

    def _open(self, src: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(src, 0))
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        return s

    def step(self) -> None:
        """One header line on every connection still open; count those the server closed."""
        alive = []
        for s in self.socks:
            try:
                if s.recv(1024) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass
            except OSError:
                self.closed_by_server += 1
                s.close()
                continue
            try:
                s.send(b"X-Trickle: 1\r\n")
                alive.append(s)
            except BlockingIOError:
                alive.append(s)
            except OSError:
                self.closed_by_server += 1
                s.close()
        self.socks = alive

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []


def flood_and_probe(served: Served, sources: list[str], per_source: int, seconds: int = 6) -> list[int]:
    """Open the flood, then trickle it for ``seconds``, probing /livez from 127.0.0.1 once a second."""
    flood = Trickle(served.port, sources, per_source)
    answers = []
    try:
        for _ in range(seconds):
            flood.step()
            answers.append(served.livez())
            time.sleep(1)
    finally:
        flood.close()
    return answers


def test_a_flood_from_the_probes_own_address_cannot_starve_them(served: Served) -> None:
    """300 trickling connections from 127.0.0.1: past the per-address bound and past the sidecar's 256 files."""
    answers = flood_and_probe(served, ["127.0.0.1"], 300)
    assert answers == [200] * len(answers)
    assert served.livez() == 200
    log = served.log_text()
    assert len(log.encode()) < LOG_BUDGET, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_flood_from_many_addresses_cannot_starve_them(served: Served) -> None:
    """300 trickling connections, 10 from each of 30 other addresses (each under the per-address bound): together
    past the sidecar's 256 files, so the total bound has to make room for the prober."""
    answers = flood_and_probe(served, [f"127.0.0.{i}" for i in range(2, 32)], 10)
    assert answers == [200] * len(answers)
    log = served.log_text()
    assert len(log.encode()) < LOG_BUDGET, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_refused_connections_are_logged_with_a_count_not_one_line_each(served: Served) -> None:
    flood_and_probe(served, ["127.0.0.1"], 300, seconds=3)
    lines = [line for line in served.log_text().splitlines() if "connections" in line and "refused" in line]
    assert 1 <= len(lines) <= 3, served.log_text()[-3000:]


def closed_while_trickling(port: int) -> bool:
    """Whether the server closes one connection that sends a header line every 0.5 s, within 20 s."""
    flood = Trickle(port, ["127.0.0.1"], 1)
    try:
        for _ in range(40):  # 20 s: far past the deadline; under an idle timeout alone it never closes
            flood.step()
            if flood.closed_by_server:
                return True
            time.sleep(0.5)
        return False
    finally:
        flood.close()


def test_a_request_trickled_forever_is_closed_at_its_deadline(served: Served) -> None:
    """Each header line resets an idle timeout; only a deadline for the whole request ends the connection."""
    assert closed_while_trickling(served.port)
    assert served.livez() == 200


def test_the_open_file_limit_is_raised_to_the_hard_limit_once(fake: FakeConnect, tmp_path: Path) -> None:
    proc, out = start(fake, tmp_path, (FD_LIMIT, 1024))
    try:
        limits = Path(f"/proc/{out.pid}/limits").read_text()
        (row,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
        assert row.split()[3:5] == ["1024", "1024"], row
        lines = [line for line in out.log_text().splitlines() if "open files" in line]
        assert len(lines) == 1 and "256" in lines[0] and "1024" in lines[0], out.log_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
