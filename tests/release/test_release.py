"""A release rehearsal against a real registry on 127.0.0.1: `make release` pushes the image and the chart pinned
to its digest and signs both; the chart is pulled back with Helm 3 and Helm 4 and rendered with nothing but
`bootstrapServers`; the image is pulled back by digest into an empty storage and run; cosign verifies both, and
refuses what was pushed over them afterwards."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import launcher
import pytest
import yaml

from .conftest import COSIGN_PASSWORD, REHEARSAL_VERSION, Run, run, tool

WORKLOADS = ("Deployment", "StatefulSet", "Job", "Pod")


def pulled_chart(helm: str, rehearsal: dict[str, Any], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    run([tool(helm), "pull", rehearsal["chart"]["reference"], "--version", REHEARSAL_VERSION, "--plain-http",
         "--destination", str(dest)])
    (package,) = dest.glob("kafka-connect-*.tgz")
    return package


def containers(manifests: str) -> dict[tuple[str, str], str]:
    """(kind/name, container) -> image, over every workload rendered (hooks and test pods included)."""
    out: dict[tuple[str, str], str] = {}
    for doc in yaml.safe_load_all(manifests):
        if not doc or doc.get("kind") not in WORKLOADS:
            continue
        spec = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
        for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
            out[(f"{doc['kind']}/{doc['metadata']['name']}", c["name"])] = c["image"]
    return out


def image_ref(rehearsal: dict[str, Any]) -> str:
    return f"{rehearsal['image']['repository']}@{rehearsal['image']['digest']}"


def chart_ref(rehearsal: dict[str, Any]) -> str:
    return f"{rehearsal['chart']['reference'].removeprefix('oci://')}@{rehearsal['chart']['digest']}"


def test_release_printed_what_it_pushed(rehearsal: dict[str, Any], registry: launcher.Registry) -> None:
    printed = rehearsal["printed"]
    assert f"image {rehearsal['image']['repository']}:{REHEARSAL_VERSION}@{rehearsal['image']['digest']}" in printed
    assert f"chart {rehearsal['chart']['reference']}:{REHEARSAL_VERSION}@{rehearsal['chart']['digest']}" in printed
    assert rehearsal["image"]["repository"] == f"{registry.address}/connect-health/connect-health"
    assert sorted(registry.catalog()) == ["connect-health/charts/kafka-connect", "connect-health/connect-health"]
    assert rehearsal["source_stamped"] == [], "the release stamped the source chart instead of a copy"


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_pulled_chart_runs_the_pushed_digest(helm: str, rehearsal: dict[str, Any], tmp_path: Path) -> None:
    package = pulled_chart(helm, rehearsal, tmp_path)
    pushed = image_ref(rehearsal)

    rendered = run([tool(helm), "template", "rel", str(package), "--set", "bootstrapServers=kafka:9092",
                    "--set", "groupId=rel-connect"]).stdout
    plain = containers(rendered)
    sidecars = {k: v for k, v in plain.items() if k[0].startswith("Deployment/") and k[1] != "connect"}
    assert sidecars and set(sidecars.values()) == {pushed}, plain
    tests = {k: v for k, v in plain.items() if k[0].startswith("Pod/")}
    assert tests and set(tests.values()) == {pushed}, "the helm test pod runs the sidecar image"

    declared = tmp_path / "connector.yaml"
    declared.write_text(yaml.safe_dump({"bootstrapServers": "kafka:9092", "groupId": "rel-connect",
                                        "connectors": {"lines": {"config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "topic": "lines"}}}}))
    with_job = containers(run([tool(helm), "template", "rel", str(package), "-f", str(declared)]).stdout)
    jobs = {k: v for k, v in with_job.items() if k[0].startswith("Job/")}
    assert jobs and set(jobs.values()) == {pushed}, with_job
    # every image of the release is the pushed digest or Connect's own image, nothing else
    assert {v for v in with_job.values() if v != pushed} == {v for k, v in with_job.items() if k[1] == "connect"}


def test_packaged_chart_metadata(rehearsal: dict[str, Any], tmp_path: Path) -> None:
    package = pulled_chart("helm3", rehearsal, tmp_path)
    with tarfile.open(package) as tar:
        member = tar.extractfile("kafka-connect/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(io.TextIOWrapper(member))
    assert chart["version"] == REHEARSAL_VERSION
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    entry = next(i for i in images if i["name"] == "connect-health")
    assert entry["image"] == (f"{rehearsal['image']['repository']}:{REHEARSAL_VERSION}"
                              f"@{rehearsal['image']['digest']}")


def test_image_pulled_back_by_digest_runs(rehearsal: dict[str, Any], podman: Run, tmp_path: Path) -> None:
    ref = image_ref(rehearsal)
    tag = f"{rehearsal['image']['repository']}:{REHEARSAL_VERSION}"
    assert run([tool("crane"), "digest", "--insecure", tag]).stdout.strip() == rehearsal["image"]["digest"]
    config = json.loads(run([tool("crane"), "config", "--insecure", ref]).stdout)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == REHEARSAL_VERSION

    # An empty storage, so every layer comes from the registry (podman wants a runroot path under 50 characters).
    runroot = Path(tempfile.mkdtemp(prefix="ch-run-"))
    storage = (tmp_path / "root", runroot)
    try:
        pulled = podman("pull", "--tls-verify=false", ref, storage=storage, timeout=300).stdout.strip()
        r = podman("run", "--rm", "--read-only", "--network", "none", ref, "--version", storage=storage)
        assert r.stdout.startswith("connect-health ")
        assert podman("image", "inspect", "--format", "{{.Digest}}", pulled, storage=storage).stdout.strip() == \
            rehearsal["image"]["digest"]
    finally:
        podman("rmi", "-af", storage=storage, check=False)
        shutil.rmtree(runroot, ignore_errors=True)


def cosign_verify(ref: str, pub: Path) -> Any:
    return run([tool("cosign"), "verify", "--key", str(pub), "--insecure-ignore-tlog=true", "--allow-http-registry",
                "--output", "json", ref], check=False, timeout=120)


def test_cosign_verifies_both(rehearsal: dict[str, Any], cosign_keys: dict[str, Path]) -> None:
    for ref in (image_ref(rehearsal), chart_ref(rehearsal)):
        r = cosign_verify(ref, cosign_keys["pub"])
        assert r.returncode == 0, r.stderr
        payload = json.loads(r.stdout)
        assert payload[0]["critical"]["image"]["docker-manifest-digest"] == ref.rsplit("@", 1)[1]


def test_cosign_refuses_what_was_pushed_over_the_release(rehearsal: dict[str, Any], cosign_keys: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """Runs last: it replaces the release's tags with tampered artifacts."""
    image_tag = f"{rehearsal['image']['repository']}:{REHEARSAL_VERSION}"
    tampered = run([tool("crane"), "mutate", "--insecure", "--label", "tampered=yes", image_tag]).stdout.strip()
    assert tampered.split("@")[-1] != rehearsal["image"]["digest"]
    assert cosign_verify(image_tag, cosign_keys["pub"]).returncode != 0

    # a chart with another image pushed under the release's chart version
    package = pulled_chart("helm3", rehearsal, tmp_path / "pulled")
    src = tmp_path / "src"
    with tarfile.open(package) as tar:
        tar.extractall(src, filter="data")
    values = src / "kafka-connect" / "values.yaml"
    values.write_text(values.read_text().replace(rehearsal["image"]["repository"], "evil.example/connect-health"))
    run([tool("helm3"), "package", str(src / "kafka-connect"), "--destination", str(tmp_path / "out")])
    (repacked,) = (tmp_path / "out").glob("*.tgz")
    chart_oci = rehearsal["chart"]["reference"].rsplit("/", 1)[0]
    run([tool("helm3"), "push", str(repacked), chart_oci, "--plain-http"])
    chart_tag = f"{rehearsal['chart']['reference'].removeprefix('oci://')}:{REHEARSAL_VERSION}"
    assert run([tool("crane"), "digest", "--insecure", chart_tag]).stdout.strip() != rehearsal["chart"]["digest"]
    assert cosign_verify(chart_tag, cosign_keys["pub"]).returncode != 0

    # the signed originals still verify by digest, and not with another key
    assert cosign_verify(image_ref(rehearsal), cosign_keys["pub"]).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    run([tool("cosign"), "generate-key-pair", "--output-key-prefix", str(other / "cosign")],
        env={"COSIGN_PASSWORD": COSIGN_PASSWORD})
    assert cosign_verify(image_ref(rehearsal), other / "cosign.pub").returncode != 0
