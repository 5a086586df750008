"""make release's argument checks (before anything is built) and the values stamping on its own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest

from .conftest import CHART, ROOT


def load_release_script() -> Any:
    """ci/release.py as a module (under another name: `release` is this test package)."""
    spec = importlib.util.spec_from_file_location("release_script", ROOT / "ci" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = load_release_script()


@pytest.mark.parametrize(("args", "says"), [
    (["--registry", "", "--version", "1.0.0"], "REGISTRY is empty"),
    (["--registry", "127.0.0.1:5000", "--version", "1.0.0"], "is not host[:port]/org"),
    (["--registry", "ghcr.io/Acme", "--version", "1.0.0"], "is not host[:port]/org"),
    (["--registry", "ghcr.io/acme", "--version", "1.0"], "is not a SemVer"),
    (["--registry", "ghcr.io/acme", "--version", "v1.0.0"], "is not a SemVer"),
    (["--registry", "ghcr.io/acme", "--version", "1.0.0", "--pushed-digest", "sha256:abc"], "is not sha256:"),
    (["--registry", "ghcr.io/acme", "--version", "1.0.0", "--cosign-key", "/nonexistent/cosign.key"],
     "no such file"),
])
def test_bad_arguments_one_line_exit_2(args: list[str], says: str) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "ci" / "release.py"), *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("release: ") and says in last, r.stderr
    assert "Traceback" not in r.stderr


def test_good_arguments_alone_check_and_exit_0() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "ci" / "release.py"), "--registry", "127.0.0.1:5000/acme",
                        "--version", "1.2.3-rc.1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == r.stderr == ""


def test_stamp_values_keeps_every_other_line() -> None:
    text = (CHART / "values.yaml").read_text()
    digest = "sha256:" + "a" * 64
    stamped = release.stamp_values(text, "r.example/acme/connect-health", "1.2.3", digest)
    changed = [(a, b) for a, b in zip(text.splitlines(), stamped.splitlines(), strict=True) if a != b]
    assert [b.strip() for _, b in changed] == ['repository: "r.example/acme/connect-health"', 'tag: "1.2.3"',
                                               f'digest: "{digest}"']


def test_stamp_values_refuses_a_chart_without_the_keys() -> None:
    with pytest.raises(release.ReleaseError, match=r"healthcheck\.image\.digest not found"):
        release.stamp_values("healthcheck:\n  image:\n    repository: x\n    tag: y\n", "r/o/c", "1.0.0",
                             "sha256:" + "b" * 64)
