"""Worker-id aliases: a readiness warning when --worker-id names this worker another way than Connect does
(localhost for 127.0.0.1, fd00::1:8083 for [fd00::1]:8083), so every unit would look remote and liveness could never
fail. Moved out of the poller, which only asks :meth:`AliasCheck.notes` once per poll."""

from __future__ import annotations

import ipaddress
import json
import logging

from .config import HealthSettings
from .snapshot import Snapshot

log = logging.getLogger("connect_health.poller")


class AliasCheck:
    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._note: tuple[float, tuple[str, ...]] = (0.0, ())

    def notes(self, snapshot: Snapshot, now: float) -> tuple[str, ...]:
        """A readiness warning when no unit names this worker but one names it another way (localhost for
        127.0.0.1, fd00::1:8083 for [fd00::1]:8083): every unit would look remote and liveness could never fail.
        Looked for (in the whole cluster's listing) only while no unit names this worker, at most every minute."""
        wid = self.settings.worker_id
        if self.settings.scope != "worker" or not wid:
            return ()
        if any(c.worker_id == wid or any(t.worker_id == wid for t in c.tasks) for c in snapshot.connectors.values()):
            self._note = (now, ())
            return ()
        checked_at, notes = self._note
        if now - checked_at < 60.0 and checked_at > 0:
            return notes
        workers = {c.worker_id for c in snapshot.connectors.values()} | {
            t.worker_id for c in snapshot.connectors.values() for t in c.tasks}
        if snapshot.listing:
            try:
                listing = json.loads(snapshot.listing)
                for entry in listing.values() if isinstance(listing, dict) else ():
                    status = entry.get("status") if isinstance(entry, dict) else None
                    units = [status.get("connector")] + list(status.get("tasks") or []) \
                        if isinstance(status, dict) else []
                    workers |= {u["worker_id"] for u in units if isinstance(u, dict)
                                and isinstance(u.get("worker_id"), str)}
            except (ValueError, TypeError, AttributeError):
                pass
        alias = next((w for w in sorted(workers) if w != wid and same_worker(w, wid)), None)
        notes = ()
        if alias is not None:
            note = (f"no connector or task names this worker ({wid}) but Connect reports {alias}: the same worker "
                    "written another way? --worker-id must be exactly what Connect reports "
                    "(rest.advertised.host.name:port)")
            log.warning("%s", note)
            notes = (note,)
        self._note = (max(now, 1e-9), notes)
        return notes


LOOPBACK = {"localhost", "ip6-localhost", "localhost.localdomain"}


def _host_port(worker_id: str) -> tuple[str, str]:
    host, _, port = worker_id.strip().rpartition(":")
    return host.strip("[]").lower(), port


def same_worker(a: str, b: str) -> bool:
    """Whether two worker ids name the same host and port written differently (brackets, loopback aliases,
    an IPv4-mapped IPv6 address)."""
    (ha, pa), (hb, pb) = _host_port(a), _host_port(b)
    if pa != pb or not ha or not hb:
        return False
    if ha == hb:
        return True

    def ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        mapped = getattr(addr, "ipv4_mapped", None)
        return mapped if mapped is not None else addr

    ia, ib = ip(ha), ip(hb)
    loop_a = ha in LOOPBACK or (ia is not None and ia.is_loopback)
    loop_b = hb in LOOPBACK or (ib is not None and ib.is_loopback)
    return (loop_a and loop_b) or (ia is not None and ia == ib)
