"""A real Prometheus on 127.0.0.1 scraping the stack, with the chart's own alerting rules loaded.

For ``make demo`` (the connector alert fires in /api/v1/alerts on demo-break and resolves on demo-heal) and for the
observability tests (every PromQL expression of the chart's dashboard evaluated against real scrapes). The server
and ``promtool`` are built from the Go module proxy at the pin of ci/versions.env by ``make tools``
(.tools/bin/prometheus, .tools/bin/promtool).

    target = ScrapeTarget("rel-kafka-connect", sidecar.url, {"namespace": "team-a", "pod": "rel-kafka-connect-0"})
    rules = render_chart_rules(workdir / "rules.yml", "rel", "team-a", {"...for": "10s"})
    with Prometheus(workdir, [target], [rules]) as prom:
        prom.query('connect_health_worker_reachable')   # the result vector of an instant query
        prom.alerts()                                   # the alerts of /api/v1/alerts
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import MissingTool, StackError
from .net import HOST, claim_port, http
from .pins import ROOT, TOOLS
from .service import Service

CHART = ROOT / "charts" / "kafka-connect"
RULE_TEMPLATE = "templates/prometheusrule.yaml"
UI_STATIC = TOOLS / "prometheus-ui" / "static"  # built by ci/prometheus-ui.sh (only screenshots need the UI)


def _tool(name: str) -> str:
    candidate = TOOLS / "bin" / name
    if not candidate.exists():
        raise MissingTool(f"{name} (.tools/bin/{name})",
                          "run `make tools` (builds Prometheus from the Go module proxy)")
    return str(candidate)


def prometheus_executable() -> str:
    """.tools/bin/prometheus, built by `make tools` (ci/tools.sh)."""
    return _tool("prometheus")


def promtool_executable() -> str:
    """.tools/bin/promtool, built with the server by `make tools`."""
    return _tool("promtool")


def helm_executable() -> str:
    """.tools/bin/helm3, provided by `make tools`."""
    return _tool("helm3")


class ScrapeTarget(NamedTuple):
    """One scrape job with one target: ``url`` is the base URL (http://127.0.0.1:port) and ``labels`` are added to
    every series, as a ServiceMonitor's relabelling would add namespace and pod in Kubernetes. ``job`` becomes the
    job label (the chart's rules select on it: the Service's name, i.e. the release's fullname)."""

    job: str
    url: str
    labels: Mapping[str, str] = {}
    metrics_path: str = "/metrics"


def fullname(release: str, chart: str = "kafka-connect") -> str:
    """The chart's ``kafka-connect.fullname`` for a release without name overrides (the job its rules select)."""
    return (release if chart in release else f"{release}-{chart}")[:63].rstrip("-")


def rule_groups_of(prometheus_rule: str) -> str:
    """The rule file Prometheus loads, from a rendered PrometheusRule: its ``spec`` (``groups: ...``), dedented.

    The chart renders block-style YAML with ``spec:`` at the top level, so no YAML library is needed (the launcher
    is standard library only); promtool/Prometheus reject the result loudly if that ever stops being true.
    """
    lines = prometheus_rule.splitlines()
    try:
        start = lines.index("spec:") + 1
    except ValueError:
        raise StackError("the rendered PrometheusRule has no top-level `spec:`") from None
    out: list[str] = []
    for line in lines[start:]:
        if line.startswith("---") or (line and not line.startswith(" ")):
            break
        out.append(line[2:])
    if not any(line.startswith("groups:") for line in out):
        raise StackError("the rendered PrometheusRule's spec has no `groups:`")
    return "\n".join(out).rstrip() + "\n"


def render_chart_rules(dest: str | os.PathLike[str], release: str, namespace: str,
                       values: Mapping[str, str] | None = None, chart: Path = CHART) -> Path:
    """`helm template` of the chart's PrometheusRule (metrics.prometheusRule.enabled=true plus ``values``, each a
    --set), written to dest as a Prometheus rule file. Returns dest."""
    cmd = [helm_executable(), "template", release, str(chart), "--namespace", namespace, "--show-only", RULE_TEMPLATE,
           "--set", "metrics.prometheusRule.enabled=true",
           # The rules select the job label the chart's ServiceMonitor gives; the chart refuses them without one.
           "--set", "metrics.serviceMonitor.enabled=true",
           # The source chart names no sidecar image (make release stamps one); any will do for the rules.
           "--set", "healthcheck.image.repository=localhost/connect-health", "--set", "bootstrapServers=127.0.0.1:9092",
           "--set", f"groupId={namespace}-{release}"]
    for key, value in (values or {}).items():
        cmd += ["--set", f"{key}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise StackError(f"helm template of {RULE_TEMPLATE} failed: {proc.stderr.strip().splitlines()[-1:]}")
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_groups_of(proc.stdout))
    return path


class Prometheus(Service):
    """``prometheus`` on 127.0.0.1:port scraping ``targets`` every ``scrape_interval`` and evaluating the rules of
    ``rule_files`` every ``evaluation_interval`` (short by default: a demo or a test sees changes within seconds).
    Storage lives in <dir>/data and goes with the workdir."""

    start_timeout = 60.0

    def __init__(self, workdir: str | os.PathLike[str], targets: Sequence[ScrapeTarget],
                 rule_files: Sequence[str | os.PathLike[str]] = (), port: int | None = None,
                 name: str = "prometheus", scrape_interval: str = "1s", evaluation_interval: str = "1s") -> None:
        super().__init__(workdir, name, "prometheus.log")
        self.listener = claim_port(port, "Prometheus", "--prometheus-port")
        self.targets = list(targets)
        self.rule_files = [Path(f).resolve() for f in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.binary = prometheus_executable()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.dir / "prometheus.yml"

    def config(self) -> dict[str, Any]:
        scrape_configs = []
        for t in self.targets:
            parsed = urllib.parse.urlsplit(t.url)
            scrape_configs.append({
                "job_name": t.job, "scheme": parsed.scheme or "http", "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [parsed.netloc], "labels": dict(t.labels)}],
            })
        return {"global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                           "evaluation_interval": self.evaluation_interval},
                "rule_files": [str(f) for f in self.rule_files], "scrape_configs": scrape_configs}

    def prepare(self) -> None:
        super().prepare()
        shutil.rmtree(self.dir / "data", ignore_errors=True)  # every start is a fresh TSDB
        # The web UI (graph, alerts pages), when ci/prometheus-ui.sh has built it: a server built without embedded
        # assets serves ./web/ui/static from a working directory named "prometheus", which self.dir is.
        ui, link = UI_STATIC, self.dir / "web" / "ui" / "static"
        if self.dir.name == "prometheus" and (ui / "mantine-ui" / "index.html").is_file() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(ui)
        self.config_file.write_text(json.dumps(self.config(), indent=2) + "\n")  # JSON is YAML

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_file}", f"--web.listen-address={HOST}:{self.port}",
                f"--storage.tsdb.path={self.dir / 'data'}", "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle"]

    def ready(self) -> bool:
        status, _ = http("GET", f"{self.url}/-/ready", timeout=2.0)
        return status == 200

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>?params: the ``data`` of a success answer; StackError with Prometheus's error else."""
        query = urllib.parse.urlencode(params)
        status, body = http("GET", f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""), timeout=30.0)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise StackError(f"Prometheus /api/v1/{path} {params} answered {status}: {error}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the result vector (a scalar comes back as a one-element list)."""
        data = self.api("query", query=expr)
        result = data["result"]
        return [{"metric": {}, "value": result}] if data["resultType"] == "scalar" else list(result)

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (GET /api/v1/alerts)."""
        return list(self.api("alerts")["alerts"])

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def describe(self) -> str:
        return f"Prometheus on {self.url}"

    def waiting_for(self) -> str:
        return f"Prometheus to answer {self.url}/-/ready"

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "url": self.url}
