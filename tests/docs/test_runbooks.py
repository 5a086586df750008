"""Every alert of the chart's PrometheusRule carries a runbook_url that resolves to a page of the built site.

The alerts are rendered by the real helm with every alert on (the JMX exporter's too), and their names are also read
from the template itself, so an alert added to prometheusrule.yaml that these values do not render fails here
instead of going unchecked. A runbook_url is `<runbookBaseUrl>/runbooks/<AlertName>/`; with the default base (the
site's own `site_url`) its path is mapped onto the built site (`runbooks/<AlertName>/index.html`), and the page's
source `docs/runbooks/<AlertName>.md` must have the four sections every runbook has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from chart.render import CHART, render_chart

from .conftest import CONFIG, DOCS

ALL_ALERTS_ON: dict[str, Any] = {
    "bootstrapServers": "kafka:9092",
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "jmxExporter": {"enabled": True, "image": {"repository": "r.example.com/jmx", "tag": "1"}},
    },
}
SECTIONS = ["## What it means", "## Confirm", "## What to do", "## Escalate"]


def rendered_alerts(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = render_chart(values, show_only=["templates/prometheusrule.yaml"])
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}


def template_alerts() -> set[str]:
    return set(re.findall(r"^\s*- alert: (\w+)\s*$", (CHART / "templates" / "prometheusrule.yaml").read_text(), re.M))


def site_url() -> str:
    return str(yaml.safe_load(CONFIG.read_text())["site_url"])


def test_every_alert_of_the_template_is_rendered_with_all_alerts_on() -> None:
    assert set(rendered_alerts(ALL_ALERTS_ON)) == template_alerts()


def test_the_default_runbook_base_is_the_sites_own_url() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    base = values["metrics"]["prometheusRule"]["runbookBaseUrl"]
    assert base.rstrip("/") + "/" == site_url(), "runbookBaseUrl and mkdocs.yml's site_url point at different sites"


@pytest.mark.parametrize("alert", sorted(template_alerts()))
def test_the_alert_has_a_runbook_url_that_resolves_to_a_built_page(site: Path, alert: str) -> None:
    rule = rendered_alerts(ALL_ALERTS_ON)[alert]
    url = rule["annotations"].get("runbook_url")
    assert url, f"{alert} has no runbook_url annotation"
    assert url.startswith(site_url()), f"{alert}: {url} is not under the site {site_url()}"
    path = urlparse(url).path.removeprefix(urlparse(site_url()).path)
    assert path == f"runbooks/{alert}/", url
    assert (site / path / "index.html").is_file(), f"{url}: the built site has no {path}index.html"
    source = (DOCS / "runbooks" / f"{alert}.md").read_text()
    assert source.startswith(f"# {alert}\n"), f"docs/runbooks/{alert}.md must start with '# {alert}'"
    positions = [source.find(f"\n{s}\n") for s in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), \
        f"docs/runbooks/{alert}.md needs the sections {SECTIONS} in that order"


def test_a_base_url_of_your_own_is_used_as_given() -> None:
    values = {**ALL_ALERTS_ON, "metrics": {**ALL_ALERTS_ON["metrics"], "prometheusRule": {
        "enabled": True, "runbookBaseUrl": "https://docs.internal/connect/"}}}
    urls = {a: r["annotations"]["runbook_url"] for a, r in rendered_alerts(values).items()}
    assert urls and all(u == f"https://docs.internal/connect/runbooks/{a}/" for a, u in urls.items()), urls


def test_the_pages_notes_link_to_are_built(site: Path) -> None:
    """NOTES.txt sends a new install to pages of the site: each must be built."""
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    paths = re.findall(r"\{\{ \$docs \}\}(\S*)", notes)
    assert "runbooks/" in paths, paths
    missing = [p for p in paths if not (site / p / "index.html").is_file()]
    assert not missing, f"NOTES.txt links to pages the site does not build: {missing}"
