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

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from .redact import redact

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


def direct(session: requests.Session | None = None) -> requests.Session:
    """A session that reaches the API server directly, never through the environment's http(s)_proxy."""
    session = session or requests.Session()
    session.trust_env = False
    return session


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

    def request(self, session: requests.Session, method: str, path: str, *, timeout: float,
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """One call to ``path`` on the API server: the token read afresh (it is rotated), TLS checked against the
        service account's CA; ``kwargs`` (``json``, ``data``) go to requests as they are."""
        return session.request(method, self.url.rstrip("/") + path, timeout=timeout, verify=self.ca_file or True,
                               headers={"Authorization": f"Bearer {read_text(self.token_file)}", **(headers or {})},
                               **kwargs)


class RecordError(Exception):
    """The ConfigMap of done requests could not be read or written; the message is one line."""


class RequestsRecord:
    """The offsets requests done per connector, in the ConfigMap ``name`` of ``namespace`` (see the module)."""

    def __init__(self, api: ApiServer, namespace: str, name: str, *, timeout: float = 10.0,
                 session: requests.Session | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.session = direct(session)

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

    def _call(self, method: str, body: Any = None, content_type: str | None = None) -> requests.Response:
        path = f"/api/v1/namespaces/{quote(self.namespace, safe='')}/configmaps/{quote(self.name, safe='')}"
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return self.api.request(self.session, method, path, timeout=self.timeout, headers=headers,
                                    data=None if body is None else json.dumps(body))
        except (OSError, requests.RequestException) as exc:
            raise RecordError(f"{self.where}: {method} failed: {redact(str(exc)).splitlines()[0][:200]}") from None

    def _refused(self, method: str, resp: requests.Response) -> RecordError:
        hint = {403: " (the chart's Role grants get and patch on this ConfigMap only)",
                404: " (the chart renders it; was it deleted?)"}.get(resp.status_code, "")
        try:
            message = str(resp.json().get("message", ""))
        except ValueError:
            message = resp.text
        first = redact(message).splitlines()[0][:200] if message.strip() else f"HTTP {resp.status_code}"
        return RecordError(f"{self.where}: {method} answered {resp.status_code}: {first}{hint}")

    def _read(self) -> tuple[dict[str, str], str]:
        resp = self._call("GET")
        if resp.status_code != 200:
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
            if resp.status_code == 200:
                return
            if resp.status_code != 409:
                raise self._refused("PATCH", resp)
        raise RecordError(f"{self.where}: PATCH kept conflicting with other writers ({attempts} attempts)")
