"""NOTES.txt: how to reach the REST API and the status page.

`helm template` does not print NOTES and `helm install --dry-run` has no --kube-version, so the test renders the
NOTES text through a throw-away template in a copy of the chart: the same text, helpers and values helm install
would use, and a template error in NOTES fails here instead of at install time.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .render import CHART, SCENARIOS, one, render_chart

SCENARIO_IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]


@pytest.fixture(scope="session")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("notes") / "kafka-connect"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "zz-notes-under-test.yaml").write_text(
        '{{- define "notes-under-test" }}' + notes + "{{ end }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\n"
        'data:\n  notes: {{ include "notes-under-test" . | quote }}\n'
    )
    return copy


def notes(helm: str, chart: Path, values: dict[str, Any] | None = None, files: Sequence[Path] = ()) -> str:
    objects = render_chart(
        values, values_files=files, helm=helm, chart=chart, show_only=["templates/zz-notes-under-test.yaml"]
    )
    text: str = one(objects, "ConfigMap")["data"]["notes"]
    return text


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_notes_render_for_every_scenario(helm: str, notes_chart: Path, scenario: Path) -> None:
    text = notes(helm, notes_chart, files=[scenario])
    assert "port-forward svc/" in text and "/connectors?expand=status" in text


def test_notes_point_at_the_status_page_and_the_connectors_job(helm: str, notes_chart: Path) -> None:
    text = notes(helm, notes_chart, files=[CHART / "ci" / "10-connectors-values.yaml"])
    assert "kubectl --namespace team-a port-forward svc/rel-kafka-connect 8083:8083" in text
    assert "kubectl --namespace team-a port-forward svc/rel-kafka-connect 8090:8090" in text
    assert "http://127.0.0.1:8090/status" in text
    assert "Declared connectors (3): file-sink, file-source, sandbox-sink" in text
    assert "kubectl --namespace team-a logs job/rel-kafka-connect-connectors-apply" in text
    assert "helm test rel --namespace team-a" in text


def test_notes_give_the_check_one_liner_and_the_docs(helm: str, notes_chart: Path) -> None:
    """Issue 23: after an install, NOTES say how to ask one worker for its verdicts and where the docs are."""
    text = notes(helm, notes_chart, files=[CHART / "ci" / "10-connectors-values.yaml"])
    assert ("kubectl --namespace team-a exec deploy/rel-kafka-connect -c connect-health -- connect-health check\n"
            in text)
    assert "Docs: https://connect-health.github.io/kafka-connect-health/\n" in text
    assert "runbooks: https://connect-health.github.io/kafka-connect-health/runbooks/" in text
    # The docs of a mirrored site (the value alerts' runbook_url uses), with or without its trailing slash.
    for base in ("https://docs.internal/connect", "https://docs.internal/connect/"):
        text = notes(helm, notes_chart, {"metrics": {"prometheusRule": {"runbookBaseUrl": base}}},
                     files=[CHART / "ci" / "01-minimal-values.yaml"])
        assert "Docs: https://docs.internal/connect/\n" in text


def test_notes_without_sidecar(helm: str, notes_chart: Path) -> None:
    text = notes(helm, notes_chart, {"bootstrapServers": "k:9092", "healthcheck": {"enabled": False}})
    assert "/status" not in text and "connect-health check" not in text
    assert "the probes call Connect's /health on port 8083" in text
    assert "Docs: https://connect-health.github.io/kafka-connect-health/" in text


def test_notes_name_the_apply_job_as_it_is_really_named_for_long_release_names(helm: str, notes_chart: Path) -> None:
    release = "orders-connect-cluster-in-eu-west-1-prod"  # fullname + "-connectors-apply" is 71 characters
    objects = render_chart(
        {"connectors": {"c": {"config": {"connector.class": "org.example.Sink"}}}},
        values_files=[CHART / "ci" / "01-minimal-values.yaml"],
        helm=helm,
        chart=notes_chart,
        release=release,
        show_only=["templates/zz-notes-under-test.yaml", "templates/connectors-apply-job.yaml"],
    )
    job = one(objects, "Job")["metadata"]["name"]
    # Too long for 63 characters: cut, with a short hash, keeping its role at the end (issue 19).
    assert len(job) <= 63 and job.startswith(release[:30]) and job.endswith("-connectors-apply")
    text = one(objects, "ConfigMap")["data"]["notes"]
    assert f"Applied by the hook Job {job} after" in text
    assert f"logs job/{job}\n" in text


CONNECTOR = {"c": {"config": {"connector.class": "org.example.Sink"}}}
MINIMAL = [CHART / "ci" / "01-minimal-values.yaml"]


def test_notes_say_when_the_apply_job_runs(helm: str, notes_chart: Path) -> None:
    """Issue 20: the Job is a post-install/upgrade/rollback hook and Argo CD's PostSync; drift is only reported."""
    text = notes(helm, notes_chart, {"connectors": CONNECTOR}, files=MINIMAL)
    assert "after each install, upgrade and rollback (Argo CD: after each sync)" in text
    assert "drift is reported on /status, not corrected (connectorsReconcile.enabled)" in text
    assert "reconcile" not in text.replace("connectorsReconcile", "")


def test_notes_with_drift_correction_beside_the_job(helm: str, notes_chart: Path) -> None:
    text = notes(helm, notes_chart, {"connectors": CONNECTOR, "connectorsReconcile": {"enabled": True}}, files=MINIMAL)
    assert "Applied by the hook Job rel-kafka-connect-connectors-apply after each install" in text
    assert "Drift corrected by the sidecar holding the Lease rel-kafka-connect-reconcile" in text
    assert "not corrected" not in text


def test_notes_in_no_hooks_mode(helm: str, notes_chart: Path) -> None:
    """connectorsApply.enabled false + connectorsReconcile: no Job; the Lease holder applies the declarations."""
    text = notes(helm, notes_chart, {"connectors": CONNECTOR, "connectorsApply": {"enabled": False},
                                     "connectorsReconcile": {"enabled": True}}, files=MINIMAL)
    assert "job/" not in text and "hook Job" not in text
    assert "No hook: the sidecar holding the Lease rel-kafka-connect-reconcile applies them" in text
    assert "kubectl --namespace team-a get lease rel-kafka-connect-reconcile" in text


def test_notes_when_nothing_applies_the_connectors(helm: str, notes_chart: Path) -> None:
    text = notes(helm, notes_chart, {"connectors": CONNECTOR, "connectorsApply": {"enabled": False}}, files=MINIMAL)
    assert "job/" not in text
    assert "Not applied by the chart (connectorsApply and connectorsReconcile are off)" in text


def test_notes_with_autoscaling_name_the_hpa_not_replica_count(helm: str, notes_chart: Path) -> None:
    """With autoscaling the Deployment renders no replicas: NOTES must not claim replicaCount workers."""
    values = {"replicaCount": 7, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
              "resources": {"requests": {"cpu": "1"}}, "healthcheck": {"resources": {"requests": {"cpu": "50m"}}}}
    text = notes(helm, notes_chart, values, files=MINIMAL)
    assert "(2-5 workers, autoscaled by the HPA rel-kafka-connect" in text
    assert "7 worker" not in text
