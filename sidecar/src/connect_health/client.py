"""The Kafka Connect REST client: one requests.Session, explicit timeouts, bounded answers.

Every call returns a :class:`Reply` or raises :class:`ConnectError` with a one-line reason that never contains
credentials. Answers larger than ``MAX_BODY`` are refused rather than read into memory.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from .config import ConnectSettings
from .redact import redact

MAX_BODY = 32 * 1024 * 1024  # a worker with thousands of connectors answers a few MiB with expand=info


class ConnectError(Exception):
    """The REST call failed: unreachable, timed out, oversized or unparsable answer."""


class Unreachable(ConnectError):
    """Nothing accepted the connection (refused, no route): the worker's process is not there, e.g. restarting."""


# Connect's 500s that mean "not now", not "no": the worker that took the request could not forward it to the leader
# (the leader just left the group: the old pod of a rolling update) or the leader did not answer in time.
TRANSIENT_500 = ("IO Error trying to forward REST request", "Error trying to forward REST request",
                 "Request timed out")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None for an empty body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry_later(self) -> bool:
        """Connect saying "not now" rather than "no": 409 (a rebalance in progress, no known leader, a stale config),
        503 (unavailable for now: a worker still starting) or one of the TRANSIENT_500 answers. A write answered so
        was not done, and is safe to send again (PUT config, pause/resume/stop, DELETE, restart)."""
        return self.status in (409, 503) or (self.status == 500 and self.error_message().startswith(TRANSIENT_500))

    def error_message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):
            lines = str(self.body["message"]).splitlines()
            return redact(lines[0] if lines else "")[:300]  # Connect's messages quote configs, passwords included
        return f"HTTP {self.status}"


def _segment(value: str) -> str:
    return quote(value, safe="")


class ConnectClient:
    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self.session = requests.Session()
        # identity: the body is read raw (read1, for the deadline), so it must not come compressed
        self.session.headers.update({"Accept": "application/json", "User-Agent": "connect-health",
                                     "Accept-Encoding": "identity"})
        # Basic auth is built here, not by requests: the password may be any UTF-8 text (requests encodes Latin-1
        # only), and a password file is read again when it changes (a rotated Secret) or after a 401/403.
        self._password = settings.password or ""
        self._password_stamp: tuple[int, int] | None = _stamp(settings.password_file)
        self.credentials_error: str | None = None  # why the password file could not be read again, if it could not
        self._authorization = self._basic()
        # Passed on every request, not set on the Session: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from
        # the environment override a Session's verify (psf/requests#3829), which would ignore --connect-ca-file.
        self.verify: bool | str = settings.ca_file or True
        self.cert: str | tuple[str, str] | None = None
        if settings.client_cert:
            self.cert = (settings.client_cert, settings.client_key) if settings.client_key else settings.client_cert
        self.timeout = (settings.request_timeout, settings.request_timeout)
        self.calls = 0  # REST calls made, for metrics and the calls-per-poll benchmark

    def close(self) -> None:
        self.session.close()

    def _basic(self) -> str | None:
        if self.settings.user is None:
            return None
        token = base64.b64encode(f"{self.settings.user}:{self._password}".encode()).decode("ascii")
        return f"Basic {token}"

    def _refresh_credentials(self, force: bool = False) -> None:
        path = self.settings.password_file
        if path is None:
            return
        stamp = _stamp(path)
        if not force and stamp == self._password_stamp:
            return
        from .config import read_secret

        try:
            self._password = read_secret(path)
        except ValueError as exc:
            self.credentials_error = str(exc)
            return
        self.credentials_error = None
        self._password_stamp = stamp
        self._authorization = self._basic()

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None, raw: bool = False) -> Reply:
        """``raw=True``: a 2xx answer's body is returned as the bytes read (bounded), for the caller to decode."""
        self.calls += 1
        where = f"{method} {path}"
        self._refresh_credentials()
        headers = {"Authorization": self._authorization} if self._authorization else None
        deadline = time.monotonic() + self.settings.request_timeout  # for the whole call, body included
        try:
            resp = self.session.request(
                method, self.base + path, params=params, json=body, timeout=self.timeout, stream=True,
                verify=self.verify, cert=self.cert, headers=headers,
            )
        except requests.Timeout:
            raise ConnectError(f"{where}: timed out after {self.settings.request_timeout:g}s") from None
        except requests.ConnectionError as exc:
            inner = exc.args[0] if exc.args else None
            refused = isinstance(getattr(inner, "reason", inner), urllib3.exceptions.NewConnectionError)
            raise (Unreachable if refused else ConnectError)(f"{where}: cannot connect ({_short(exc)})") from None
        except (requests.RequestException, ValueError, UnicodeError) as exc:
            raise ConnectError(f"{where}: {_short(exc)}") from None
        try:
            data = _read_bounded(resp, where, deadline, self.settings.request_timeout)
        finally:
            resp.close()
        if resp.status_code in (401, 403):
            self._refresh_credentials(force=True)  # maybe rotated without a new mtime yet: read it again
        if not data.strip():
            return Reply(resp.status_code, None)
        if raw and 200 <= resp.status_code < 300:
            return Reply(resp.status_code, data)
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            if resp.status_code >= 400:
                return Reply(resp.status_code, None)
            raise ConnectError(f"{where}: answer is not JSON (HTTP {resp.status_code})") from None
        return Reply(resp.status_code, parsed)

    # --- the calls the sidecar makes ------------------------------------------------------------------
    def health(self) -> Reply:
        return self.request("GET", "/health")

    def root(self) -> Reply:
        return self.request("GET", "/")

    def connectors_expanded(self, *, info: bool = True, raw: bool = False) -> Reply:
        """Every connector's status (and config, with ``info``) in one call; ``raw``: see :meth:`request`."""
        params = [("expand", "status"), ("expand", "info")] if info else [("expand", "status")]
        return self.request("GET", "/connectors", params=params, raw=raw)

    def restart_connector(self, name: str, *, include_tasks: bool, only_failed: bool) -> Reply:
        params = {"includeTasks": str(include_tasks).lower(), "onlyFailed": str(only_failed).lower()}
        return self.request("POST", f"/connectors/{_segment(name)}/restart", params=params)

    def restart_task(self, name: str, task: int) -> Reply:
        return self.request("POST", f"/connectors/{_segment(name)}/tasks/{task}/restart")

    def set_state(self, name: str, action: str) -> Reply:
        assert action in ("pause", "resume", "stop")
        return self.request("PUT", f"/connectors/{_segment(name)}/{action}")

    def put_config(self, name: str, config: dict[str, str]) -> Reply:
        return self.request("PUT", f"/connectors/{_segment(name)}/config", body=config)

    def validate(self, connector_class: str, config: dict[str, str]) -> Reply:
        return self.request("PUT", f"/connector-plugins/{_segment(connector_class)}/config/validate", body=config)

    def delete(self, name: str) -> Reply:
        return self.request("DELETE", f"/connectors/{_segment(name)}")


def _read_bounded(resp: requests.Response, where: str, deadline: float, budget: float) -> bytes:
    """The body, at most MAX_BODY bytes, read by at most one socket read at a time so that a worker trickling its
    answer (each byte within the read timeout) still ends at ``deadline``."""
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ConnectError(f"{where}: answer of {declared} bytes exceeds the {MAX_BODY} byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise ConnectError(f"{where}: answer not complete after {budget:g}s (a worker answering too slowly)")
            chunk = resp.raw.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                raise ConnectError(f"{where}: answer exceeds the {MAX_BODY} byte limit")
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise ConnectError(f"{where}: answer cut short ({_short(exc)})") from None
    return b"".join(chunks)


def _stamp(path: str | None) -> tuple[int, int] | None:
    """What tells a rewritten file: its mtime and inode (the kubelet swaps a symlink to a new file)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


_TLS_REASON = re.compile(r"\[SSL: [A-Z0-9_]+\][^'\")(]{0,200}")


def _short(exc: BaseException) -> str:
    """One line about a requests error, without URLs (which could carry credentials)."""
    text = type(exc).__name__
    tls = _TLS_REASON.search(str(exc))
    if tls:  # e.g. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate
        return f"{text}: {tls.group(0).strip()}"
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    if reason is not None:
        text = f"{text}: {type(reason).__name__}"
    return text
