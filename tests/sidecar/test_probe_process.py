"""The probe port in a process of its own (probe_process.py, probe_child.py, issue 22): what it answers, and its
lifecycle beside the main process. The process tests run the real ``connect-health serve`` against the FakeConnect
stand-in (test_flood.py's start), and kill, stop and continue its processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from connect_health import probe_child
from connect_health.probe_child import Feed, frame

from .fakeconnect import FakeClock, FakeConnect
from .test_cli import free_port
from .test_flood import FD_LIMIT, Served, start

ANSWERS = {"/livez": ("200 OK", b'{"status": "ok"}'), "/readyz": ("503 SERVICE UNAVAILABLE", b'{"status": "x"}')}


def test_the_feed_takes_whole_frames_however_the_pipe_cuts_them() -> None:
    feed = Feed({"/livez": ("503 SERVICE UNAVAILABLE", b"{}")}, clock=FakeClock())
    data = frame(ANSWERS) + frame({**ANSWERS, "/livez": ("503 SERVICE UNAVAILABLE", b'{"status": "fail"}')})
    for i in range(len(data)):
        feed.take(data[i:i + 1])
        if i == len(frame(ANSWERS)) - 2:
            assert feed.current()["/livez"][0].startswith("503"), "half a frame changes nothing"
        if i == len(frame(ANSWERS)) - 1:
            assert feed.current() == ANSWERS
    assert feed.current()["/livez"] == ("503 SERVICE UNAVAILABLE", b'{"status": "fail"}')
    feed.take(frame(ANSWERS) + frame(ANSWERS)[:3])  # a whole frame and the start of the next, in one read
    assert feed.current() == ANSWERS


def test_a_frame_the_feeder_cannot_have_written_is_refused() -> None:
    with pytest.raises(ValueError):
        Feed({}).take((probe_child.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError):
        Feed({}).take(frame([1, 2]))  # type: ignore[arg-type]


def test_a_silent_main_process_turns_every_answer_503() -> None:
    clock = FakeClock()
    feed = Feed(ANSWERS, clock=clock)
    clock.advance(probe_child.STALE_AFTER - 0.1)
    assert feed.current() == ANSWERS
    clock.advance(0.2)
    stale = feed.current()
    assert set(stale) == set(ANSWERS) and all(status.startswith("503") for status, _ in stale.values())
    assert "sent no verdict for 10 s" in json.loads(stale["/livez"][1])["reasons"][0]
    feed.take(frame(ANSWERS))  # a word from it: its answers again
    assert feed.current() == ANSWERS


@pytest.fixture
def sidecar(fake: FakeConnect, tmp_path: Path) -> Iterator[tuple[int, Served, str]]:
    fake.healthy({})
    probe_port = free_port()
    proc, out = start(fake, tmp_path, (FD_LIMIT, FD_LIMIT), "--probe-port", str(probe_port))
    try:
        yield proc.pid, out, f"http://127.0.0.1:{probe_port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout=15)


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def answered(url: str, within: float, want: int) -> requests.Response:
    deadline = time.monotonic() + within
    while True:
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code == want:
                return resp
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer {want} within {within} s"
        time.sleep(0.1)


def test_the_probe_port_is_a_child_that_follows_the_main_processs_verdicts(
        sidecar: tuple[int, Served, str]) -> None:
    pid, main, probes = sidecar
    assert len(children(pid)) == 1, "one probe process"
    answered(probes + "/startupz", 20, 200)  # its first answers were the main process's before any poll (503)
    for path in ("/livez", "/readyz", "/startupz", "/health", "/ping"):
        assert requests.get(probes + path, timeout=5).json() == requests.get(main.base + path, timeout=5).json()


def test_when_the_probe_process_dies_the_main_process_answers_the_port(sidecar: tuple[int, Served, str]) -> None:
    pid, main, probes = sidecar
    answered(probes + "/livez", 20, 200)
    (child,) = children(pid)
    os.kill(child, signal.SIGKILL)
    answered(probes + "/livez", 5, 200)
    assert children(pid) == [], "reaped, and answered in the main process now"
    assert "the probe port is answered by this process now" in main.log_text()
    assert main.livez() == 200


def test_when_the_main_process_is_killed_the_probe_port_closes(sidecar: tuple[int, Served, str]) -> None:
    pid, _, probes = sidecar
    answered(probes + "/livez", 20, 200)
    (child,) = children(pid)
    os.kill(pid, signal.SIGKILL)
    port = int(probes.rsplit(":", 1)[1])
    deadline = time.monotonic() + 5
    while True:  # the kubelet's next probe is refused, as it was with one process
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the probe port still open after its main process was killed"
        time.sleep(0.05)
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_a_stopped_main_process_never_looks_alive_on_the_probe_port(sidecar: tuple[int, Served, str]) -> None:
    pid, _, probes = sidecar
    answered(probes + "/livez", 20, 200)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        stale = answered(probes + "/livez", probe_child.STALE_AFTER + 5, 503)
        assert time.monotonic() - t0 > probe_child.STALE_AFTER - 1.5, "200 until then: one process would hang"
        assert "has sent no verdict" in stale.json()["reasons"][0]
    finally:
        os.kill(pid, signal.SIGCONT)
    answered(probes + "/livez", 5, 200)


def nice_of(pid: int, tid: int) -> int:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # the 19th field of stat; the name and its parentheses are cut off above


def test_the_pages_threads_yield_to_the_poller_and_the_probe_process(sidecar: tuple[int, Served, str]) -> None:
    """server.yield_to_probes: the threads that build and send the pages run 5 nicer than the poller's and the
    probe process (so that, when a core is short, a probe and a poll go first)."""
    pid, main, probes = sidecar
    answered(probes + "/livez", 20, 200)
    nices = sorted(nice_of(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir())
    (child,) = children(pid)
    assert nice_of(child, child) == 0
    assert nices.count(0) >= 2, nices  # the poller and the feeder of the probe process at least
    assert nices.count(5) >= 9, nices  # waitress's loop (the main thread) and its 8 workers
    assert set(nices) == {0, 5}, nices
