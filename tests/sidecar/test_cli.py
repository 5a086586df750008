"""The `connect-health` command: usage errors, environment twins, `check` and `apply` exit codes, and a short
`serve` run against the fake worker proving credentials never reach logs, /status or /metrics.

The installed console script is run as a subprocess, as the chart and users run it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from connect_health import config, options

from .conftest import SECRETS, WORKER
from .fakeconnect import DATA, Answer, FakeConnect, fixture

CLI = shutil.which("connect-health", path=str(Path(sys.executable).parent)) or "connect-health"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_") and k != "POD_IP"}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env or clean_env(), timeout=timeout,
                          check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pwfile(tmp_path: Path) -> str:
    path = tmp_path / "password"
    path.write_text("pw-from-file-7Xq\n")  # a mounted Secret usually ends with a newline
    return str(path)


# --- usage errors: exit 2, one line naming the option, never a traceback ---------------------------------------

BAD: dict[str, tuple[list[str], dict[str, str], str]] = {
    "url-scheme": (["serve", "--connect-url", "ftp://connect:8083"], {}, "--connect-url"),
    "url-no-scheme": (["serve", "--connect-url", "connect:8083"], {}, "--connect-url"),
    "url-bad-port": (["check", "--connect-url", "http://connect:99999"], {}, "--connect-url"),
    "url-with-credentials-bad-port": (["check", "--connect-url", "http://admin:pw-in-url-9Zt@connect:99999"], {},
                                      "--connect-url"),
    "url-with-credentials-bad-scheme": (["serve", "--connect-url", "ftp://admin:pw-in-url-9Zt@connect"], {},
                                        "--connect-url"),
    "negative-grace": (["serve", "--grace=-5"], {}, "--grace"),
    "negative-backoff": (["serve", "--restart-backoff", "-1"], {}, "--restart-backoff"),
    "zero-poll-interval": (["serve", "--poll-interval", "0"], {}, "--poll-interval"),
    "nan-unresponsive": (["serve", "--unresponsive-after", "nan"], {}, "--unresponsive-after"),
    "word-duration": (["check", "--grace", "5m"], {}, "--grace"),
    "zero-request-timeout": (["check", "--request-timeout", "0"], {}, "--request-timeout"),
    "negative-attempts": (["check", "--restart-attempts", "-1"], {}, "--restart-attempts"),
    "unknown-scope": (["serve", "--scope", "galaxy"], {}, "--scope"),
    "bad-regex": (["serve", "--best-effort", "(unclosed"], {}, "--best-effort"),
    "missing-password-file": (["serve", "--connect-user", "admin", "--connect-password-file", "/nonexistent/pw"], {},
                              "--connect-password-file"),
    "password-file-is-a-directory": (["check", "--connect-user", "admin", "--connect-password-file", "/"], {},
                                     "--connect-password-file"),
    "password-without-user": (["check"], {"CONNECT_HEALTH_CONNECT_PASSWORD": "pw-from-env-3Kd"}, "--connect-user"),
    "port-too-big": (["serve", "--port", "70000"], {}, "--port"),
    "port-zero": (["serve", "--port", "0"], {}, "--port"),
    "port-word": (["serve", "--port", "http"], {}, "--port"),
    "threshold-zero": (["serve", "--failure-threshold", "0"], {}, "--failure-threshold"),
    "threshold-150": (["serve", "--failure-threshold", "150"], {}, "--failure-threshold"),
    "threshold-word": (["check", "--failure-threshold", "half"], {}, "--failure-threshold"),
    "unknown-flag": (["serve", "--bogus-flag", "1"], {}, "--bogus-flag"),
    "bad-worker-id": (["serve", "--worker-id", "10.0.0.7"], {}, "--worker-id"),
    "bad-traces": (["serve", "--traces", "full"], {}, "--traces"),
    "bad-log-format": (["serve", "--log-format", "xml"], {}, "--log-format"),
    "key-without-cert": (["check", "--connect-client-key", "/etc/hostname"], {}, "--connect-client-key"),
    "missing-ca-file": (["check", "--connect-ca-file", "/nonexistent/ca.pem"], {}, "--connect-ca-file"),
    "missing-connectors-file": (["serve", "--connectors-file", "/nonexistent/connectors.json"], {},
                                "--connectors-file"),
    "apply-without-connectors-file": (["apply"], {}, "--connectors-file"),
    "prune-selector-without-prune": (["apply", "--connectors-file", str(DATA / "connectors.yaml"),
                                      "--prune-selector", "x"], {},
                                     "--prune-selector"),
    "env-scope": (["serve"], {"CONNECT_HEALTH_SCOPE": "galaxy"}, "--scope"),
    "env-grace": (["serve"], {"CONNECT_HEALTH_GRACE": "-1"}, "--grace"),
    "env-restart-switch": (["check"], {"CONNECT_HEALTH_RESTART": "maybe"}, "--restart"),
    "no-command": ([], {}, "{serve,check,apply}"),
}


@pytest.mark.parametrize(("args", "env", "option"), BAD.values(), ids=BAD.keys())
def test_usage_errors_exit_2_with_one_line_naming_the_option(args: list[str], env: dict[str, str],
                                                             option: str) -> None:
    if args and args[0] == "serve":
        args = [*args, "--host", "127.0.0.1"]  # should validation ever let it through, stay on loopback
    result = run(*args, env=clean_env(**env))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0] and lines[0].startswith("connect-health")
    assert "Traceback" not in result.stderr and result.stdout == ""
    for secret in ("pw-from-env-3Kd", "pw-in-url-9Zt"):  # an error line never echoes a credential
        assert secret not in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("connect-health ")


# --- environment twins (in-process: the parser reads the environment when it is built) -----------------------

def settings_for(argv: list[str]) -> config.ServeSettings:
    return config.serve_settings(config.build_parser().parse_args(argv))


def test_every_flag_has_an_environment_twin() -> None:
    parser = config.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            flags = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            for flag in flags:
                assert f"[env {options.env_name(flag)}]" in (action.help or ""), (name, flag)
                checked += 1
    assert checked >= 40


@pytest.mark.parametrize(("env", "attr", "expected"), [
    ({"CONNECT_HEALTH_SCOPE": "cluster"}, "health.scope", "cluster"),
    ({"CONNECT_HEALTH_CONNECT_URL": "https://connect.example:8443/"}, "connect.url", "https://connect.example:8443"),
    ({"CONNECT_HEALTH_GRACE": "12.5"}, "health.grace", 12.5),
    ({"CONNECT_HEALTH_RESTART_ATTEMPTS": "0"}, "health.restart_attempts", 0),
    ({"CONNECT_HEALTH_RESTART_BACKOFF": "0.5"}, "health.restart_backoff", 0.5),
    ({"CONNECT_HEALTH_UNRESPONSIVE_AFTER": "90"}, "health.unresponsive_after", 90.0),
    ({"CONNECT_HEALTH_FAILURE_THRESHOLD": "50"}, "health.failure_threshold", 50.0),
    ({"CONNECT_HEALTH_TRACES": "none"}, "health.traces", "none"),
    ({"CONNECT_HEALTH_WORKER_ID": "10.1.2.3:8083"}, "health.worker_id", "10.1.2.3:8083"),
    ({"CONNECT_HEALTH_PORT": "9090"}, "port", 9090),
    ({"CONNECT_HEALTH_HOST": "127.0.0.1"}, "host", "127.0.0.1"),
    ({"CONNECT_HEALTH_POLL_INTERVAL": "2"}, "poll_interval", 2.0),
    ({"CONNECT_HEALTH_LOG_FORMAT": "json"}, "log_format", "json"),
    ({"CONNECT_HEALTH_REQUEST_TIMEOUT": "1.5"}, "connect.request_timeout", 1.5),
])
def test_environment_twins(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], attr: str, expected: Any) -> None:
    default = settings_for(["serve"])
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    value: Any = settings_for(["serve"])
    before: Any = default
    for part in attr.split("."):
        value, before = getattr(value, part), getattr(before, part)
    assert value == expected and before != expected


def test_best_effort_env_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_HEALTH_BEST_EFFORT", "^audit-")
    pattern = settings_for(["serve"]).health.best_effort
    assert pattern is not None and pattern.search("audit-sink") and not pattern.search("orders-sink")


@pytest.mark.parametrize(("env", "argv", "attr", "expected"), [
    ({"CONNECT_HEALTH_SCOPE": "cluster"}, ["--scope", "worker"], "scope", "worker"),
    ({"CONNECT_HEALTH_GRACE": "10"}, ["--grace", "20"], "grace", 20.0),
    ({"CONNECT_HEALTH_WORKER_ID": "10.1.1.1:8083"}, ["--worker-id", "10.2.2.2:8083"], "worker_id", "10.2.2.2:8083"),
    # a bad value in the environment does not matter when the flag overrides it
    ({"CONNECT_HEALTH_SCOPE": "galaxy"}, ["--scope", "cluster"], "scope", "cluster"),
])
def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str],
                                    attr: str, expected: Any) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert getattr(settings_for(["serve", *argv]).health, attr) == expected


@pytest.mark.parametrize(("pod_ip", "argv", "expected"), [
    ("10.0.0.7", [], "10.0.0.7:8083"),
    ("10.0.0.7", ["--connect-url", "http://127.0.0.1:18083"], "10.0.0.7:18083"),
    ("10.0.0.7", ["--connect-url", "https://localhost"], "10.0.0.7:443"),
    ("10.0.0.7", ["--worker-id", "connect-0.connect:8083"], "connect-0.connect:8083"),
    (None, ["--connect-url", "http://connect-0.connect:8083"], "connect-0.connect:8083"),
])
def test_worker_id_defaults_to_pod_ip_and_the_rest_port(monkeypatch: pytest.MonkeyPatch, pod_ip: str | None,
                                                        argv: list[str], expected: str) -> None:
    if pod_ip:
        monkeypatch.setenv("POD_IP", pod_ip)
    assert settings_for(["serve", *argv]).health.worker_id == expected


def test_cluster_scope_without_pod_ip_needs_no_worker_id() -> None:
    assert settings_for(["serve", "--scope", "cluster"]).health.worker_id is None


def test_password_from_file_and_from_env(monkeypatch: pytest.MonkeyPatch, pwfile: str) -> None:
    from_file = settings_for(["serve", "--connect-user", "admin", "--connect-password-file", pwfile]).connect
    assert (from_file.user, from_file.password) == ("admin", "pw-from-file-7Xq")  # trailing newline stripped
    monkeypatch.setenv("CONNECT_HEALTH_CONNECT_PASSWORD", "pw-from-env-3Kd")
    monkeypatch.setenv("CONNECT_HEALTH_CONNECT_USER", "admin")
    from_env = settings_for(["serve"])
    assert from_env.connect.password == "pw-from-env-3Kd"
    assert "pw-from-env-3Kd" not in repr(from_env) and "pw-from-file-7Xq" not in repr(from_file)


def test_safe_url_drops_credentials() -> None:
    s = config.ConnectSettings(url="https://admin:hunter2@connect.example:8443/base")
    assert s.safe_url == "https://connect.example:8443/base" and s.rest_port == 8443


# --- check ---------------------------------------------------------------------------------------------------

def check(fake: FakeConnect, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("check", "--connect-url", fake.url, "--worker-id", WORKER, *args, env=env)


def test_check_healthy_exits_0_with_a_table(fake: FakeConnect) -> None:
    result = check(fake)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CONNECTOR", "TASK", "STATE", "WORKER", "POLICY", "VERDICT", "REASON"]
    assert any(line.split()[:3] == ["jdbc-sink", "0", "RUNNING"] for line in lines[1:])
    assert "HEALTHY" in lines and fake.requests("POST") == []


def test_check_failure_exits_1_naming_the_connector(fake: FakeConnect) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    result = check(fake)
    assert result.returncode == 1
    assert "UNHEALTHY: jdbc-sink task 0 FAILED (restart ladder disabled)" in result.stdout
    assert "jdbc:postgresql://app:***@db.internal" in result.stdout  # the redacted first trace line
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    assert fake.requests("POST") == []  # no --restart: looks only


def test_check_restart_sends_one_rung(fake: FakeConnect) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    result = check(fake, "--restart")
    assert result.returncode == 1
    assert "restart jdbc-sink: requested" in result.stdout
    assert [(p.path, p.raw_query) for p in fake.requests("POST")] == [
        ("/connectors/jdbc-sink/restart", "includeTasks=true&onlyFailed=true")]


def test_check_best_effort_and_remote_failures_exit_0(fake: FakeConnect) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    assert check(fake, "--best-effort", "^jdbc-").returncode == 0
    fake.healthy(fixture("failed_task_remote.json"))
    assert check(fake).returncode == 0


def test_check_scope_from_env_and_flag_wins(fake: FakeConnect) -> None:
    fake.healthy(fixture("failed_task_remote.json"))
    cluster = check(fake, "--output", "json", env=clean_env(CONNECT_HEALTH_SCOPE="cluster"))
    assert cluster.returncode == 1
    doc = json.loads(cluster.stdout)
    assert doc["scope"] == "cluster" and doc["healthy"] is False
    worker = check(fake, "--scope", "worker", env=clean_env(CONNECT_HEALTH_SCOPE="cluster"))
    assert worker.returncode == 0


def test_check_unreachable_worker_exits_1() -> None:
    result = run("check", "--connect-url", f"http://127.0.0.1:{free_port()}", "--request-timeout", "1")
    assert result.returncode == 1
    assert "UNHEALTHY: Connect not reachable: GET /health: cannot connect" in result.stdout
    assert "Traceback" not in result.stderr


def test_check_worker_still_starting_exits_1(fake: FakeConnect) -> None:
    fake.route("GET", "/health", Answer(503, {"status": "starting", "message": "Worker is still starting up."}))
    result = check(fake)
    assert result.returncode == 1 and "worker not started: starting" in result.stdout


BAD_FILES = {
    "missing-class": ({"jdbc-sink": {"config": {"topics": "orders"}}}, ["'jdbc-sink'", "config.connector.class"]),
    "bad-state": ({"jdbc-sink": {"config": {"connector.class": "X"}, "state": "sleeping"}}, ["'jdbc-sink'", "state"]),
    "bad-policy": ({"file-sink": {"config": {"connector.class": "X"}, "policy": "sometimes"}},
                   ["'file-sink'", "policy"]),
    "unknown-key": ({"file-sink": {"config": {"connector.class": "X"}, "polcy": "critical"}},
                    ["'file-sink'", "'polcy'"]),
}


@pytest.mark.parametrize("command", ["apply", "check"])
@pytest.mark.parametrize(("data", "words"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_connectors_file_errors_exit_2_naming_connector_and_key(fake: FakeConnect, tmp_path: Path, command: str,
                                                               data: Any, words: list[str]) -> None:
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(data))
    extra = ["--wait", "0"] if command == "apply" else ["--worker-id", WORKER]
    result = run(command, "--connect-url", fake.url, "--connectors-file", str(path), *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert fake.requests("PUT") == [] and fake.requests("POST") == []  # nothing was touched


def test_check_reports_drift_from_a_valid_connectors_file(fake: FakeConnect, tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text("ghost:\n  config:\n    connector.class: FileStreamSource\n")
    result = check(fake, "--connectors-file", str(path))
    assert result.returncode == 0  # drift is a warning, not a health failure
    assert "warning: declared connector ghost is missing from the worker" in result.stdout


def test_check_reads_a_directory_of_shards(fake: FakeConnect, tmp_path: Path) -> None:
    """The chart mounts the declarations as a directory of ConfigMap shards past 1 MiB (issue 19)."""
    from .test_declared import kubelet_dir, shard

    root = kubelet_dir(tmp_path / "decl", {"connectors.json": shard("ghost-a"), "connectors-2.json": shard("ghost-b")})
    result = check(fake, "--connectors-file", str(root))
    assert result.returncode == 0, result.stderr
    assert "declared connector ghost-a is missing" in result.stdout
    assert "declared connector ghost-b is missing" in result.stdout


# --- serve: a real process against the fake worker -------------------------------------------------------------

@pytest.fixture
def serve(fake: FakeConnect) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        proc = subprocess.Popen(
            [CLI, "serve", "--connect-url", fake.url, "--host", "127.0.0.1", "--port", str(port),
             "--worker-id", WORKER, "--poll-interval", "0.1", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or clean_env())
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(base + "/ping", timeout=1).status_code == 200:
                    return proc, base
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "connect-health serve did not come up"
            time.sleep(0.05)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("source", ["file", "env"])
def test_serve_keeps_credentials_out_of_logs_status_and_metrics(fake: FakeConnect, serve: Any, pwfile: str,
                                                                source: str) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    password = "pw-from-file-7Xq" if source == "file" else "pw-from-env-3Kd"
    args = ["--connect-user", "admin", "--restart-attempts", "1", "--restart-backoff", "0"]
    if source == "file":
        args += ["--connect-password-file", pwfile]
        env = clean_env()
    else:
        args += ["--log-format", "json"]
        env = clean_env(CONNECT_HEALTH_CONNECT_PASSWORD=password)
    proc, base = serve(*args, env=env)
    deadline = time.monotonic() + 15
    while requests.get(base + "/livez", timeout=2).status_code != 503:  # the failure survives the 1-rung ladder
        assert time.monotonic() < deadline, "liveness never failed"
        time.sleep(0.05)
    bodies = [requests.get(base + path, headers=headers, timeout=2).text
              for path, headers in (("/livez", {}), ("/health", {}), ("/readyz", {}), ("/startupz", {}),
                                    ("/status", {}), ("/status", {"Accept": "text/html"}), ("/metrics", {}))]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    # the password was used...
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    seen = fake.requests()
    assert seen and all(s.headers.get("Authorization") == f"Basic {token}" for s in seen)
    assert any(s.method == "POST" for s in seen)
    # ... and the logs are real (startup, the restart, the liveness transition) but carry no secret
    assert "connect-health serving on 127.0.0.1" in err
    assert "restart of connector jdbc-sink: requested" in err
    assert "livez: unhealthy: jdbc-sink task 0 FAILED" in err
    if source == "env":
        assert all(json.loads(line)["level"] for line in err.splitlines())  # --log-format json: one object a line
    assert "jdbc-sink" in bodies[0] and "connect_health_probe_healthy" in bodies[-1]
    for text in [out, err, *bodies]:
        for secret in (password, token, *SECRETS):
            assert secret not in text
