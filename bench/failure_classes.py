"""`bench/faults.py --only classes`: the six failures of launcher.failing on a real stack (Kafka, Connect with
Debezium and a test-only plugin, PostgreSQL), watched side by side by this tree's connect-health and by the sidecar
of an earlier commit (``--classes-before``, default fa0baae: main before the failure classes), both with the same
ladder, and by kafka-connect-healthcheck (bench/measure.py's pinned version, its defaults). For each failure: the
class found, the REST restarts each connect-health sent (from its own /metrics) and whether it asked for a pod
restart (its /livez names the connector: the kubelet would restart the pod); for kafka-connect-healthcheck, its
answer on / (the status, and whether its failures name the connector) and the restart POSTs it sent, counted in the
worker's request log (every restart POST whose User-Agent is not connect-health's). Writes a Markdown table.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import launcher
from launcher import failing
from measure import HealthcheckSidecar, ensure_kchc  # bench/: a script's own folder
from prometheus_client.parser import text_string_to_metric_families

ARGS = ["--poll-interval", "0.5", "--request-timeout", "5", "--restart-attempts", "3", "--restart-backoff", "1"]
BEFORE = "fa0baae"  # main before the failure classes
REPO = Path(__file__).resolve().parents[1]
say = launcher.Progress("classes")


def sidecar_source(ref: str, into: Path) -> Path:
    """sidecar/src of commit ``ref`` (git archive), for a PYTHONPATH."""
    archive = into / "before.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), ref, "sidecar/src"], check=True,
                   timeout=60)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before" / "sidecar" / "src"


def rest_restarts(sc: launcher.Sidecar, name: str) -> int:
    _, text = sc.get("/metrics")
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "connect_health_restarts_total" and s.labels.get("connector") == name \
                    and s.labels.get("outcome") == "requested" and s.labels.get("kind", "rest") == "rest":
                total += s.value
    return int(total)


RESTART = re.compile(r"/connectors/(?P<name>[^/?]+)(?:/tasks/\d+)?/restart(?:\?.*)?")


def logged_restarts(worker: launcher.Worker) -> tuple[dict[str, int], dict[str, int]]:
    """Restart POSTs per connector in the worker's request log: (connect-health's accepted ones, anyone else's,
    whatever the answer). A 409 (rebalance in progress) is not counted as sent: the sidecar tries again."""
    ours: dict[str, int] = {}
    others: dict[str, int] = {}
    for r in worker.request_log.since():
        m = RESTART.fullmatch(r.path)
        if r.method == "POST" and m:
            if not r.agent.startswith("connect-health"):
                others[m["name"]] = others.get(m["name"], 0) + 1
            elif r.status < 300:
                ours[m["name"]] = ours.get(m["name"], 0) + 1
    return ours, others


def kchc_answer(kchc: launcher.Sidecar, name: str) -> str:
    """kafka-connect-healthcheck's answer on / for one failure: its status, and whether its failures name it."""
    code, doc = kchc.get("/")
    named = isinstance(doc, dict) and any(f.get("connector") == name for f in doc.get("failures", []))
    return f"{code}, {'names it' if named else 'does not name it'}"


def entries(sc: launcher.Sidecar) -> dict[str, dict[str, Any]]:
    _, doc = sc.get("/status?limit=100")
    return {c["name"]: c for c in doc["connectors"]}


def run(workdir: Path, before: str = BEFORE) -> tuple[str, float]:
    """The table, and how long the run took."""
    t0 = time.monotonic()
    version = launcher.KAFKA_VERSION
    plugins = failing.compile_plugin(workdir, version)
    old_src = sidecar_source(before, workdir)
    pg = launcher.Postgres(workdir / "postgres").start()
    try:
        with launcher.Stack(workdir / "stack", version, debezium=True, plugin_path=[plugins], progress=say) as stack:
            failing.require_password(pg)
            after = stack.add(launcher.Sidecar(workdir, stack.connect_url, ARGS, name="after"), start=True)
            old = stack.add(launcher.Sidecar(workdir, stack.connect_url, ARGS, name="before",
                                             env={"PYTHONPATH": str(old_src)}), start=True)
            kchc = stack.add(HealthcheckSidecar(workdir, stack.worker, ensure_kchc()), start=True)
            for name, config in failing.configs(pg, workdir, launcher.free_port()).items():
                stack.worker.put_connector(name, config, timeout=60)
            time.sleep(5)
            pg.sql("insert into items values (1, 'x')")

            def settled() -> bool:
                a, b = entries(after), entries(old)
                return all(a.get(n, {}).get("failed_past_ladder") and b.get(n, {}).get("failed_past_ladder")
                           for n in failing.EXPECTED)

            launcher.wait_until(settled, 300, "both sidecars past their restarts for every failure", interval=1)
            time.sleep(10)  # longer than the ladders' waits: nothing more is sent
            a, b = entries(after), entries(old)
            live_after = " ".join(after.get("/livez")[1].get("reasons", []))
            live_before = " ".join(old.get("/livez")[1].get("reasons", []))
            ours, others = logged_restarts(stack.worker)
            rows = ["| failure | class found | REST restarts sent | pod restart asked | before (" + before
                    + "): REST restarts | before: pod restart asked | kafka-connect-healthcheck: / answers | "
                    "kchc: pod restart asked | kchc: REST restarts (request log) |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for name, (what, expected) in failing.EXPECTED.items():
                found = a[name].get("class", "-")
                mark = "" if found == expected else f" (**expected {expected}**)"
                sent_after, sent_before = rest_restarts(after, name), rest_restarts(old, name)
                if ours.get(name, 0) != sent_after + sent_before:  # the sidecars' own counts, checked in the log
                    say(f"{name}: request log has {ours.get(name, 0)} connect-health restart POSTs, "
                        f"the two sidecars count {sent_after} + {sent_before}")
                    for r in stack.worker.request_log.since():
                        if r.method == "POST" and f"/connectors/{name}/" in r.path:
                            say(f"  {r.path} {r.status} {r.agent}")
                answer = kchc_answer(kchc, name)
                rows.append(f"| {what} | {found}{mark} | {sent_after} | "
                            f"{'yes' if name in live_after else 'no'} | {sent_before} | "
                            f"{'yes' if name in live_before else 'no'} | {answer} | "
                            f"{'yes' if answer.startswith('503, names') else 'no'} | {others.get(name, 0)} |")
            agents = Counter(r.agent.split("/")[0] for r in stack.worker.request_log.since())
            say(f"restart POSTs in the request log: connect-health {sum(ours.values())} accepted, others "
                f"{sum(others.values())}; requests per User-Agent: {dict(agents)}")  # kchc's GETs are there
            del b
            return "\n".join(rows) + "\n", time.monotonic() - t0
    finally:
        pg.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="classes-", dir=launcher.TOOLS / "tmp") as tmp:
        table, seconds = run(Path(tmp))
    print(table)
    print(f"{seconds:.0f} s")
