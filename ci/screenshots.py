"""The docs' screenshots (docs/getting-started.md, README.md), from a running `make demo`: its status page and
Prometheus's graph of the dashboard's headline panel, side by side in docs/. Debian's Chromium, headless, driven by
playwright (flags: launcher.tools.CHROMIUM_ARGS); Prometheus's graph page needs its web UI (bash ci/prometheus-ui.sh).

    make demo                 # in one terminal
    make demo-break           # in another; wait for the alert to fire (the demo prints it)
    .tools/venv/bin/python ci/screenshots.py [--workdir .tools/demo] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import urllib.parse
from pathlib import Path

from launcher.demo import JOB, NAMESPACE
from launcher.state import load_state
from launcher.tools import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]

# The dashboard's "Tasks by state" panel (charts/kafka-connect/files/grafana-dashboard.json), for the demo's release.
HEADLINE = f'sum by (state) (connect_health_tasks{{namespace="{NAMESPACE}", job="{JOB}"}})'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(ROOT / ".tools" / "demo"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--range", default="5m", help="graph range (default 5m)")
    args = ap.parse_args()
    state = load_state(Path(args.workdir))
    demo = (state or {}).get("demo") or {}
    if not demo.get("prometheus_url"):
        print(f"screenshots: no demo with Prometheus runs from {args.workdir}: start one with `make demo`",
              file=sys.stderr)
        return 2
    dashboard = json.loads((ROOT / "charts/kafka-connect/files/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    template = HEADLINE.replace(f'namespace="{NAMESPACE}", job="{JOB}"', 'namespace="$namespace", job="$job"')
    assert template in exprs, f"the headline panel's query changed: {template} is not in the dashboard"
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    query = urllib.parse.urlencode({"g0.expr": HEADLINE, "g0.tab": "graph", "g0.range_input": args.range,
                                    "g0.show_tree": "0"})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(demo["status_url"])
        page.wait_for_selector("table")
        page.screenshot(path=str(out / "status-page.png"))
        page.goto(f"{demo['prometheus_url']}/query?{query}")
        page.wait_for_selector("canvas", timeout=30_000)  # uPlot draws the graph into a canvas
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "prometheus-graph.png"))
        browser.close()
    print(f"screenshots: {out / 'status-page.png'}, {out / 'prometheus-graph.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
