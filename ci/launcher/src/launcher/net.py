"""127.0.0.1 only: ports (free, claimed, in use), a small JSON HTTP client, wait_until, and the Kafka wire probe."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .errors import PortInUse, StackError, TimedOut

HOST = "127.0.0.1"


class Port(NamedTuple):
    """A TCP port a service listens on, what listens there, and the option that moves it (for PortInUse)."""

    number: int
    what: str
    flag: str


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (never one handed out before by this process)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise StackError("could not find a free TCP port on 127.0.0.1")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_free(port: Port) -> None:
    """Raise PortInUse when something listens on 127.0.0.1:<port.number>."""
    if not port_is_free(port.number):
        raise PortInUse(port.number, port.what, port.flag)


def claim_port(number: int | None, what: str, flag: str) -> Port:
    """The port asked for (checked free now), or a free one when number is None or 0."""
    if not number:
        return Port(free_port(), what, flag)
    port = Port(number, what, flag)
    require_free(port)
    _HANDED_OUT.add(number)
    return port


def wait_closed(ports: Iterable[int], timeout: float = 10.0) -> None:
    """Wait (bounded, never raises) until nothing listens on these ports any more."""
    ports = list(ports)
    with contextlib.suppress(StackError):
        wait_until(lambda: not any(is_listening(p) for p in ports), timeout, f"ports {ports} to close")


def listening(ports: Iterable[int]) -> list[int]:
    """Those of ports that something answers on."""
    return [p for p in ports if is_listening(p)]


# Local calls never go through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: Any = None, timeout: float = 10.0,
         headers: Mapping[str, str] | None = None,
         opener: urllib.request.OpenerDirector | None = None) -> tuple[int, Any]:
    """A small JSON HTTP client: (status, parsed JSON body or text or None). Raises OSError on no answer.
    No proxy from the environment (everything here is local); `opener` for another TLS context (the cluster's CA)."""
    data = None
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with (opener or _OPENER).open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
        e.close()
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25,
               check: Callable[[], None] | None = None) -> Any:
    """Poll predicate until it returns a truthy value (returned); TimedOut after timeout. check() may raise to
    abort early (a process that died)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        if check is not None:
            check()
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - any failure of the probe means "not yet"
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimedOut(what, timeout, last_exc)
        time.sleep(interval)


def kafka_api_versions(port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker on 127.0.0.1:port answers an ApiVersions request (it processes requests, not just
    accepts TCP). Raises OSError when nothing answers."""
    client_id = b"launcher"
    corr = 7
    body = struct.pack(">hhih", 18, 0, corr, len(client_id)) + client_id
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        resp = _recv_exact(s, min(size, 1 << 20))
    return len(resp) >= 6 and struct.unpack(">i", resp[:4])[0] == corr


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf
