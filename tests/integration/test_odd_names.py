"""Any connector name (issue 18): on a real worker of each supported Kafka, every odd name Connect accepts at create
is reached by the sidecar's REST client as ONE path segment: GET status and POST restart answer about that very
connector, never about another one (``..`` used to become ``/restart``, ``%2e%2e`` could reach ``..``) and never a
404 for a connector that exists. The names a worker cannot address at all are listed per version: they are
answered 400 by its HTTP server (Jetty) before Connect sees them, whatever the encoding.

The connectors are created with ``POST /connectors`` (the name in the body), on a stack of this test's own: the
unaddressable ones cannot be deleted through the REST API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import launcher
import pytest
from connect_health.client import ConnectClient, Reply, _segment
from connect_health.config import ConnectSettings

# (Connect trims a name's leading and trailing spaces at create: " x" becomes "x", so none is tried here.)
ODD = ["..", ".", "...", "..a", "a/b", "a/../b", "/lead", "trail/", "%2e%2e", "%2E%2E", "a%2Fb", "%", "with space",
       "ünïcødé-名前", "q?x", "h#x", "a;b", ";x", "a\\b", "+plus", "~", "a&b=c", "'quote\"", "<tag>"]

# What the worker's HTTP server refuses (400) in an encoded path segment, so that no client can address these
# connectors, measured: Jetty 12 (Kafka 4.3.1) refuses an encoded "/" (%2F: ambiguous path separator), "%" (%25:
# ambiguous encoding) and "\" (%5C: suspicious character); Jetty 9.4 (Kafka 3.6.2) decodes every one of them.
UNADDRESSABLE = {launcher.KAFKA_VERSION: {"a/b", "a/../b", "/lead", "trail/", "%2e%2e", "%2E%2E", "a%2Fb", "%", "a\\b"},
                 launcher.KAFKA_LEGACY_VERSION: set()}


def _created(worker: launcher.Worker, name: str, workdir: Path) -> int:
    config = {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "tasks.max": "1",
              "topics": "odd-names", "file": str(workdir / "sink.txt")}

    def attempt() -> int | None:  # 409: a rebalance in progress (a worker just started), not an answer
        status, _ = worker.request("POST", "/connectors", {"name": name, "config": config}, timeout=60)
        return None if status == 409 else status

    return int(launcher.wait_until(attempt, 60, f"POST /connectors {name!r} answered other than 409"))


def _about(reply: Reply) -> Any:
    return reply.body.get("name") if isinstance(reply.body, dict) else None


@pytest.mark.parametrize("version", [launcher.KAFKA_VERSION, launcher.KAFKA_LEGACY_VERSION])
def test_every_odd_name_reaches_its_own_connector_or_none(stack_factory: Callable[..., launcher.Stack],
                                                          workdir: Path, version: str) -> None:
    stack = stack_factory(version)
    worker = stack.worker
    accepted = [n for n in ODD if _created(worker, n, workdir) == 201]
    # Connect accepts any non-empty name without control characters (ConnectorConfig's name validator)
    assert accepted == ODD
    client = ConnectClient(ConnectSettings(url=stack.connect_url, request_timeout=30))
    listed: set[str] = set()

    def all_listed() -> bool:
        listed.clear()
        listed.update(client.connectors_expanded(info=False).body or {})
        return set(ODD) <= listed

    try:
        launcher.wait_until(all_listed, 60, "every odd connector in GET /connectors?expand=status")
    except launcher.StackError:
        pytest.fail(f"missing from GET /connectors?expand=status: {sorted(set(ODD) - listed)}; listed: {listed}")
    reached, refused = set(), set()
    for name in ODD:
        status = client.request("GET", f"/connectors/{_segment(name)}/status")
        restart = client.restart_connector(name, include_tasks=True, only_failed=False)
        assert status.status in (200, 400), (name, status)  # never a 404: the connector exists
        assert restart.status in (202, 400), (name, restart)  # never the 404 (or 405) of another path
        if status.status == 200:
            assert _about(status) == name, (name, status.body)  # this connector, not another
            assert restart.status == 202 and _about(restart) == name, (name, restart.body)
            reached.add(name)
        else:
            assert restart.status == 400, (name, restart)
            refused.add(name)
    assert refused == UNADDRESSABLE[version], f"Kafka {version}: unaddressable {sorted(refused)}"
    assert reached == set(ODD) - UNADDRESSABLE[version]

