"""Fixtures of the cluster e2e (`make e2e`): the chart installed on a real single-node Kubernetes cluster.

- `cluster`: the node of `launcher.cluster` (.tools/cluster/). One made by `make cluster-up` is used as it is and
  left running; otherwise the session starts one and tears it down at the end.
- `broker`: a KRaft broker on the host (the launcher's Broker) with a second listener on the node address, which
  is what it advertises to the pods (127.0.0.1 inside a pod is the pod itself).
- `chart`: by default `make release` to a local registry (127.0.0.1) and the chart installed from there
  (`oci://`), its images pulled by the node from that registry; E2E_CHART=source uses charts/kafka-connect and
  the images imported from ci/images/build-e2e.sh.
- `release`: the chart installed with tests/e2e/cluster/values-e2e.yaml: 2 workers, short probe and ladder timings,
  declared connectors.
- `kube`: the Kubernetes API (the `kubernetes` client) plus helpers that print what the kubelet and the sidecar saw.

These tests only run when E2E_CLUSTER=1 (set by `make e2e`): `make test` does not build a cluster. Anything
missing (root, the cluster binaries, the images) fails them with one line saying what to run, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelp import NAMESPACE, RELEASE, ROOT, Install, Kube, helm
from launcher import cluster as kcluster
from launcher.broker import Broker
from launcher.errors import StackError
from launcher.pins import KAFKA_VERSION
from launcher.registry import Registry

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
                c.publish(a)
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


def _sidecar_version() -> str:
    return next(line.split('"')[1] for line in (ROOT / "sidecar" / "pyproject.toml").read_text().splitlines()
                if line.startswith("version = "))


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if r.returncode != 0:
        pytest.fail(f"{what} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-600:]}", pytrace=False)
    return r.stdout


@pytest.fixture(scope="session")
def chart(cluster: kcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The chart reference and its image settings for `helm install`.

    Default: what `make release` pushes to a local registry (the launcher's Registry on 127.0.0.1, the image and the
    chart with the image's digest stamped, signed with a throwaway cosign key), plus the Connect image copied there;
    the node's containerd pulls both from it. E2E_CHART=source: charts/kafka-connect with the imported images."""
    if os.environ.get("E2E_CHART") == "source":
        yield [str(ROOT / "charts" / "kafka-connect"), "--set", "healthcheck.image.repository=e2e.local/connect-health",
               "--set", f"healthcheck.image.tag={_sidecar_version()}"]
        return
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        reg.start()
    except StackError as e:
        _fail("registry", e)
    try:
        keys = tmp_path_factory.mktemp("cosign")
        env = {"COSIGN_PASSWORD": "e2e-only-password"}
        _run([str(ROOT / ".tools" / "bin" / "cosign"), "generate-key-pair", f"--output-key-prefix={keys}/cosign"],
             "cosign generate-key-pair", env, 60)
        version = f"{_sidecar_version()}-e2e"
        t0 = time.monotonic()
        _run(["make", "--no-print-directory", "-s", "-C", str(ROOT), "release", f"REGISTRY={reg.address}/e2e",
              f"VERSION={version}", f"COSIGN_KEY={keys}/cosign.key"], "make release", env)
        connect = f"{reg.address}/e2e/kafka-connect"
        _run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{IMAGES / 'connect.tar'}",
              f"docker://{connect}:{KAFKA_VERSION}"], "skopeo copy of the Connect image")
        print(f"make release to {reg.address}/e2e (version {version}) and the Connect image: "
              f"{time.monotonic() - t0:.0f}s", flush=True)
        cluster.trust_registry(reg.address)
        yield [f"oci://{reg.address}/e2e/charts/kafka-connect", "--version", version, "--plain-http",
               "--set", f"image.repository={connect}", "--set", "image.pullPolicy=Always"]
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def install(broker: Broker, chart: list[str]) -> Install:
    """`helm upgrade --install` of the chart under test with the e2e values (values-e2e.yaml, the broker on the
    node), then `extra` (more -f/--set), waiting for the pods and the hook Job: the install and every upgrade."""
    def run(release: str, namespace: str, *extra: str) -> None:
        t0 = time.monotonic()
        helm("upgrade", "--install", release, *chart, "--namespace", namespace, "-f", str(VALUES),
             "--set", f"bootstrapServers={kcluster.NODE_IP}:{BROKER_POD_PORT}",
             # Each release its own Connect cluster (groupId is required; the same on every upgrade of a release).
             "--set", f"groupId={namespace}-{release}", *extra, "--wait",
             "--wait-for-jobs", "--timeout", "6m")
        print(f"release {release} installed/upgraded and Ready in {time.monotonic() - t0:.0f}s", flush=True)
    return run


@pytest.fixture(scope="session")
def release(kube: Kube, install: Install) -> Iterator[str]:
    kube.ensure_namespace()
    install(RELEASE, NAMESPACE)
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
