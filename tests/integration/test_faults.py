"""The fast subset of `make faults` (bench/faults.py), on a real broker and Connect worker on 127.0.0.1: a sink
failing on this worker past the ladder; Connect stopped (``/startupz`` must not pass on the dead worker's last
answer) and started again with the cause still there (a new ladder, and no second pod restart for a connector a
restart did not fix); 200 half-sent requests and 50 MiB bodies while /livez is probed; and a poison connector
under an emulated sharedFate kubelet, with and without --state-file. The full run, with
kafka-connect-healthcheck beside it and the p99 target, writes bench/FAULTS.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import faults  # bench/faults.py (bench/ is on pytest's pythonpath)
import launcher
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_the_fast_faults_subset_on_a_real_stack(tmp_path: Path) -> None:
    rows = faults.run_cases(tmp_path, with_kchc=False, quick=True)
    by_case = {r.case.split(",")[0]: r for r in rows}
    assert len(rows) == 4, [r.case for r in rows]
    for row in rows:
        if row.kind == "hostile client":
            assert " 0 timeouts" in row.connect_health, row  # the p99 target is the benchmark's, not asserted here
        else:
            assert row.ch_ok, row
    assert "/startupz 503" in by_case["Connect stopped (container restarting)"].connect_health


@pytest.mark.parametrize("kafka_version", [launcher.KAFKA_VERSION], indirect=True, ids=lambda v: f"kafka-{v}")
def test_a_poison_connector_costs_one_pod_restart_when_the_memory_outlives_the_sidecar(
        worker: launcher.Worker, workdir: Path, connectors: Callable[[str, dict[str, Any]], None]) -> None:
    """Issue 18 item 4 on a real worker: with sharedFate the kubelet restarts the sidecar with Connect at each
    /livez failure. A connector failing for good (a FileStream sink writing under a missing folder) then costs one
    pod restart with --state-file (the second sidecar knows the first restart did not fix it), and a crash loop
    without it. Here only the sidecar is restarted (Connect's restart adds nothing the sidecar remembers; make
    faults restarts both); the kubelet is emulated by faults.kubelet_shared_fate."""
    name = "faults-poison-state-file"
    connectors(name, {"connector.class": faults.SINK, "tasks.max": "1", "topics": f"{name}-topic",
                      "file": str(workdir / "missing-dir" / "poison.txt")})
    kills = {}
    for with_state in (True, False):
        args = [*faults.POISON_ARGS, "--worker-id", worker.worker_id]
        if with_state:
            args += ["--state-file", str(workdir / "state.json")]
        sc = launcher.Sidecar(workdir, worker.url, args, name=f"poison-{with_state}")
        try:
            sc.start(timeout=60)
            kills[with_state] = faults.kubelet_shared_fate(worker, sc, 25, restart_connect=False)
        finally:
            sc.stop()
    assert len(kills[True]) == 1, f"pod restarts with the state file, at {kills[True]} s"
    assert len(kills[False]) >= 2, f"without it (the crash loop the file prevents), at {kills[False]} s"
