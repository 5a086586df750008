"""The Kubernetes API as the sidecar's commands reach it from inside a pod, and the ConfigMap of done requests.

Where the API server is (``KUBERNETES_SERVICE_HOST``/``PORT``), the service account's token (re-read for each call:
projected tokens rotate) and CA, the pod's namespace: the parts ``events.py`` (Events) and ``RequestsRecord`` (the
offsets requests already done, issue 20) share.

``RequestsRecord`` keeps, per connector, the last ``KEEP`` offsets requests done, in one ConfigMap the chart renders
empty (``<fullname>-connector-requests``): ``data[<connector>]`` is a JSON list of request strings, oldest first. A
write is a JSON merge patch of that one key carrying the ``resourceVersion`` it read, so two writers never undo each
other's record (the loser gets a 409 and reads again). The Role the chart grants names this ConfigMap only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .redact import redact
from .transport import Transport

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
KEEP = 10  # done requests remembered per connector
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")  # what the API server accepts as a ConfigMap data key


def api_url(env: Mapping[str, str], needed_by: str) -> str:
    """The API server's URL in a pod (the Service env the kubelet sets); ValueError naming ``needed_by`` if absent."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ValueError(f"{needed_by} needs KUBERNETES_SERVICE_HOST (it runs in a pod)")
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"https://{hostport}"


def credentials(account_dir: str, needed_by: str) -> tuple[str, str | None]:
    """(token file, CA file or None) of the mounted service account; ValueError when the token is missing."""
    token = os.path.join(account_dir, "token")
    if not os.path.exists(token):
        raise ValueError(f"{needed_by} needs the service-account token ({token} is missing: "
                         "automountServiceAccountToken is off?)")
    ca = os.path.join(account_dir, "ca.crt")
    return token, ca if os.path.exists(ca) else None


def namespace(env: Mapping[str, str], account_dir: str, *names: str) -> str:
    """The first of the environment variables ``names`` that is set (the chart's downward API), else the service
    account's namespace file; "" when neither says."""
    for name in names:
        if env.get(name):
            return env[name]
    return read_text(os.path.join(account_dir, "namespace"))


# What a call raises when no answer came (see ``call``): OSError (refused, DNS, TLS, timeout), HTTPException (cut
# mid-answer), ValueError (a path or header http.client refuses to send: control characters, a token not latin-1).
UNREACHABLE = (OSError, ValueError, http.client.HTTPException)


def failure(exc: BaseException) -> str:
    """One line, redacted, saying why a call got no answer (some socket errors have no message)."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:200]


@dataclass(frozen=True)
class Reply:
    """An answer of the API server: its status and body."""

    status: int
    text: str

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.text)


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ApiServer:
    """An API server and how to authenticate to it: ``token_file`` is read again for every call."""

    url: str
    token_file: str
    ca_file: str | None

    @classmethod
    def from_environment(cls, env: Mapping[str, str], account_dir: str, needed_by: str) -> ApiServer:
        url = api_url(env, needed_by)
        return cls(url, *credentials(account_dir, needed_by))

    def transport(self, timeout: float) -> Transport:
        """Calls to this API server: directly (no proxy), TLS against ``ca_file`` (the system's CAs without it)."""
        return Transport(self.url, timeout=timeout, ca_file=self.ca_file)


def call(transport: Transport, token_file: str, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> Reply:
    """One call with the bearer token read from ``token_file`` now (projected tokens rotate); ``body`` sent as JSON.
    Raises one of ``UNREACHABLE`` when no answer came (refused, timed out, TLS refused, connection cut)."""
    headers = {"Authorization": f"Bearer {read_text(token_file)}", "Accept": "application/json",
               "User-Agent": "connect-health"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type
    resp = transport.send(method, path, data, headers)
    try:
        raw = resp.read()
    finally:
        resp.close()
    return Reply(resp.status, raw.decode("utf-8", "replace"))


class RecordError(Exception):
    """The ConfigMap of done requests could not be read or written; the message is one line."""


class RequestsRecord:
    """The offsets requests done per connector, in the ConfigMap ``name`` of ``namespace`` (see the module)."""

    def __init__(self, api: ApiServer, namespace: str, name: str, *, timeout: float = 10.0) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.transport = api.transport(timeout)

    @classmethod
    def from_environment(cls, name: str, env: Mapping[str, str] = os.environ,
                         account_dir: str = SERVICE_ACCOUNT) -> RequestsRecord:
        """In a pod: the namespace from CONNECT_HEALTH_NAMESPACE (the chart's downward API), POD_NAMESPACE or the
        service account's namespace file. ValueError names what is missing."""
        flag = "--requests-configmap"
        api = ApiServer.from_environment(env, account_dir, flag)
        ns = namespace(env, account_dir, "CONNECT_HEALTH_NAMESPACE", "POD_NAMESPACE")
        if not ns:
            raise ValueError(f"{flag} needs CONNECT_HEALTH_NAMESPACE or the service account's namespace file")
        return cls(api, ns, name)

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def _call(self, method: str, body: Any = None, content_type: str = "application/json") -> Reply:
        path = f"/api/v1/namespaces/{quote(self.namespace, safe='')}/configmaps/{quote(self.name, safe='')}"
        try:
            return call(self.transport, self.api.token_file, method, path, body, content_type)
        except UNREACHABLE as exc:
            raise RecordError(f"{self.where}: {method} failed: {failure(exc)}") from None

    def _refused(self, method: str, resp: Reply) -> RecordError:
        hint = {403: " (the chart's Role grants get and patch on this ConfigMap only)",
                404: " (the chart renders it; was it deleted?)"}.get(resp.status, "")
        try:
            obj = resp.json()
            message = str(obj.get("message", "")) if isinstance(obj, dict) else resp.text
        except ValueError:
            message = resp.text
        first = redact(message).splitlines()[0][:200] if message.strip() else f"HTTP {resp.status}"
        return RecordError(f"{self.where}: {method} answered {resp.status}: {first}{hint}")

    def _read(self) -> tuple[dict[str, str], str]:
        resp = self._call("GET")
        if resp.status != 200:
            raise self._refused("GET", resp)
        try:
            obj = resp.json()
        except ValueError:
            raise RecordError(f"{self.where}: GET answered 200 but not JSON") from None
        data = obj.get("data") if isinstance(obj, dict) else None
        version = obj.get("metadata", {}).get("resourceVersion", "") if isinstance(obj, dict) else ""
        return (data if isinstance(data, dict) else {}), str(version or "")

    def _requests(self, data: Mapping[str, str], connector: str) -> list[str]:
        text = data.get(connector)
        if text is None:
            return []
        try:
            done = json.loads(text)
        except ValueError:
            done = None
        if not isinstance(done, list) or not all(isinstance(r, str) for r in done):
            raise RecordError(f"{self.where}: data[{connector!r}] is not a JSON list of request strings")
        return done

    def done(self, connector: str) -> list[str]:
        """The requests already done for ``connector``, oldest first (the last ``KEEP``)."""
        data, _ = self._read()
        return self._requests(data, connector)

    def record(self, connector: str, request: str, attempts: int = 5) -> None:
        """Add ``request`` to the connector's done requests (the last ``KEEP`` are kept). A write that lost a race
        with another writer (409) is read and tried again, up to ``attempts`` times."""
        for _ in range(attempts):
            data, version = self._read()
            done = [r for r in self._requests(data, connector) if r != request] + [request]
            patch: dict[str, Any] = {"data": {connector: json.dumps(done[-KEEP:])}}
            if version:
                patch["metadata"] = {"resourceVersion": version}
            resp = self._call("PATCH", patch, "application/merge-patch+json")
            if resp.status == 200:
                return
            if resp.status != 409:
                raise self._refused("PATCH", resp)
        raise RecordError(f"{self.where}: PATCH kept conflicting with other writers ({attempts} attempts)")
