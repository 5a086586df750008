#!/usr/bin/env python3
"""Benchmark: `helm template` of charts/kafka-connect with N declared connectors (issue 4: 100 in under 1 s).

Writes a values file with --connectors FileStream-style connectors (plus the worker settings a real team sets),
renders it --runs times with each helm binary after one warm-up run, checks the render really holds every
connector, and reports the median and spread of the wall-clock times. No assertion on time: it is a measurement.

    python bench/chart_template_bench.py                      # helm3 and helm4, 100 connectors, 11 runs
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


def values(connectors: int) -> dict[str, Any]:
    declared = {}
    for i in range(connectors):
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
    docs = [d for d in yaml.safe_load_all(output) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-connectors"))
    declared = json.loads(cm["data"]["connectors.json"])
    if len(declared) != connectors:
        sys.exit(f"rendered {len(declared)} connectors, expected {connectors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--helm", action="append", choices=sorted(HELMS), help="repeatable; default: all")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="chart-bench-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(values(args.connectors)))
        for name in args.helm or sorted(HELMS):
            helm = HELMS[name]
            if not helm.is_file():
                sys.exit(f"{helm} is missing: run `make tools`")
            _, output = render_once(helm, values_file)  # warm-up (page cache), and correctness
            check(output, args.connectors)
            times = [render_once(helm, values_file)[0] for _ in range(args.runs)]
            result = {
                "helm": name,
                "connectors": args.connectors,
                "runs": args.runs,
                "median_s": round(statistics.median(times), 4),
                "min_s": round(min(times), 4),
                "max_s": round(max(times), 4),
                "output_bytes": len(output),
            }
            results.append(result)
            print(
                f"{name}: helm template with {args.connectors} connectors: median {result['median_s'] * 1000:.0f} ms "
                f"(min {result['min_s'] * 1000:.0f}, max {result['max_s'] * 1000:.0f}, {args.runs} runs)"
            )
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
