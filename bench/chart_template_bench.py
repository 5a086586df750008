#!/usr/bin/env python3
"""Benchmark: `helm template` of charts/kafka-connect with N declared connectors (issue 4: 100 in under 1 s; issue 19:
1,000 Debezium-sized ones, sharded over several ConfigMaps, in under 2 s).

Writes a values file with the connectors (FileStream-style, or Debezium Postgres sources of ~1.3 kB each; plus the
worker settings a real team sets),
renders it --runs times with each helm binary after one warm-up run, checks the render really holds every
connector, and reports the median and spread of the wall-clock times. No assertion on time: it is a measurement.

    python bench/chart_template_bench.py                      # helm3 and helm4, 100 FileStream + 1,000 Debezium
    python bench/chart_template_bench.py --connectors 1000 --shape debezium --helm helm3
    python bench/chart_template_bench.py --helm helm3 --runs 21 --json bench/results/chart-template.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kafka-connect"
HELMS = {"helm3": ROOT / ".tools" / "bin" / "helm3", "helm4": ROOT / ".tools" / "bin" / "helm4"}
KUBE_VERSION = "1.37.0"


SHAPES = ("filestream", "debezium")
# What `make bench` measures: the 100 FileStream connectors of issue 4 (under 1 s) and the 1,000 Debezium-sized ones
# of issue 19 (under 2 s; past ~766 of them one ConfigMap would exceed 1 MiB, so the chart shards them).
DEFAULT_SETS = ((100, "filestream"), (1000, "debezium"))


def debezium(i: int) -> dict[str, Any]:
    """A Debezium Postgres source as teams declare them (~1.3 kB of JSON), secrets through the config providers."""
    return {
        "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": 1,
            "database.hostname": f"orders-db-{i:04d}.databases.svc.cluster.local",
            "database.port": 5432,
            "database.user": "${directory:/mnt/secrets/pg:username}",
            "database.password": "${directory:/mnt/secrets/pg:password}",
            "database.dbname": f"orders_{i:04d}",
            "topic.prefix": f"cdc.orders.{i:04d}",
            "plugin.name": "pgoutput",
            "slot.name": f"debezium_orders_{i:04d}",
            "publication.name": f"dbz_publication_orders_{i:04d}",
            "publication.autocreate.mode": "filtered",
            "table.include.list": f"public.orders_{i:04d},public.order_lines_{i:04d},public.customers_{i:04d}",
            "snapshot.mode": "initial",
            "heartbeat.interval.ms": 10000,
            "heartbeat.action.query": "INSERT INTO debezium_heartbeat (ts) VALUES (now())",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": False,
            "value.converter.schemas.enable": False,
            "transforms": "unwrap,route",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.drop.tombstones": False,
            "transforms.unwrap.delete.handling.mode": "rewrite",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": r"cdc\.orders\.(\d+)\.public\.(.*)",
            "transforms.route.replacement": "orders.$2",
            "errors.tolerance": "none",
            "errors.log.enable": True,
            "errors.log.include.messages": False,
            "topic.creation.default.replication.factor": 3,
            "topic.creation.default.partitions": 6,
            "topic.creation.default.cleanup.policy": "compact",
        },
        "restartAttempts": 0,
    }



def values(connectors: int, shape: str = "filestream") -> dict[str, Any]:
    declared: dict[str, Any] = {}
    if shape == "debezium":
        declared = {f"orders-cdc-{i:04d}": debezium(i) for i in range(connectors)}
    for i in range(connectors if shape == "filestream" else 0):
        kind = "Sink" if i % 2 else "Source"
        config = {
            "connector.class": f"org.apache.kafka.connect.file.FileStream{kind}Connector",
            "tasks.max": 1 + i % 4,
            "file": f"/data/connector-{i:03d}.txt",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": f"dlq-{i:03d}",
            "transforms": "route",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": r"(.*)-\d+",
            "transforms.route.replacement": "$1",
        }
        config["topics" if kind == "Sink" else "topic"] = f"topic-{i:03d}"
        declared[f"connector-{i:03d}"] = {
            "config": config,
            "state": ("running", "paused", "stopped")[i % 3],
            "policy": "best-effort" if i % 10 == 0 else "critical",
        }
    return {
        "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092",
        "groupId": "bench-connect",
        "sinkConsumerGroups": "cluster",
        "replicaCount": 3,
        "pluginPath": ["/opt/kafka/libs/connect-file-4.3.1.jar"],
        "workerConfig": {"offset.flush.interval.ms": 10000, "scheduled.rebalance.max.delay.ms": 120000},
        "podDisruptionBudget": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        # The source chart names no connect-health image: the one a team built with `make image` and pushed.
        "healthcheck": {"image": {"repository": "registry.example.com/connect-health/connect-health"}},
        "connectors": declared,
    }


def render_once(helm: Path, values_file: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(helm), "template", "bench", str(CHART), "--kube-version", KUBE_VERSION, "--values", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{helm.name} template failed:\n{proc.stderr}")
    return elapsed, proc.stdout


def check(output: str, connectors: int) -> None:
    """Every connector is rendered, across the connectors ConfigMaps (shards past 1 MiB), each under 1 MiB."""
    docs = [d for d in yaml.safe_load_all(output) if d]
    declared: dict[str, Any] = {}
    for cm in docs:
        if cm["kind"] == "ConfigMap" and cm["metadata"]["labels"].get("app.kubernetes.io/component") == "connectors":
            if sum(len(k) + len(v.encode()) for k, v in cm["data"].items()) >= 1024 * 1024:
                sys.exit(f"ConfigMap {cm['metadata']['name']} holds 1 MiB or more: the API server refuses it")
            for text in cm["data"].values():
                declared.update(json.loads(text))
    if len(declared) != connectors:
        sys.exit(f"rendered {len(declared)} connectors, expected {connectors}")


def measure(connectors: int, shape: str, helms: list[str], runs: int) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="chart-bench-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(values(connectors, shape)))
        for name in helms:
            helm = HELMS[name]
            if not helm.is_file():
                sys.exit(f"{helm} is missing: run `make tools`")
            _, output = render_once(helm, values_file)  # warm-up (page cache), and correctness
            check(output, connectors)
            times = [render_once(helm, values_file)[0] for _ in range(runs)]
            result: dict[str, Any] = {
                "helm": name,
                "connectors": connectors,
                "shape": shape,
                "runs": runs,
                "median_s": round(statistics.median(times), 4),
                "min_s": round(min(times), 4),
                "max_s": round(max(times), 4),
                "output_bytes": len(output),
            }
            results.append(result)
            print(
                f"{name}: helm template with {connectors} {shape} connectors: median {result['median_s'] * 1000:.0f} "
                f"ms (min {result['min_s'] * 1000:.0f}, max {result['max_s'] * 1000:.0f}, {runs} runs)"
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, help="with --shape: how many (default: 100 FileStream and 1,000 "
                        "Debezium-sized, each measured)")
    parser.add_argument("--shape", choices=SHAPES, default="filestream", help="with --connectors: their shape")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--helm", action="append", choices=sorted(HELMS), help="repeatable; default: all")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    sets = [(args.connectors, args.shape)] if args.connectors is not None else list(DEFAULT_SETS)
    results = []
    for connectors, shape in sets:
        results += measure(connectors, shape, args.helm or sorted(HELMS), args.runs)
    report = {
        "benchmark": "chart_template",
        "machine": platform.platform(),
        "python": platform.python_version(),
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
