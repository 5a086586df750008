"""One writer at a time: a Kubernetes Lease (coordination.k8s.io/v1) whose holder alone corrects drift.

Every pod's sidecar sees the same drift (the declared connectors are judged cluster-wide), so without one writer N
pods would each re-apply the same connector. The election is client-go's leaderelection, small:

- ``decide`` (pure) reads the Lease as last fetched and says what to do: ``create`` it (none yet), ``renew`` it
  (we hold it), ``acquire`` it (free, or its holder has not renewed it for ``leaseDurationSeconds`` as timed by OUR
  clock since we last saw it change: no clock of two machines is ever compared), or ``follow``.
- every write carries the ``resourceVersion`` read (optimistic concurrency): of two pods acquiring at once the API
  server lets one through and answers the other 409, which then follows.
- ``settle`` (pure) takes the write's outcome: after a successful create/renew/acquire sent at ``t`` we lead until
  ``t + 2/3 x duration`` (client-go's renew deadline), so a holder that cannot renew (API server away, the pod
  frozen) stops writing a third of the duration before any other pod may take the Lease over.
- ``Elector`` runs the two on its own thread every third of the duration; ``LeaseApi`` is the HTTP part (GET, POST,
  PUT on one Lease with the pod's service-account token, kubeapi.ApiServer).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import requests

from .kubeapi import ApiServer, direct
from .redact import redact

log = logging.getLogger("connect_health.lease")

RENEW_DEADLINE = 2 / 3  # of the lease duration: how long a holder goes on writing after its last successful renew
RETRY = 1 / 3  # of the lease duration: how often the Lease is read and renewed


@dataclass(frozen=True)
class Record:
    """What matters of a Lease object."""

    holder: str | None
    version: str  # metadata.resourceVersion, sent back with every write
    renew_time: str | None = None
    duration: float | None = None  # spec.leaseDurationSeconds
    transitions: int = 0
    acquire_time: str | None = None


@dataclass(frozen=True)
class Election:
    """This pod's view of the election: the Lease as last seen changing, when (our monotonic clock), and until when
    we may write (0: we do not lead)."""

    seen: tuple[str | None, str | None, str] | None = None  # (holder, renewTime, resourceVersion)
    seen_at: float = 0.0
    leader_until: float = 0.0

    def leads(self, now: float) -> bool:
        return now < self.leader_until


def decide(state: Election, record: Record | None, me: str, now: float, duration: float,
           eligible: bool = True) -> tuple[Election, str]:
    """The next step: ``create`` | ``renew`` | ``acquire`` | ``release`` | ``follow`` (with the Election updated for
    what was seen). A Lease of another holder is taken over only once it has stayed unchanged for its whole duration.
    A pod that is not ``eligible`` (its worker starting or not answering: it could not correct anything) never takes
    the Lease and hands it back if it holds it, so that a pod whose worker answers takes over."""
    if record is None:
        return replace(state, seen=None, seen_at=now), "create" if eligible else "follow"
    key = (record.holder, record.renew_time, record.version)
    state = replace(state, seen=key, seen_at=state.seen_at if key == state.seen else now)
    if not eligible:
        return replace(state, leader_until=0.0), "release" if record.holder == me else "follow"
    if record.holder == me:
        return state, "renew"
    if not record.holder:
        return state, "acquire"  # released by its holder
    if now - state.seen_at >= (record.duration or duration):
        return state, "acquire"
    return replace(state, leader_until=0.0), "follow"


def settle(state: Election, action: str, outcome: str, sent_at: float, duration: float) -> Election:
    """The Election after a write's ``outcome`` (``ok`` | ``conflict`` | ``error``): ok leads until the renew
    deadline counted from when the write was SENT; a conflict (another pod wrote first) leads no more; an error (no
    answer) changes nothing: the lead lapses by itself at its deadline."""
    if action == "follow":
        return state
    if action == "release":
        return replace(state, leader_until=0.0)
    if outcome == "ok":
        return replace(state, leader_until=sent_at + duration * RENEW_DEADLINE)
    if outcome == "conflict":
        return replace(state, leader_until=0.0)
    return state


def micro_time(at: datetime.datetime) -> str:
    """A Kubernetes MicroTime."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseError(Exception):
    """The API server could not be asked, or refused in a way that is no conflict (one line, redacted)."""


class LeaseApi:
    """GET, POST and PUT of one Lease, ``name`` in ``namespace``."""

    def __init__(self, api: ApiServer, namespace: str, name: str, *, timeout: float = 5.0,
                 session: requests.Session | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.session = direct(session)
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"

    def get(self) -> Record | None:
        body = self._call("GET", f"{self.collection}/{quote(self.name, safe='')}", None, (200, 404))
        if body is None:
            return None
        spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
        meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        duration, transitions = _number(spec.get("leaseDurationSeconds")), _number(spec.get("leaseTransitions"))
        return Record(holder=_text(spec.get("holderIdentity")), version=str(meta.get("resourceVersion", "")),
                      renew_time=_text(spec.get("renewTime")), duration=duration if duration else None,
                      transitions=int(transitions or 0), acquire_time=_text(spec.get("acquireTime")))

    def write(self, action: str, record: Record | None, me: str, duration: float, now: datetime.datetime) -> str:
        """Create, renew, acquire or ``release`` (hand back: no holder) the Lease for ``me``: ``ok``, or
        ``conflict`` when another writer was first."""
        stamp = micro_time(now)
        spec: dict[str, Any] = {"holderIdentity": "" if action == "release" else me,
                                "leaseDurationSeconds": int(duration), "renewTime": stamp}
        if action in ("renew", "release") and record is not None:
            spec.update(acquireTime=record.acquire_time or stamp, leaseTransitions=record.transitions)
        else:
            spec.update(acquireTime=stamp,
                        leaseTransitions=(record.transitions + 1) if record is not None and record.holder else 0)
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record is not None:
            meta["resourceVersion"] = record.version
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}
        if action == "create":
            done = self._call("POST", self.collection, body, (200, 201, 409))
        else:
            done = self._call("PUT", f"{self.collection}/{quote(self.name, safe='')}", body, (200, 201, 409))
        return "ok" if done is not None else "conflict"

    def _call(self, method: str, path: str, body: Any, expected: tuple[int, ...]) -> dict[str, Any] | None:
        """The answer's body; None for a 404 or 409 (when expected); LeaseError otherwise."""
        try:
            resp = self.api.request(self.session, method, path, timeout=self.timeout, json=body)
        except (OSError, requests.RequestException) as exc:
            raise LeaseError(f"{method} lease {self.name}: {redact(str(exc))[:200]}") from None
        if resp.status_code not in expected:
            hint = " (the chart's reconcile Role grants it)" if resp.status_code == 403 else ""
            raise LeaseError(f"{method} lease {self.name} answered {resp.status_code}: "
                             f"{redact(resp.text)[:200]}{hint}")
        if resp.status_code in (404, 409):
            return None
        try:
            out = resp.json()
        except ValueError:
            raise LeaseError(f"{method} lease {self.name}: the answer is not JSON") from None
        return out if isinstance(out, dict) else {}


class Elector:
    """Reads and writes the Lease every ``duration * RETRY`` seconds on its own thread; ``leads()`` says whether
    this pod may write now. ``step`` is one round (tests drive it directly)."""

    def __init__(self, api: LeaseApi, me: str, duration: float, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
                 eligible: Callable[[], bool] = lambda: True) -> None:
        self.api = api
        self.eligible = eligible  # whether this pod could correct now (reconcile.Reconciler says)
        self.me = me
        self.duration = duration
        self.clock = clock
        self.wall = wall
        self.state = Election()
        self.error: str | None = None  # the last round's failure, for /status
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Run the next round now (this pod just became eligible, or stopped being so)."""
        self._nudged.set()

    def leads(self) -> bool:
        return self.state.leads(self.clock())

    def step(self) -> None:
        was = self.leads()
        sent = self.clock()
        action = "get"
        try:
            record = self.api.get()
            state, action = decide(self.state, record, self.me, sent, self.duration, self.eligible())
            outcome = "ok"
            if action != "follow":
                outcome = self.api.write(action, record, self.me, self.duration, self.wall())
            self.state = settle(state, action, outcome, sent, self.duration)
            self.error = None
        except LeaseError as exc:
            if self.error != str(exc):
                log.warning("%s (while trying to %s it)", exc, action)
            self.error = str(exc)
        now = self.leads()
        if now != was:
            log.info("%s the lease %s: %s", "holding" if now else "no longer holding", self.api.name,
                     "this pod corrects drift" if now else "another pod corrects drift, or none until it is held")

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bug: logged, and the next round tries again (the lead lapses meanwhile)
                log.exception("lease round failed unexpectedly")
            self._nudged.wait(self.duration * RETRY)
            self._nudged.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="connect-health-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing; a holder hands the Lease back (no holder), so another pod takes over at its next round
        instead of a whole duration later (client-go's ReleaseOnCancel)."""
        self._stop.set()
        self._nudged.set()
        if self._thread is not None:
            self._thread.join(timeout=self.api.timeout + 1)
        if not self.leads():
            return
        self.state = Election()
        try:
            record = self.api.get()
            if record is not None and record.holder == self.me:
                self.api.write("release", record, self.me, self.duration, self.wall())
                log.info("released the lease %s", self.api.name)
        except LeaseError as exc:
            log.warning("%s (while releasing it: another pod takes over when it expires)", exc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None
