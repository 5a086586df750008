"""The fast subset of `make faults` (bench/faults.py), on a real broker and Connect worker on 127.0.0.1: a sink
failing on this worker past the ladder; Connect stopped (``/startupz`` must not pass on the dead worker's last
answer) and started again with the cause still there (a new ladder, and no second pod restart for a connector a
restart did not fix); 200 half-sent requests and 50 MiB bodies while /livez is probed. The full run, with
kafka-connect-healthcheck beside it and the p99 target, writes bench/FAULTS.md."""

from __future__ import annotations

from pathlib import Path

import faults  # bench/faults.py (bench/ is on pytest's pythonpath)
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
