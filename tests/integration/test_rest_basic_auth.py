"""connect-health against a REAL Connect worker whose REST API needs HTTP basic auth, and rotated passwords.

The worker runs Kafka's BasicAuthSecurityRestExtension (jar connect-basic-auth-extension) with its
PropertyFileLoginModule (launcher.Worker's ``rest_users``). That login module reads its users file once per JVM (a
static map keyed by the file's name, filled at the first login: Kafka's PropertyFileLoginModule.initialize), so
Connect takes a new password only when the worker restarts with the new file. The test shows that cache, then
rotates both ways round: the sidecar's mounted Secret first (Connect still on the old password until its restart),
and Connect first (the sidecar's file lagging). The sidecar's password file is laid out as the kubelet mounts a
Secret (the key a symlink through ..data to a timestamped directory, swapped by one rename on update), and the
sidecar process is never restarted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import launcher
import pytest
from launcher.worker import BASIC_AUTH_EXTENSION, BASIC_AUTH_LOGIN_MODULE
from probing import Sampler, connector_entry, metric, wait_for

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
USER = "connect-health"


class MountedSecret:
    """A Secret volume as the kubelet writes it: <dir>/<key> -> ..data/<key>, ..data -> ..<n>/ (the payload); an
    update writes a new ..<n>/ and renames a fresh symlink over ..data, so the key's file changes in one step."""

    def __init__(self, directory: Path, key: str) -> None:
        self.dir = directory
        self.key = key
        self.generation = 0
        directory.mkdir(parents=True)

    @property
    def path(self) -> Path:
        return self.dir / self.key

    def write(self, value: str) -> None:
        self.generation += 1
        payload = self.dir / f"..{self.generation:04d}"
        payload.mkdir()
        (payload / self.key).write_text(value)  # a Secret key's bytes: no trailing newline
        tmp = self.dir / "..data_tmp"
        tmp.symlink_to(payload.name)
        os.replace(tmp, self.dir / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{self.key}")
        old = self.dir / f"..{self.generation - 1:04d}"
        if old.is_dir():
            (old / self.key).unlink()
            old.rmdir()


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode("ascii")}


def worker_get(worker: launcher.Worker, path: str, headers: dict[str, str] | None = None) -> int:
    """The status of GET <path> on the worker with these headers only (none: no credentials at all)."""
    return launcher.http("GET", worker.url + path, timeout=10, headers=headers)[0]


def sidecar_calls(worker: launcher.Worker, offset: int) -> list[launcher.Request]:
    """The sidecar's calls since offset in the worker's request log (its User-Agent; the launcher's are urllib's).
    Jetty logs no user for them ("-"): the extension authenticates inside JAX-RS, so the status tells."""
    return [r for r in worker.request_log.since(offset) if r.agent == "connect-health"]


def readyz(sc: launcher.Sidecar) -> tuple[int, list[str]]:
    status, body = sc.get("/readyz")
    return status, list(body.get("reasons", [])) if isinstance(body, dict) else []


def polls(sc: launcher.Sidecar) -> int:
    status, body = sc.get("/status")
    assert status == 200, body
    return int(body["polls"])


class Refused(NamedTuple):
    """What the sidecar answered while Connect refused its password."""

    readyz_reasons: list[str]
    startupz: int
    livez_not_ok: list[int | str]
    status_page: str
    metrics: str


def refused_for_ten_polls(sc: launcher.Sidecar, worker: launcher.Worker) -> Refused:
    """Wait until /readyz is 503 naming the refused credentials, then sample /livez through ten more polls; every
    one of the sidecar's calls meanwhile must be a 401 in the worker's request log."""
    status, reasons = wait_for(
        lambda: (lambda r: r if any("credentials" in x and "401" in x for x in r[1]) else None)(readyz(sc)),
        60, "/readyz naming the refused credentials")
    assert status == 503, reasons
    offset = worker.request_log.offset()
    with Sampler(sc) as livez:
        first = polls(sc)
        wait_for(lambda: polls(sc) >= first + 10, 60, "ten more polls with a refused password")
        status, reasons = readyz(sc)
        startupz = sc.get("/startupz")[0]
        status_page, metrics_text = json.dumps(sc.get("/status")[1]), str(sc.get("/metrics")[1])
    assert status == 503 and any("credentials" in r for r in reasons), reasons
    assert len(livez.seen) >= 5, livez.seen
    assert metric(sc, "connect_health_sidecar_error") == 1
    refused = sidecar_calls(worker, offset)
    assert refused and {r.status for r in refused} == {401}, [r.line for r in refused]
    assert "credentials" in status_page, status_page
    return Refused(reasons, startupz, livez.not_ok(), status_page, metrics_text)


def ready_again(sc: launcher.Sidecar, worker: launcher.Worker, offset: int, pid: int | None) -> None:
    """/readyz 200 again from the same sidecar process, its calls accepted, the connector judged RUNNING."""
    wait_for(lambda: readyz(sc)[0] == 200, 60, "/readyz 200 once the passwords match again")
    assert sc.pid == pid and sc.alive()
    wait_for(lambda: [r for r in sidecar_calls(worker, offset) if r.status == 200], 10,
             "an accepted call of the sidecar in the request log")
    assert metric(sc, "connect_health_sidecar_error") == 0
    wait_for(lambda: (connector_entry(sc, "auth-src") or {}).get("connector", {}).get("state") == "RUNNING", 60,
             "the connector judged RUNNING")


@pytest.fixture
def auth_stack(kafka_version: str, workdir: Path) -> Iterator[tuple[launcher.Broker, launcher.Worker]]:
    """A broker and a worker whose REST API needs basic auth (user USER, a fresh random password)."""
    try:
        launcher.require_java(kafka_version)
        launcher.require_fetched(kafka_version)
    except launcher.StackError as e:
        pytest.fail(str(e), pytrace=False)
    broker = launcher.Broker(workdir, kafka_version)
    worker = launcher.Worker(workdir, kafka_version, broker.bootstrap,
                             rest_users={USER: "old-" + secrets.token_urlsafe(12)})
    try:
        broker.start()
        worker.start()
        yield broker, worker
    finally:
        worker.stop()
        broker.stop()


def test_a_rotated_connect_password_is_a_readiness_failure_until_the_mounted_secret_follows(
        auth_stack: tuple[launcher.Broker, launcher.Worker], workdir: Path) -> None:
    _, worker = auth_stack
    old = worker.rest_users[USER]
    new = "new-" + secrets.token_urlsafe(12)
    # The extension is on: no credentials and a wrong password are refused, the launcher's own calls authenticate.
    assert worker_get(worker, "/connectors") == 401
    assert worker_get(worker, "/connectors", basic(new)) == 401
    assert worker_get(worker, "/connectors", basic(old)) == 200
    src = workdir / "in.txt"
    src.write_text("a line\n")
    worker.put_connector("auth-src", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                      "topic": "auth-lines"}, timeout=60)
    worker.wait_connector_state("auth-src")

    secret = MountedSecret(workdir / "secret", "password")
    secret.write(old)
    start = worker.request_log.offset()
    # Liveness budgets of 2 s: were a 401 taken for an unresponsive worker or a stuck herder, /livez would fail
    # within the ten polls sampled in (b) (a worker's restart itself may fail it: that window is not sampled).
    sc = launcher.Sidecar(workdir, worker.url, ["--poll-interval", "0.5", "--request-timeout", "5",
                                                "--unresponsive-after", "2", "--herder-stuck-after", "2",
                                                "--worker-id", worker.worker_id, "--connect-user", USER,
                                                "--connect-password-file", str(secret.path)]).start(timeout=60)
    try:
        # (a) the right password: ready, the connector judged, every poll of the sidecar answered 200 by Connect.
        wait_for(lambda: readyz(sc)[0] == 200, 60, "/readyz 200 with the right password")
        entry = wait_for(lambda: connector_entry(sc, "auth-src"), 30, "the connector in /status")
        assert entry["connector"]["state"] == "RUNNING" and entry["connector"]["on_this_worker"] is True
        wait_for(lambda: any(r.path.startswith("/connectors?") and r.status == 200
                             for r in sidecar_calls(worker, start)), 10, "the sidecar's polls in the request log")
        calls = sidecar_calls(worker, start)  # GET /health is a 404 on Kafka 3.6 (no such endpoint): not a refusal
        assert not [r for r in calls if r.status in (401, 403)], [r.line for r in calls]
        assert metric(sc, "connect_health_sidecar_error") == 0
        pid = sc.pid
        pages: dict[str, str] = {}

        # (b) The Secret is rotated and the kubelet updates both mounts. Connect's login module read its users file
        # once (PropertyFileLoginModule caches it per JVM: if this fails, Kafka re-reads it now and a rotation needs
        # no restart), so Connect still takes only the old password, while the sidecar now sends the new one.
        worker.rest_users_file.write_text(f"{USER}={new}\n")
        secret.write(new)
        assert worker_get(worker, "/connectors", basic(old)) == 200
        assert worker_get(worker, "/connectors", basic(new)) == 401
        # The sidecar had started with this worker: only the 401s' own handling keeps /livez and /startupz at 200.
        seen = refused_for_ten_polls(sc, worker)
        assert seen.startupz == 200 and seen.livez_not_ok == [], seen
        pages |= {"/status while refused": seen.status_page, "/metrics while refused": seen.metrics}

        # (c) Connect's container restarts and reads the new users file: ready again, same sidecar process.
        accepted_from = worker.request_log.offset()
        worker.rest_users = {USER: new}
        worker.restart()
        ready_again(sc, worker, accepted_from, pid)

        # (d) The other order: Connect restarts with a newer password first (its users file from a Secret updated
        # earlier); the sidecar's mounted file still has the one before. A new worker incarnation: /livez holds.
        newer = "newer-" + secrets.token_urlsafe(12)
        worker.rest_users = {USER: newer}
        worker.restart()
        assert worker_get(worker, "/connectors", basic(new)) == 401
        seen = refused_for_ten_polls(sc, worker)
        assert seen.livez_not_ok == [], seen
        # The sidecar cannot see whether this new worker finished starting: /startupz must not fail for it (the
        # chart points Connect's startupProbe there: a lagging sidecar Secret would get Connect killed).
        assert seen.startupz == 200, seen
        pages |= {"/status while refused after a restart": seen.status_page}
        # ... and the kubelet updates the mounted Secret: ready again, without restarting the sidecar.
        accepted_from = worker.request_log.offset()
        secret.write(newer)
        ready_again(sc, worker, accepted_from, pid)

        # (e) no password, nor the header carrying it, in the sidecar's log, /status or /metrics.
        log = sc.log.read_text(errors="replace")
        assert "credentials" in log and "readyz: healthy again" in log, sc.log_tail()  # (b) was logged
        pages |= {"log": log, "/status": json.dumps(sc.get("/status")[1]), "/metrics": str(sc.get("/metrics")[1])}
        for password in (old, new, newer):
            token = basic(password)["Authorization"].split()[1]
            for where, text in pages.items():
                assert password not in text and token not in text, f"a password reached the sidecar's {where}"
    finally:
        sc.stop()


def test_worker_rest_users_write_the_users_file_the_jaas_entry_and_the_jvm_flag(tmp_path: Path) -> None:
    """No JVM: what Worker(rest_users=...) writes and passes, and that a plain worker has none of it."""
    plain = launcher.Worker(tmp_path, bootstrap="127.0.0.1:9", name="plain")
    assert "rest.extension.classes" not in plain.properties() and plain.auth_headers() == {}
    password = "pa\\ss=word:1"
    w = launcher.Worker(tmp_path, bootstrap="127.0.0.1:9", rest_users={USER: password, "other": "x"})
    w.prepare()
    assert w.properties()["rest.extension.classes"] == BASIC_AUTH_EXTENSION
    assert f"rest.extension.classes={BASIC_AUTH_EXTENSION}" in w.config.read_text()
    for path in (w.rest_users_file, w.jaas_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # java.util.Properties reads a backslash escaped as two; '=' and ':' after the first separator are the value's.
    assert f"{USER}=pa\\\\ss=word:1" in w.rest_users_file.read_text().splitlines()
    jaas = w.jaas_file.read_text()
    assert jaas.startswith("KafkaConnect {") and BASIC_AUTH_LOGIN_MODULE in jaas
    assert f'file="{w.rest_users_file}";' in jaas
    assert f"-Djava.security.auth.login.config={w.jaas_file}" in w.command()
    assert not any("java.security.auth.login.config" in arg for arg in plain.command())
    assert w.auth_headers() == basic(password)  # the first user
    with pytest.raises(ValueError, match="user name") as bad_user:
        launcher.Worker(tmp_path, bootstrap="127.0.0.1:9", name="bad", rest_users={"a=b": "secret-1"}).prepare()
    with pytest.raises(ValueError, match="printable ASCII") as bad_password:
        launcher.Worker(tmp_path, bootstrap="127.0.0.1:9", name="bad2", rest_users={USER: "p\u00e4ss-2"}).prepare()
    assert "secret-1" not in str(bad_user.value) and "p\u00e4ss-2" not in str(bad_password.value)
