"""Fixtures of the cluster e2e (`make e2e`): the chart installed on a real single-node Kubernetes cluster.

- `cluster`: the node of `launcher.cluster` (.tools/cluster/). One made by `make cluster-up` is used as it is and
  left running; otherwise the session starts one and tears it down at the end.
- `broker`: a KRaft broker on the host (the launcher's Broker) with a second listener on the node address, which
  is what it advertises to the pods (127.0.0.1 inside a pod is the pod itself).
- `release`: the chart installed with tests/e2e/cluster/values-e2e.yaml: from the registry when E2E_CHART names an
  `oci://` reference (what `make release` pushed), else from charts/kafka-connect with the images of
  ci/images/build-e2e.sh. 2 workers, short probe and ladder timings, declared connectors.
- `kube`: the Kubernetes API (the `kubernetes` client) plus helpers that print what the kubelet and the sidecar saw.

These tests only run when E2E_CLUSTER=1 (set by `make e2e`): `make test` does not build a cluster. Anything
missing (root, the cluster binaries, the images) fails them with one line saying what to run, never a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelp import NAMESPACE, RELEASE, ROOT, Kube, helm
from launcher import cluster as kcluster
from launcher.broker import Broker
from launcher.errors import StackError

IMAGES = ROOT / ".tools" / "images"
VALUES = Path(__file__).resolve().parent / "values-e2e.yaml"
BROKER_POD_PORT = 9092


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool:
    return os.environ.get("E2E_CLUSTER") != "1"


def _fail(what: str, e: BaseException) -> None:
    pytest.fail(f"{what}: {e}", pytrace=False)


@pytest.fixture(scope="session")
def cluster() -> Iterator[kcluster.Cluster]:
    archives = [IMAGES / "pause.tar", IMAGES / "connect.tar", IMAGES / "sidecar.tar"]
    missing = [a.name for a in archives if not a.is_file()]
    if missing:
        pytest.fail(f"images {missing} not in {IMAGES}: run `make image` and `bash ci/images/build-e2e.sh`",
                    pytrace=False)
    c = kcluster.Cluster(kcluster.DEFAULT_DIR)
    mine = not c.status().get("node_ready")
    try:
        if mine:
            c.up(archives)
        else:
            for a in archives:
                c.import_image(a)
    except StackError as e:
        _fail("cluster up", e)
    yield c
    if mine:
        c.down()


@pytest.fixture(scope="session")
def broker(cluster: kcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("e2e-broker"), heap="384m")
    host = f"127.0.0.1:{b.port}"
    pods = f"{kcluster.NODE_IP}:{BROKER_POD_PORT}"
    b.extra_props.update({  # a second listener, on the node address, advertised as such to the pods
        "listeners": f"PLAINTEXT://{host},CONTROLLER://127.0.0.1:{b.controller_port},PODS://{pods}",
        "advertised.listeners": f"PLAINTEXT://{host},PODS://{pods}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT"})
    try:
        b.start()
    except StackError as e:
        _fail("Kafka broker", e)
    yield b
    b.stop()


@pytest.fixture(scope="session")
def kube(cluster: kcluster.Cluster) -> Kube:
    return Kube(cluster.lay.kubeconfig, NAMESPACE)


def chart_args() -> list[str]:
    """The chart to install: the released one from the registry (E2E_CHART=oci://..., E2E_CHART_VERSION), else the
    source chart with the locally built images."""
    ref = os.environ.get("E2E_CHART", "")
    if ref:
        args = [ref]
        if os.environ.get("E2E_CHART_VERSION"):
            args += ["--version", os.environ["E2E_CHART_VERSION"], "--plain-http"]
        return args
    version = next(line.split('"')[1] for line in (ROOT / "sidecar" / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version = "))
    return [str(ROOT / "charts" / "kafka-connect"), "--set", "healthcheck.image.repository=e2e.local/connect-health",
            "--set", f"healthcheck.image.tag={version}"]


@pytest.fixture(scope="session")
def release(kube: Kube, broker: Broker) -> Iterator[str]:
    kube.ensure_namespace()
    t0 = time.monotonic()
    helm("upgrade", "--install", RELEASE, *chart_args(), "--namespace", NAMESPACE, "-f", str(VALUES),
         "--set", f"bootstrapServers={kcluster.NODE_IP}:{BROKER_POD_PORT}", "--wait", "--wait-for-jobs",
         "--timeout", "6m")
    print(f"release {RELEASE} installed and Ready in {time.monotonic() - t0:.0f}s", flush=True)
    kube.report("after install")
    yield RELEASE
    kube.report("at the end of the session")
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "2m", check=False)
    kube.delete_namespace()


@pytest.fixture
def workers(kube: Kube, release: str) -> list[Any]:
    """The two worker pods, Ready, in name order."""
    pods = kube.wait_workers_ready(2)
    return pods
