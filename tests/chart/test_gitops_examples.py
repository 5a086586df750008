"""examples/gitops/: an Argo CD Application and Flux HelmReleases for the chart from its OCI registry (issue 20).

Checked offline: every document against its schema (the GitOps kinds against their CRDs' schemas, crds/*.json via
crd_schemas.GITOPS_SCHEMAS; built-in kinds against Kubernetes'), and the chart values each one carries rendered by
the real helm (3 and 4) into objects Kubernetes accepts, as Argo CD's `helm template` and Flux's helm-controller
would render them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from .crd_schemas import GITOPS_SCHEMAS
from .render import CHART, KUBE_VERSIONS, NEWEST_KUBE, Render, by_kind, one, render_chart
from .test_scenarios import validate_object

EXAMPLES = sorted((CHART.parents[1] / "examples" / "gitops").glob("*.yaml"))
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate(doc: dict[str, Any]) -> None:
    schema = GITOPS_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(doc)
    else:
        for kube in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, kube, strict=True)


def releases() -> list[tuple[str, dict[str, Any]]]:
    """(example file, {release, namespace, values}) of every chart release the examples declare."""
    out = []
    for path in EXAMPLES:
        for doc in documents(path):
            if doc["kind"] == "Application":
                spec = doc["spec"]
                out.append((path.name, {"release": spec["source"]["helm"]["releaseName"],
                                        "namespace": spec["destination"]["namespace"],
                                        "values": spec["source"]["helm"]["valuesObject"]}))
            elif doc["kind"] == "HelmRelease":
                out.append((path.name, {"release": doc["spec"]["releaseName"],
                                        "namespace": doc["metadata"]["namespace"], "values": doc["spec"]["values"]}))
    return out


RELEASES = releases()


def test_the_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"argocd-application.yaml", "flux-helmrelease.yaml",
                                          "flux-helmrepository.yaml"}
    kinds = {d["kind"] for p in EXAMPLES for d in documents(p)}
    assert kinds >= {"Application", "HelmRelease", "OCIRepository", "HelmRepository"}
    assert {kind for _, kind in GITOPS_SCHEMAS} >= kinds - {"Secret"}, "a GitOps kind without a schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_document_validates_against_its_schema(path: Path) -> None:
    for doc in documents(path):
        validate(doc)


def test_they_install_the_released_chart_from_the_oci_registry() -> None:
    name, version = CHART_META["name"], str(CHART_META["version"])
    docs = {d["kind"]: d for p in EXAMPLES for d in documents(p)}
    source = docs["Application"]["spec"]["source"]
    assert (source["chart"], source["targetRevision"]) == (name, version)
    assert not source["repoURL"].startswith("oci://"), "Argo CD's Helm OCI repoURL takes no scheme"
    secret = docs["Secret"]
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    assert secret["stringData"]["enableOCI"] == "true" and secret["stringData"]["url"] == source["repoURL"]
    oci = docs["OCIRepository"]["spec"]
    assert oci["url"].endswith(f"/charts/{name}") and oci["ref"]["tag"] == version
    assert docs["HelmRepository"]["spec"]["type"] == "oci"
    flux = [d for p in EXAMPLES for d in documents(p) if d["kind"] == "HelmRelease"]
    assert {d["spec"].get("chartRef", {}).get("kind") for d in flux} >= {"OCIRepository"}
    spec_chart = next(d["spec"]["chart"]["spec"] for d in flux if "chart" in d["spec"])
    assert (spec_chart["chart"], spec_chart["version"]) == (name, version)
    # Flux's remediation of a failed upgrade is a `helm rollback`: the apply Job's post-rollback hook restores the
    # connectors of the revision it returns to.
    assert all(d["spec"]["upgrade"]["remediation"]["strategy"] == "rollback" for d in flux)


@pytest.mark.parametrize("mutation", [
    ("Application", ["spec", "source", "helm"], "valuesObjects", {}),
    ("Application", ["spec", "syncPolicy", "automated"], "selfheal", True),
    ("HelmRelease", ["spec", "upgrade", "remediation"], "strategy", "revert"),
    ("HelmRelease", ["spec"], "chartRefs", {}),
    ("OCIRepository", ["spec"], "url", "https://registry.example.com/charts/kafka-connect"),
    ("OCIRepository", ["spec", "layerSelector"], "operation", "unpack"),
    ("HelmRepository", ["spec"], "type", "docker"),
], ids=["argo-values-typo", "argo-selfheal-case", "flux-strategy", "flux-chartref-typo", "oci-url-scheme",
        "oci-layer-operation", "helmrepo-type"])
def test_the_schemas_refuse_what_the_controllers_would(mutation: tuple[str, list[str], str, Any]) -> None:
    kind, where, key, value = mutation
    doc = copy.deepcopy(next(d for p in EXAMPLES for d in documents(p) if d["kind"] == kind))
    validate(doc)
    here = doc
    for part in where:
        here = here[part]
    here[key] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@pytest.mark.parametrize(("example", "release"), RELEASES, ids=[f"{e}:{r['release']}" for e, r in RELEASES])
def test_the_values_render_valid_objects(helm: str, example: str, release: dict[str, Any]) -> None:
    objects = render_chart(release["values"], helm=helm, release=release["release"],
                           namespace=release["namespace"], identity=False)
    for kube in KUBE_VERSIONS:
        for obj in objects:
            validate_object(obj, kube)
    assert one(objects, "Deployment")["metadata"]["name"] == f"{release['release']}-kafka-connect"


def test_argo_cd_runs_the_apply_job_once_as_a_post_sync_hook(render: Render) -> None:
    (argo,) = [r for e, r in RELEASES if e == "argocd-application.yaml"]
    objects = render(argo["values"], release=argo["release"], namespace=argo["namespace"], identity=False,
                     kube_version=NEWEST_KUBE)
    (job,) = by_kind(objects, "Job")
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
