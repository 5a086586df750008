"""The docs site builds in strict mode, and strict mode really fails on what it must catch (issue 23).

The strict build (conftest.site) fails on a link to a page that does not exist, an anchor no page has, or a page
left out of the nav. The second test proves the configuration says so: the same config on a copy of docs/ with
one of each breaks the build, naming each. README.md is outside the site: its relative links are checked here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .conftest import CONFIG, DOCS, ROOT, build

# Pages a user of the README is sent to: they must exist in the built site.
PAGES = ["index.html", "getting-started/index.html", "installing/index.html", "health/index.html",
         "sidecar/options/index.html", "runbooks/index.html", "security/index.html",
         "contributing/performance/index.html"]


def test_the_site_builds_in_strict_mode(site: Path) -> None:
    missing = [p for p in PAGES if not (site / p).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"
    # The screenshots of the getting-started page are part of the site.
    assert (site / "status-page.png").is_file() and (site / "prometheus-graph.png").is_file()


def test_the_config_is_strict_and_fetches_nothing() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["strict"] is True
    for group in ("nav", "links"):
        assert set(config["validation"][group].values()) == {"warn"}, f"validation.{group}: every check must warn"
    assert config["theme"]["font"] is False, "Material would fetch Google Fonts"
    assert config["plugins"] == ["search"], "a plugin that downloads (social cards, privacy) breaks offline builds"


def test_a_broken_link_a_missing_anchor_and_a_page_out_of_the_nav_fail_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(CONFIG, copy / "mkdocs.yml")
    page = copy / "docs" / "getting-started.md"
    broken = "[gone](health/no-such-page.md) and [no anchor](health/index.md#no-such-anchor)"
    page.write_text(page.read_text() + f"\n{broken}\n")
    (copy / "docs" / "orphan.md").write_text("# Orphan\n")
    result = build(copy / "mkdocs.yml", tmp_path / "site")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "health/no-such-page.md" in out, out
    assert "no-such-anchor" in out, out
    assert "orphan.md" in out, out


def test_the_readme_links_only_to_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links into the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_links_of_the_chart_readme_to_the_site_resolve_to_built_pages(site: Path) -> None:
    """The chart's README (helm-docs, also shown by Artifact Hub) links to the published site by absolute URL."""
    base = str(yaml.safe_load(CONFIG.read_text())["site_url"])
    text = (ROOT / "charts" / "kafka-connect" / "README.md.gotmpl").read_text()
    paths = [m.removeprefix(base) for m in re.findall(re.escape(base) + r"[^)>\s#]*", text)]
    assert len(paths) >= 10, "the chart README links each value group to its page of the docs"
    missing = [p for p in paths if not (site / p / "index.html").is_file()]
    assert not missing, f"the chart README links to pages the site does not build: {missing}"


def test_the_readme_stays_short() -> None:
    """Issue 23: a README of about 200 lines for users; everything else lives in docs/."""
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 230, f"README.md has {lines} lines: move the details into docs/"
