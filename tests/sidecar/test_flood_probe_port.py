"""``--probe-port``: a second listener serving only the probes, with its own thread, bounds and deadline (issue 18,
item 2). A real ``connect-health serve`` process with 256 open files, as in test_flood.py."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from connect_health.probe_listener import ProbeListener

from .fakeconnect import FakeConnect
from .test_cli import free_port, run
from .test_cli_bad_input import one_line_exit_2
from .test_flood import FD_LIMIT, LOG_BUDGET, Served, Trickle, closed_while_trickling, start


@pytest.fixture
def two_ports(fake: FakeConnect, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    probe_port = free_port()
    proc, out = start(fake, tmp_path, (FD_LIMIT, FD_LIMIT), "--probe-port", str(probe_port))
    try:
        yield out, f"http://127.0.0.1:{probe_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_probe_port_serves_the_probes_and_nothing_else(two_ports: tuple[Served, str]) -> None:
    main, probes = two_ports
    deadline = time.monotonic() + 20  # the probe process hears of a new verdict within probe_process.LOOK_EVERY
    while requests.get(probes + "/startupz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the probe port never saw the worker started"
        time.sleep(0.1)
    time.sleep(0.2)
    for path in ("/livez", "/readyz", "/startupz", "/health", "/ping"):
        on_probe_port = requests.get(probes + path, timeout=10)
        on_main = requests.get(main.base + path, timeout=10)
        assert on_probe_port.status_code in (200, 503), path
        assert (on_probe_port.status_code, on_probe_port.json().keys()) == (on_main.status_code,
                                                                            on_main.json().keys()), path
        assert on_probe_port.headers["Cache-Control"] == "no-store"
    head = requests.head(probes + "/livez", timeout=10)
    assert head.status_code == 200 and head.content == b""
    for path in ("/status", "/metrics", "/", "/livez/../status"):
        assert requests.get(probes + path, timeout=10).status_code == 404, path
    assert requests.post(probes + "/livez", data=b"x", timeout=10).status_code == 405
    assert requests.get(main.base + "/status", timeout=10).status_code == 200  # the pages stay on --port
    with socket.create_connection(("127.0.0.1", int(probes.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 431"), "an oversized request is refused"


def test_the_probe_port_answers_through_a_flood_of_it_and_of_the_main_port(two_ports: tuple[Served, str]) -> None:
    main, probes = two_ports
    probe_port = int(probes.rsplit(":", 1)[1])
    on_main = Trickle(main.port, [f"127.0.0.{i}" for i in range(2, 12)], 20)
    on_probes = Trickle(probe_port, ["127.0.0.1"] + [f"127.0.0.{i}" for i in range(2, 12)], 20)
    answers = []
    try:
        for _ in range(6):
            on_main.step()
            on_probes.step()
            answers.append(requests.get(probes + "/livez", timeout=10).status_code)
            time.sleep(1)
    finally:
        on_main.close()
        on_probes.close()
    assert answers == [200] * len(answers)
    log = main.log_text()
    assert len(log.encode()) < LOG_BUDGET and "Traceback" not in log, log[-3000:]


def test_the_probe_port_closes_a_trickled_request_at_its_deadline(two_ports: tuple[Served, str]) -> None:
    _, probes = two_ports
    assert closed_while_trickling(int(probes.rsplit(":", 1)[1]))


def test_the_environment_twin_sets_it(fake: FakeConnect, tmp_path: Path) -> None:
    probe_port = free_port()
    proc, _ = start(fake, tmp_path, (FD_LIMIT, FD_LIMIT), env={"CONNECT_HEALTH_PROBE_PORT": str(probe_port)})
    try:
        assert requests.get(f"http://127.0.0.1:{probe_port}/livez", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_bad_probe_ports_are_one_line_and_exit_2(fake: FakeConnect) -> None:
    port = free_port()
    one_line_exit_2(run("serve", "--connect-url", fake.url, "--host", "127.0.0.1", "--port", str(port),
                        "--probe-port", str(port)), "--probe-port")
    one_line_exit_2(run("serve", "--host", "127.0.0.1", "--probe-port", "70000"), "--probe-port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("serve", "--connect-url", fake.url, "--host", "127.0.0.1", "--port", str(free_port()),
                     "--probe-port", str(taken.getsockname()[1]))
    one_line_exit_2(result, "--probe-port")
    assert fake.requests() == []




def test_a_bug_answering_one_probe_does_not_stop_the_probe_port(caplog: pytest.LogCaptureFixture) -> None:
    """In-process: the listener's loop survives an exception (a dead probe port would get Connect killed)."""
    calls = []

    def answers() -> dict[str, tuple[str, bytes]]:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("boom")
        return {"/livez": ("200 OK", b'{"status":"ok"}')}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = ProbeListener(sock, answers, logging.getLogger("connect_health.probe_listener"), total=16)
    listener.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/livez"
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                requests.get(url, timeout=10)
        assert requests.get(url, timeout=10).json() == {"status": "ok"}
    finally:
        listener.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "RuntimeError" in caplog.text
