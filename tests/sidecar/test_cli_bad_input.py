"""Bad input and bad listen addresses end in one line and exit 2, never a traceback, and never after the
sidecar has acted (issue 11, items 4, 5 and 10). The installed console script runs as a subprocess."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from connect_health import config

from .conftest import WORKER
from .fakeconnect import Answer, FakeConnect, fixture
from .test_cli import CLI, clean_env, free_port, run


def one_line_exit_2(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr


@pytest.fixture
def latin1_file(tmp_path: Path) -> str:
    path = tmp_path / "connectors.yaml"
    path.write_bytes(b"sink:\n  config: {connector.class: FileStreamSink, file: caf\xe9}\n")
    return str(path)


@pytest.mark.parametrize("command", ["check", "apply"])
def test_bad_bytes_in_the_connectors_file(fake: FakeConnect, latin1_file: str, command: str) -> None:
    result = run(command, "--connect-url", fake.url, "--connectors-file", latin1_file)
    one_line_exit_2(result, "not UTF-8")


def test_bad_bytes_in_the_password_file(fake: FakeConnect, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_bytes(b"p\xe4ss\n")
    result = run("check", "--connect-url", fake.url, "--connect-user", "u", "--connect-password-file", str(pw))
    one_line_exit_2(result, "--connect-password-file")
    assert "p\xe4ss" not in result.stderr


def test_a_non_latin1_password_never_gives_a_traceback(fake: FakeConnect) -> None:
    result = run("check", "--connect-url", fake.url, "--connect-user", "u", "--worker-id", WORKER,
                 env=clean_env(CONNECT_HEALTH_CONNECT_PASSWORD="pässwörd-€"))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("flag", "value"), [("--worker-id", "::1"), ("--worker-id", "fd00::1:8083"),
                                             ("--worker-id", "[nonsense]:8083"), ("--poll-interval", "1e-300"),
                                             ("--request-timeout", "1e-300")])
def test_values_that_parse_but_mean_nothing_are_refused(flag: str, value: str) -> None:
    one_line_exit_2(run("serve", "--host", "127.0.0.1", flag, value), flag)


def test_ipv6_worker_ids_are_written_as_connect_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_IP", "fd00::1")
    settings = config.parse(["serve", "--connect-url", "http://127.0.0.1:8083"])
    assert isinstance(settings, config.ServeSettings) and settings.health.worker_id == "[fd00::1]:8083"
    ok = config.parse(["serve", "--worker-id", "[fd00::1]:8083"])
    assert isinstance(ok, config.ServeSettings) and ok.health.worker_id == "[fd00::1]:8083"


@pytest.mark.parametrize(("host", "names"), [("nosuch.invalid", "--host"), ("203.0.113.7", "--host")])
def test_serve_refuses_an_address_it_cannot_listen_on_before_it_polls(fake: FakeConnect, host: str,
                                                                      names: str) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    result = run("serve", "--connect-url", fake.url, "--worker-id", WORKER, "--host", host, "--port",
                 str(free_port()), "--restart-attempts", "1", "--poll-interval", "0.1")
    one_line_exit_2(result, names)
    assert fake.requests() == []  # not a single call to Connect, let alone a restart


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_serve_listens_on_ipv4_and_ipv6_by_default(fake: FakeConnect) -> None:
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--connect-url", fake.url, "--worker-id", WORKER, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        hosts = ["127.0.0.1"] + (["[::1]"] if ipv6_loopback() else [])
        for host in hosts:
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert requests.get(f"http://{host}:{port}/ping", timeout=1).status_code == 200
                    break
                except requests.ConnectionError:
                    assert proc.poll() is None, proc.communicate()
                    assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
                    time.sleep(0.05)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_check_says_when_connect_refuses_its_credentials(fake: FakeConnect) -> None:
    fake.route("GET", "/health", Answer(401, {"error_code": 401, "message": "User cannot access the resource."}))
    result = run("check", "--connect-url", fake.url, "--connect-user", "u", "--worker-id", WORKER,
                 env=clean_env(CONNECT_HEALTH_CONNECT_PASSWORD="wrong-pw-5Tg"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "refused the sidecar's credentials" in result.stdout and "wrong-pw-5Tg" not in result.stdout


@pytest.mark.parametrize("where", ["missing-folder/state.json", "a-folder"])
def test_a_state_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-folder").mkdir()
    one_line_exit_2(run("serve", "--host", "127.0.0.1", "--state-file", str(tmp_path / where)), "--state-file")
