"""Render the kafka-connect chart with the real helm binary.

One helper for every chart test (the shape of Apache Airflow's helm-tests `render_chart`): `helm template` with a
values dict and/or values files, parsed into a list of Kubernetes objects. A failing render raises `HelmError`
carrying helm's stderr, which the negative tests match against.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kafka-connect"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
BAD_VALUES = sorted((Path(__file__).parent / "bad-values").glob("*.yaml"))
UMBRELLA = ROOT / "examples" / "umbrella"
# The sidecar image every render gets unless told otherwise (the source chart names none), and what it renders as:
# the tag defaults to the chart version.
SIDECAR_IMAGE_VALUES = Path(__file__).parent / "sidecar-image-values.yaml"
SIDECAR_REPOSITORY = yaml.safe_load(SIDECAR_IMAGE_VALUES.read_text())["healthcheck"]["image"]["repository"]
CHART_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])
SIDECAR_IMAGE = f"{SIDECAR_REPOSITORY}:{CHART_VERSION}"
# The Connect cluster's identity every render gets unless told otherwise (groupId is required).
IDENTITY_VALUES = Path(__file__).parent / "identity-values.yaml"

# The helm binaries the suite runs under (ci/tools.sh provides them). Missing ones fail the tests, never skip them.
HELMS = {"helm3": ROOT / ".tools" / "bin" / "helm3", "helm4": ROOT / ".tools" / "bin" / "helm4"}
# The oldest and newest Kubernetes minors the chart supports (Chart.yaml kubeVersion) that kubernetes-validate
# ships schemas for. Always passed to helm: a helm built without ldflags reports Kubernetes 1.20 by default.
OLDEST_KUBE = "1.25.0"
NEWEST_KUBE = "1.37.0"
KUBE_VERSIONS = (OLDEST_KUBE, NEWEST_KUBE)

# A rendered Kubernetes object, and render_chart bound to one helm (the `render` fixture of conftest.py).
Obj = dict[str, Any]
Render = Callable[..., list[Obj]]

RELEASE = "rel"
NAMESPACE = "team-a"


class HelmError(RuntimeError):
    """helm exited non-zero; `stderr` holds its message."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.args_ = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(args)} exited {returncode}:\n{stdout.strip()[-2000:]}\n{stderr.strip()}")


def helm_path(helm: str | os.PathLike[str]) -> Path:
    """The binary for a name in HELMS, or a path as given."""
    path = HELMS.get(str(helm), Path(helm))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"{path} is missing: run `make tools` (bash ci/tools.sh)")
    return path


def run_helm(helm: str | os.PathLike[str], *args: str, cwd: Path | None = None, timeout: float = 120) -> str:
    """Run helm, return stdout; raise HelmError with stderr on failure."""
    cmd = [str(helm_path(helm)), *args]
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(_helm_home() / "cache"),
        "HELM_CONFIG_HOME": str(_helm_home() / "config"),
        "HELM_DATA_HOME": str(_helm_home() / "data"),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise HelmError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@functools.cache
def _helm_home() -> Path:
    """An empty helm home for the session: no user repositories or plugins leak into the tests."""
    home = Path(tempfile.mkdtemp(prefix="chart-tests-helm-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def values_json(values: Any) -> str:
    """Values as JSON helm's YAML reader takes: escapes (\\uXXXX) for every non-ASCII character YAML may refuse raw
    (controls, U+FFFE), but characters beyond U+FFFF raw, as YAML refuses the surrogate pairs JSON would write."""
    text = json.dumps(values)
    return re.sub(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}", lambda m: str(json.loads(f'"{m.group(0)}"')), text)


def render_chart(
    values: dict[str, Any] | None = None,
    values_files: Iterable[str | os.PathLike[str]] = (),
    show_only: Iterable[str] = (),
    helm: str | os.PathLike[str] = "helm3",
    chart: str | os.PathLike[str] = CHART,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    kube_version: str = NEWEST_KUBE,
    extra_args: Iterable[str] = (),
    sidecar_image: bool = True,
    identity: bool = True,
) -> list[dict[str, Any]]:
    """`helm template` -> parsed objects (empty documents dropped), in helm's order.

    `values` is applied after `values_files`, and both after SIDECAR_IMAGE_VALUES unless `sidecar_image` is false
    (pass false for a chart other than kafka-connect, e.g. the umbrella, which sets its own) and after
    IDENTITY_VALUES unless `identity` is false (likewise);
    `show_only` takes template paths like "templates/deployment.yaml".
    Results are cached per arguments (helm is deterministic here) and handed out as deep copies.
    """
    base = ([SIDECAR_IMAGE_VALUES] if sidecar_image else []) + ([IDENTITY_VALUES] if identity else [])
    files = [*base, *values_files]
    key = json.dumps(
        {
            "values": values,
            "files": [str(Path(f).resolve()) for f in files],
            "show_only": list(show_only),
            "helm": str(helm),
            "chart": str(chart),
            "release": release,
            "namespace": namespace,
            "kube": kube_version,
            "extra": list(extra_args),
        },
        sort_keys=True,
    )
    return copy.deepcopy(_render_cached(key))


@functools.lru_cache(maxsize=512)
def _render_cached(key: str) -> list[dict[str, Any]]:
    spec = json.loads(key)
    args = [
        "template",
        spec["release"],
        spec["chart"],
        "--namespace",
        spec["namespace"],
        "--kube-version",
        spec["kube"],
    ]
    for f in spec["files"]:
        args += ["--values", f]
    with tempfile.TemporaryDirectory(prefix="chart-values-") as tmp:
        if spec["values"] is not None:
            values_file = Path(tmp) / "values.json"
            values_file.write_text(values_json(spec["values"]), encoding="utf-8")
            args += ["--values", str(values_file)]
        for template in spec["show_only"]:
            args += ["--show-only", template]
        args += spec["extra"]
        out = run_helm(spec["helm"], *args)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def lint_chart(
    helm: str | os.PathLike[str],
    values_files: Iterable[str | os.PathLike[str]] = (),
    kube_version: str = NEWEST_KUBE,
    chart: str | os.PathLike[str] = CHART,
) -> str:
    """`helm lint --strict` (warnings fail too); returns its output, raises HelmError on failure."""
    args = ["lint", "--strict", str(chart), "--kube-version", kube_version]
    for f in values_files:
        args += ["--values", str(f)]
    return run_helm(helm, *args)


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single object of `kind` (and `name`); fails clearly when there are none or several."""
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    if len(found) != 1:
        names = [o["metadata"]["name"] for o in by_kind(objects, kind)]
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)} among {names}")
    return found[0]


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    """A container of a Deployment, Job or Pod by name."""
    containers: list[dict[str, Any]] = pod_spec(pod_owner)["containers"]
    for c in containers:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name!r} in {[c['name'] for c in containers]}")


def pod_spec(pod_owner: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = pod_owner["spec"]
    pod: dict[str, Any] = spec["template"]["spec"] if "template" in spec else spec
    return pod


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    """A container's env as {name: value or valueFrom dict}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def properties(text: str) -> dict[str, str]:
    """Parse a Java properties file as Connect reads it (the subset the chart writes: key=value, escapes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        key, _, value = line.partition("=")
        decoded, i = [], 0
        while i < len(value):
            ch = value[i]
            if ch == "\\" and i + 1 < len(value):
                nxt = value[i + 1]
                decoded.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            decoded.append(ch)
            i += 1
        out[key.strip()] = "".join(decoded)
    return out
