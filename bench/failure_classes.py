"""`bench/faults.py --only classes`: the six failures of launcher.failing on a real stack (Kafka, Connect with
Debezium and a test-only plugin, PostgreSQL), watched side by side by this tree's connect-health and by the sidecar
of an earlier commit (``--classes-before``, default fa0baae: main before the failure classes), both with the same
ladder. For each failure: the class found, the REST restarts each sent (from its own /metrics) and whether it asked
for a pod restart (its /livez names the connector: the kubelet would restart the pod). Writes a Markdown table.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import launcher
from launcher import failing
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
            rows = ["| failure | class found | REST restarts sent | pod restart asked | before (" + before
                    + "): REST restarts | before: pod restart asked |", "|---|---|---|---|---|---|"]
            for name, (what, expected) in failing.EXPECTED.items():
                found = a[name].get("class", "-")
                mark = "" if found == expected else f" (**expected {expected}**)"
                rows.append(f"| {what} | {found}{mark} | {rest_restarts(after, name)} | "
                            f"{'yes' if name in live_after else 'no'} | {rest_restarts(old, name)} | "
                            f"{'yes' if name in live_before else 'no'} |")
            del b
            return "\n".join(rows) + "\n", time.monotonic() - t0
    finally:
        pg.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="classes-", dir=launcher.TOOLS / "tmp") as tmp:
        table, seconds = run(Path(tmp))
    print(table)
    print(f"{seconds:.0f} s")
