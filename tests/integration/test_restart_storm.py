"""A restart storm on a real worker (issue 18, item 1): slow restart answers are never a slow Connect.

20 FileStream sinks fail at once on the session's real worker (their file under a folder that does not exist: a
shared outage). The launcher's fault proxy stands between a `connect-health serve` and the worker and holds each
restart POST 6 s before forwarding it (a busy leader forwarding restarts), while the status calls pass at once.
The sidecar runs the chart's timings compressed: ``--request-timeout 2`` (the poll's deadline 3 x 2 = 6 s, so each
restart is a timed-out attempt the worker still receives), ``--unresponsive-after 10``, one restart per connector.
The connectors are best-effort (``--best-effort``): their failure is not a liveness matter here, so any /livez 503
is the sidecar judging Connect itself.

Before the restart lane the 20 restarts ran one after another inside the poll (2 s each), past its deadline, and
/livez said "Connect answers too slowly" while Connect answered every status call in milliseconds. The scenario
is bench/faults.py's restart storm (``faults.restart_storm``), which `make faults` also runs with 500
connectors.
"""

from __future__ import annotations

from pathlib import Path

import faults  # bench/faults.py (bench/ is on pytest's pythonpath)
import launcher
import pytest

COUNT = 20
ATTEMPTS = 1  # --restart-attempts of faults.STORM_ARGS


# The newest Kafka only: the restarts take 40 s of the lane (20 x --request-timeout), and a restart is the same
# KIP-745 call on every supported version (3.0+).
@pytest.mark.parametrize("kafka_version", [launcher.KAFKA_VERSION], indirect=True, ids=lambda v: f"kafka-{v}")
def test_twenty_slow_restarts_never_make_connect_look_unresponsive(worker: launcher.Worker, workdir: Path) -> None:
    assert faults.STORM_ARGS[faults.STORM_ARGS.index("--restart-attempts") + 1] == str(ATTEMPTS)
    storm = faults.restart_storm(worker, workdir, COUNT, sidecar_args=["--best-effort", "^storm-"], window=75)

    assert len(storm.livez.answers) >= 20, "the kubelet-like prober sampled /livez throughout"
    assert not storm.slow_verdicts(), f"/livez judged Connect not answering: {storm.slow_verdicts()[:3]}"
    assert set(storm.livez.answers) == {"200"}, f"/livez failed: {storm.livez.failures[:3]}"
    assert sorted(storm.reached) == storm.names, (
        f"restarts that reached the worker (its request log): {len(storm.reached)} of {COUNT} connectors")
    assert sorted(storm.sent) == storm.names, "the fault proxy saw every restart the worker logged"
    assert storm.total_sent() <= COUNT * ATTEMPTS, f"restart POSTs sent: {storm.sent}"
    assert sum(storm.reached.values()) <= COUNT * ATTEMPTS, f"restart POSTs received: {storm.reached}"
