"""The Kafka Connect REST client: keep-alive connections (transport.py), explicit timeouts, bounded answers.

Every call returns a :class:`Reply` or raises :class:`ConnectError` with a one-line reason that never contains
credentials. Each call ends by ``--request-timeout``, whole: connecting, the response headers and the body (a
watchdog shuts down a call's socket at its deadline, see deadline.py). The status listing has its traces cut while it
streams in (tracecut.py), so an answer of any size is read; what is kept of any answer is bounded by ``MAX_BODY``.

Errors say whose problem they are: :class:`Unreachable` only when the worker's address refused the connection,
:class:`SidecarError` when the call could not be made for a reason of the sidecar's own (DNS, file descriptors),
:class:`AnswerTooLarge` when Connect answered but what the sidecar keeps of it exceeds its limit.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .config import ConnectSettings
from .deadline import WATCHDOG
from .redact import redact
from .snapshot import MAX_TRACE_CHARS
from .tracecut import TraceCut
from .transport import Answer, Transport

# What is kept of one answer, traces cut (not what is read): a worker with thousands of connectors answers a few MiB
# with expand=info; 3,000 failed tasks keep 6 MiB of their first MAX_TRACE_CHARS characters of trace, 7,000 keep
# 14.6 MiB. The whole sidecar's peak RSS grows about 6x what is kept (bench/big_answer.py: 76 MiB at 6 MiB kept,
# 120-138 MiB at 14.6-15.9 MiB, 184-275 MiB at 29 MiB), so this bound is what keeps it under the chart's memory limit.
MAX_BODY = 16 * 1024 * 1024


class ConnectError(Exception):
    """The REST call failed: timed out, reset, cut short, unparsable answer (or a subclass's reason)."""


class Unreachable(ConnectError):
    """The worker's address refused the TCP connection (ECONNREFUSED): nothing listens on Connect's port, its
    process is gone or not up yet. Only this: a DNS failure, the sidecar out of file descriptors, no route, a reset
    or a timeout say nothing of a restart."""


class SidecarError(ConnectError):
    """The call could not be made for a reason on the sidecar's side: Connect's host name did not resolve (DNS),
    the sidecar is out of file descriptors or socket buffers. Says nothing about Connect."""


class AnswerTooLarge(ConnectError):
    """Connect answered, but what the sidecar keeps of the answer (traces cut) exceeds ``MAX_BODY``: the sidecar's
    limit, not a slow or absent worker."""


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


_DOT_SEGMENT = re.compile(r"(?<=/)(?:%2E){1,2}(?=/|$)")  # a path segment %2E or %2E%2E: a connector . or ..


def _segment(value: str) -> str:
    """``value`` as ONE path segment: every reserved character percent-encoded (``/ ? # % ;`` and the rest), and the
    names ``.`` and ``..`` as ``%2E``/``%2E%2E``, which a server does not take for a dot segment (``quote`` leaves
    dots alone, and ``/connectors/../restart`` is ``/restart``). Sent as written (see :meth:`ConnectClient._send`),
    or with literal dots to a worker that refuses those (see :meth:`ConnectClient.request`).

    What a worker then does with it is its own: Kafka 4.x's Jetty 12 answers 400 to an encoded ``/``, ``\\`` or
    ``%`` in a segment, so connectors with those in their names cannot be addressed at all (tests/integration/
    test_odd_names.py lists them per version)."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


class ConnectClient:
    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._base_path = urlsplit(self.base).path
        self._literal_dots = False  # the worker refuses %2E dot segments (see request)
        # identity: the body is read raw (read1, for the deadline), so it must not come compressed
        self.headers = {"Accept": "application/json", "User-Agent": "connect-health", "Accept-Encoding": "identity"}
        # Basic auth: the password may be any UTF-8 text, and a password file is read again when it changes (a
        # rotated Secret) or after a 401/403.
        self._password = settings.password or ""
        self._password_stamp: tuple[int, int] | None = _stamp(settings.password_file)
        self.credentials_error: str | None = None  # why the password file could not be read again, if it could not
        self._authorization = self._basic()
        cert: str | tuple[str, str] | None = None
        if settings.client_cert:
            cert = (settings.client_cert, settings.client_key) if settings.client_key else settings.client_cert
        # TLS against --connect-ca-file, else the system's CAs; no CA bundle from the environment overrides it
        self.transport = Transport(self.base, timeout=settings.request_timeout, ca_file=settings.ca_file, cert=cert)
        self.calls = 0  # REST calls made, for metrics and the calls-per-poll benchmark

    def close(self) -> None:
        self.transport.close()

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

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None, raw: bool = False,
                cut_traces: bool = False) -> Reply:
        """``raw=True``: a 2xx answer's body is returned as the bytes read (bounded), for the caller to decode.
        ``cut_traces``: the answer is a status listing whose traces are cut while it is read (tracecut.py).

        A path with a connector named ``.`` or ``..`` goes out as ``%2E``/``%2E%2E`` (Jetty 9.4, Kafka 3.x, decodes
        it to the name). A worker that answers 400 to that (Jetty 12, Kafka 4.x: "ambiguous path segment") takes the
        literal dots as the name instead, without normalising them away: the call is sent again so, and so are the
        next ones (a 400 is an answer before anything was done, so a write is safe to send again)."""
        dotted = _DOT_SEGMENT.search(path) is not None
        literal = _DOT_SEGMENT.sub(lambda m: "." * (len(m.group(0)) // 3), path) if dotted else path
        if dotted and self._literal_dots:
            return self._request(method, literal, params, body, raw, cut_traces)
        reply = self._request(method, path, params, body, raw, cut_traces)
        if dotted and reply.status == 400:
            reply = self._request(method, literal, params, body, raw, cut_traces)
            self._literal_dots = reply.status != 400
        return reply

    def _request(self, method: str, path: str, params: Any, body: Any, raw: bool, cut_traces: bool) -> Reply:
        self.calls += 1
        where = f"{method} {path}"
        self._refresh_credentials()
        headers = {"Authorization": self._authorization} if self._authorization else None
        budget = self.settings.request_timeout
        with WATCHDOG.call(budget) as call:  # for the whole call: connecting, headers and body
            try:
                resp = self._send(method, path, params, body, headers)
            except TimeoutError:
                raise ConnectError(f"{where}: timed out after {budget:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                if call.expired:
                    raise ConnectError(f"{where}: timed out after {budget:g}s (response headers not "
                                       "complete)") from None
                raise _connect_failure(where, exc) from None
            except (ValueError, UnicodeError) as exc:
                raise ConnectError(f"{where}: {_short(exc)}") from None
            try:
                cut = TraceCut(MAX_TRACE_CHARS) if cut_traces and 200 <= resp.status < 300 else None
                data = _read_bounded(resp, where, call.deadline, budget, cut)
                if call.expired:  # the watchdog's shutdown reads as the end of the body
                    raise ConnectError(f"{where}: answer not complete after {budget:g}s (a worker answering too "
                                       "slowly)")
            except ConnectError:
                if call.expired:
                    raise ConnectError(f"{where}: answer not complete after {budget:g}s (a worker answering too "
                                       "slowly)") from None
                raise
            finally:
                resp.close()
        if resp.status in (401, 403):
            self._refresh_credentials(force=True)  # maybe rotated without a new mtime yet: read it again
        if not data.strip():
            return Reply(resp.status, None)
        if raw and 200 <= resp.status < 300:
            return Reply(resp.status, data)
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            if resp.status >= 400:
                return Reply(resp.status, None)
            raise ConnectError(f"{where}: answer is not JSON (HTTP {resp.status})") from None
        return Reply(resp.status, parsed)

    def _send(self, method: str, path: str, params: Any, body: Any, headers: dict[str, str] | None) -> Answer:
        """The path goes out exactly as :func:`_segment` encoded it (a client that "requotes" URLs would decode
        ``%2E`` back to ``.``, turning the connector ``..`` into a dot segment again)."""
        target = self._base_path + path
        if params:
            target += "?" + urlencode(params)
        sent = {**self.headers, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            sent["Content-Length"] = "0"
        return self.transport.send(method, target, data, sent)

    # --- the calls the sidecar makes ------------------------------------------------------------------
    def health(self) -> Reply:
        return self.request("GET", "/health")

    def root(self) -> Reply:
        return self.request("GET", "/")

    def connectors_expanded(self, *, info: bool = True, raw: bool = False) -> Reply:
        """Every connector's status (and config, with ``info``) in one call; ``raw``: see :meth:`request`."""
        params = [("expand", "status"), ("expand", "info")] if info else [("expand", "status")]
        return self.request("GET", "/connectors", params=params, raw=raw, cut_traces=True)

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

    def create(self, name: str, config: dict[str, str], initial_state: str) -> Reply:
        """``POST /connectors`` with ``initial_state`` (RUNNING, PAUSED or STOPPED; KIP-980, Kafka 3.7+): 201, or
        409 when a connector of that name exists already."""
        return self.request("POST", "/connectors", body={"name": name, "config": config,
                                                          "initial_state": initial_state})

    def reset_offsets(self, name: str) -> Reply:
        """``DELETE /connectors/{name}/offsets`` (KIP-875, Kafka 3.6+): 200 with a message; 400 unless STOPPED."""
        return self.request("DELETE", f"/connectors/{_segment(name)}/offsets")

    def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> Reply:
        """``PATCH /connectors/{name}/offsets`` ``{"offsets": [{"partition", "offset"}, ...]}`` (KIP-875, 3.6+)."""
        return self.request("PATCH", f"/connectors/{_segment(name)}/offsets", body={"offsets": offsets})

    def validate(self, connector_class: str, config: dict[str, str]) -> Reply:
        return self.request("PUT", f"/connector-plugins/{_segment(connector_class)}/config/validate", body=config)

    def delete(self, name: str) -> Reply:
        return self.request("DELETE", f"/connectors/{_segment(name)}")


def _read_bounded(resp: Answer, where: str, deadline: float, budget: float, cut: TraceCut | None) -> bytes:
    """The body, of which at most MAX_BODY bytes are kept, read by at most one socket read at a time (the watchdog
    ends a read blocked past ``deadline``). With ``cut``, traces are cut once the answer passes a quarter of
    MAX_BODY: a smaller answer is kept whole (the parser cuts its traces anyway), so an everyday poll does not pay
    for the cutter's Python-speed walk of the JSON (0.4 s for 3,000 connectors with their configs)."""
    declared = resp.header("Content-Length")
    if cut is None and declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise AnswerTooLarge(f"{where}: answer of {declared} bytes exceeds the {MAX_BODY} byte limit")
    chunks: list[bytes] = []
    size = 0
    active: TraceCut | None = None  # ``cut``, once the answer is past the size where cutting pays
    try:
        while True:
            if time.monotonic() > deadline:
                raise ConnectError(f"{where}: answer not complete after {budget:g}s (a worker answering too slowly)")
            chunk = resp.read1(65536)
            if not chunk:
                break
            if active is not None:
                chunk = active.feed(chunk)
            elif cut is not None and size + len(chunk) > MAX_BODY // 4:
                active = cut
                chunk = active.feed(b"".join([*chunks, chunk]))  # from the start: the cutter tracks the JSON's shape
                chunks, size = [], 0
            size += len(chunk)
            if size > MAX_BODY:
                also = f" even with traces cut to {MAX_TRACE_CHARS} characters" if cut is not None else ""
                raise AnswerTooLarge(f"{where}: answer exceeds the {MAX_BODY} byte limit{also} (the sidecar's "
                                     "limit: Connect answered)")
            chunks.append(chunk)
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise ConnectError(f"{where}: answer cut short ({_short(exc)})") from None
    if resp.incomplete():
        raise ConnectError(f"{where}: answer cut short (the connection closed before its Content-Length)")
    if active is not None:
        chunks.append(active.close())
    return b"".join(chunks)


_OWN_ERRNOS = {errno.EMFILE: "the sidecar is out of file descriptors",
               errno.ENFILE: "the system is out of file descriptors",
               errno.ENOBUFS: "the sidecar is out of socket buffers", errno.ENOMEM: "the sidecar is out of memory"}


def _connect_failure(where: str, exc: OSError | http.client.HTTPException) -> ConnectError:
    """What a failed call means, one line each: only ECONNREFUSED is :class:`Unreachable`.

    ECONNRESET is not: a reset answers a connection something accepted (a proxy, a worker shutting down, the network),
    while a refused connection on a TCP address is the kernel saying nothing listens there (Linux reports a RST
    answering the SYN as ECONNREFUSED)."""
    if isinstance(exc, socket.gaierror):
        return SidecarError(f"{where}: cannot resolve Connect's host name (a DNS failure: the sidecar's or the "
                            "cluster's problem, not a Connect restart)")
    if type(exc).__module__ == "ssl":  # before the errno: a TLS error's errno is OpenSSL's, not the system's
        return ConnectError(f"{where}: cannot connect ({_short(exc)})")
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected | BrokenPipeError):
        return ConnectError(f"{where}: connection reset before an answer (a network problem or a worker closing "
                            "connections)")
    code = exc.errno if isinstance(exc, OSError) else None
    name = errno.errorcode.get(code, "") if code is not None else ""
    if code == errno.ECONNREFUSED:
        return Unreachable(f"{where}: cannot connect: connection refused (nothing listens on Connect's port)")
    if code in _OWN_ERRNOS:
        return SidecarError(f"{where}: cannot open a connection: {_OWN_ERRNOS[code]} ({name}; the sidecar's "
                            "problem, not Connect's)")
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ConnectError(f"{where}: cannot connect: no route to Connect's host ({name}; a network problem)")
    return ConnectError(f"{where}: cannot connect ({name or _short(exc)})")


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
    """One line about an error: its type, and for TLS its reason; never its other text (which could carry a URL
    with credentials)."""
    text = type(exc).__name__
    tls = _TLS_REASON.search(str(exc))
    if tls:  # e.g. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate
        return f"{text}: {tls.group(0).strip()}"
    return text
