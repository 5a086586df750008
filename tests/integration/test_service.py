"""The launcher's Service base on a small real process (Python's http.server), without Kafka: what every service of
the stack gets from it (start, ready, ports, state, failures, stop), and how little a new one has to write.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import launcher
import pytest


class FileServer(launcher.Service):
    """A whole service: a port, a command and a readiness check."""

    def __init__(self, workdir: Path, port: int | None = None, argv: list[str] | None = None) -> None:
        super().__init__(workdir, "files", "files.log")
        self.listener = launcher.claim_port(port, "the test file server", "--files-port")
        self.argv = argv

    def command(self) -> list[str]:
        return self.argv or [sys.executable, "-m", "http.server", str(self.port), "--bind", launcher.HOST]

    def ready(self) -> bool:
        return launcher.http("GET", f"http://{launcher.HOST}:{self.port}/", timeout=2)[0] == 200


def test_start_ready_state_and_stop(tmp_path: Path) -> None:
    with FileServer(tmp_path) as svc:
        assert svc.alive() and svc.start_seconds is not None
        assert launcher.is_listening(svc.port)
        state = svc.state()
        assert state["pid"] == svc.pid and state["ports"] == [svc.port] and state["name"] == "files"
        assert launcher.pid_matches(svc.pid, state["marker"])  # how `down` knows the pid is still this process
        assert svc.log == tmp_path / "files" / "files.log" and svc.log.exists()
    assert not launcher.is_listening(svc.port) and not svc.alive()


def test_port_in_use_is_structured(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((launcher.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(launcher.PortInUse) as e:
            FileServer(tmp_path, port=port)
    assert (e.value.port, e.value.flag, e.value.what) == (port, "--files-port", "the test file server")
    assert str(e.value).count("\n") == 0


def test_exit_during_startup_says_why_with_the_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('Error: no config here'); sys.exit(3)"]
    svc = FileServer(tmp_path, argv=argv)
    with pytest.raises(launcher.ServiceFailed) as e:
        svc.start(timeout=20)
    assert e.value.service == "files" and e.value.log == svc.log
    assert "exited unexpectedly (code 3)" in e.value.reason
    assert "Error: no config here" in e.value.tail
    assert not svc.alive() and svc.proc is None


def test_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]  # runs, never listens
    svc = FileServer(tmp_path, argv=argv)
    with pytest.raises(launcher.ServiceFailed) as e:
        svc.start(timeout=1)
    assert "timed out" in e.value.reason
    assert svc.proc is None


def test_pause_and_resume(tmp_path: Path) -> None:
    with FileServer(tmp_path) as svc:
        svc.pause()
        try:
            with pytest.raises(OSError):
                launcher.http("GET", f"http://{launcher.HOST}:{svc.port}/", timeout=1)
        finally:
            svc.resume()
        assert svc.ready()
