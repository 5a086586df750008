"""The listening socket of ``serve``, bound before anything else runs.

Binding first means a bad ``--host``/``--port`` is one line and exit 2 before the poller has sent a single call
(let alone a restart) to Connect. ``--host ::`` (the default) is one dual-stack socket (``IPV6_V6ONLY`` off), so
kubelet probes reach the pod on its IPv6 and its IPv4 address; where the kernel has IPv6 off it falls back to
``0.0.0.0``.
"""

from __future__ import annotations

import errno
import logging
import socket

from .options import UsageError

log = logging.getLogger("connect_health.listen")

NO_IPV6 = {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT}


def _blame(exc: OSError, port_flag: str) -> str:
    """Which flag an OSError of bind() is about: a taken port is the port's flag, any other failure --host's."""
    return port_flag if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host"


def _bound(family: int, address: tuple[object, ...], dual_stack: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def bind(host: str, port: int, port_flag: str = "--port") -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening). Raises UsageError naming --host or ``port_flag``."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if host in ("::", "[::]"):
        try:
            return _bound(socket.AF_INET6, ("::", port), dual_stack=True)
        except OSError as exc:
            if exc.errno not in NO_IPV6:
                raise UsageError(f"{_blame(exc, port_flag)}: cannot listen on {where}: {exc.strerror or exc}") from None
            log.info("IPv6 is off here: listening on 0.0.0.0:%d (IPv4 only)", port)
            host, where = "0.0.0.0", f"0.0.0.0:{port}"
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise UsageError(f"--host: cannot resolve {host!r}: {reason}") from None
    family, _, _, _, address = infos[0]
    try:
        return _bound(family, address)
    except OSError as exc:
        raise UsageError(f"{_blame(exc, port_flag)}: cannot listen on {where}: {exc.strerror or exc}") from None
