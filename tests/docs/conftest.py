"""The docs site (mkdocs.yml, docs/), built once per session with the real MkDocs in strict mode.

MkDocs and the Material theme are pinned in ci/requirements-test.txt (`make venv` installs them). A missing MkDocs
fails the tests, never skips them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "mkdocs.yml"
DOCS = ROOT / "docs"


def build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of `config` into `site_dir`; nothing is fetched (the config turns off what would)."""
    # NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2.0 and its own end of life, printed on every build.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site_dir)],
        capture_output=True, text=True, timeout=300, check=False, env=env, cwd=config.parent,
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs-site` builds it (into a temporary directory instead of .tools/site)."""
    out = tmp_path_factory.mktemp("site")
    result = build(CONFIG, out)
    if result.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return out
