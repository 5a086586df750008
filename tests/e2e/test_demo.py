"""`make demo` end to end: ci/demo.py as a user runs it (a subprocess, on free ports and its own workdir so that it
never meets a demo someone runs by hand), with its break/heal/stop commands, and nothing left listening after.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import launcher
import pytest
import yaml
from launcher import demo

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "launcher.demo"]


def listening(ports: list[int]) -> list[int]:
    """Which of these ports something listens on, according to ss (what a person would run)."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    local = {int(cols[3].rsplit(":", 1)[1]) for cols in (line.split() for line in out.splitlines()) if len(cols) > 3}
    return [p for p in ports if p in local]


def clean_env() -> dict[str, str]:
    """The demo as a person runs it: no DEMO_* ports of this shell, no sidecar settings (launcher.sidecar_env)."""
    return {k: v for k, v in launcher.sidecar_env().items() if not k.startswith("DEMO_")}


class Up:
    """`ci/demo.py up` in the background, its output collected line by line."""

    def __init__(self, workdir: Path, ports: dict[str, int]) -> None:
        self.workdir = workdir
        self.ports = ports
        cmd = [*DEMO, "up", "--workdir", str(workdir)]
        for attr, flag, *_ in demo.PORTS:
            cmd += [flag, str(ports[attr])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, cwd=ROOT, env=clean_env())
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((line for line in list(self.lines) if rx.search(line)), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"demo up exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"no {pattern!r} within {timeout:.0f}s; output so far:\n{self.output}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def ports() -> dict[str, int]:
    return {attr: launcher.free_port() for attr, *_ in demo.PORTS}


@pytest.fixture
def start_demo(workdir: Path, ports: dict[str, int]) -> Iterator[Any]:
    started: list[Up] = []

    def start() -> Up:
        up = Up(workdir, ports)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()
    launcher.down(workdir)  # whatever a failed test left behind


def run_demo(*args: str, workdir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args, "--workdir", str(workdir)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=clean_env())


def sidecar_status(port: int) -> dict[str, Any]:
    status, body = launcher.http("GET", f"http://127.0.0.1:{port}/status?format=json")
    assert status == 200 and isinstance(body, dict), (status, body)
    return body


def sink_task(port: int) -> dict[str, Any]:
    doc = sidecar_status(port)
    sink = next(c for c in doc["connectors"] if c["name"] == demo.SINK)
    return dict(sink["tasks"][0])


def sink_entry(port: int) -> dict[str, Any]:
    return dict(next(c for c in sidecar_status(port)["connectors"] if c["name"] == demo.SINK))


def rest_restarts(port: int, cls: str) -> float:
    """The sink's REST restarts of class ``cls`` that Connect accepted, as connect_health_restarts_total counts them."""
    status, text = launcher.http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and isinstance(text, str)
    wanted = (f'connector="{demo.SINK}"', 'kind="rest"', f'class="{cls}"', 'outcome="requested"')
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("connect_health_restarts_total{") and all(w in line for w in wanted))


def test_demo_constants_match_the_declared_connectors() -> None:
    declared = yaml.safe_load((ROOT / "examples" / "demo-connectors.yaml").read_text())
    assert set(declared) == {demo.SOURCE, demo.SINK}
    source, sink = declared[demo.SOURCE]["config"], declared[demo.SINK]["config"]
    assert source["connector.class"].endswith("FileStreamSourceConnector")
    assert sink["connector.class"].endswith("FileStreamSinkConnector")
    assert source["file"] == demo.INPUT_FILE and sink["file"] == demo.OUTPUT_FILE
    assert source["topic"] == sink["topics"] == demo.TOPIC


def test_demo_up_break_heal_then_ctrl_c_leaves_nothing_listening(start_demo: Any, ports: dict[str, int],
                                                                  workdir: Path) -> None:
    up = start_demo()
    up.wait_for(r"\] ready in [0-9.]+s$", 180)
    # Progress by stage, each with its elapsed time.
    for stage in ("starting Kafka", "starting Connect worker", "starting connect-health", "applying connectors",
                  "apply: created demo-sink"):
        assert re.search(rf"^\[demo +[0-9.]+s\] +{stage}", up.output, re.M), (stage, up.output)
    sidecar = ports["sidecar_port"]
    assert f"http://127.0.0.1:{sidecar}/status" in up.output and f"http://127.0.0.1:{sidecar}/metrics" in up.output
    for command in ("make demo-break", "make demo-heal", "make demo-misconfig", "make demo-stop", "curl "):
        assert command in up.output

    status, html = launcher.http("GET", f"http://127.0.0.1:{sidecar}/status", headers={"Accept": "text/html"})
    assert status == 200 and isinstance(html, str) and 'http-equiv="refresh"' in html
    for name in (demo.SOURCE, demo.SINK):
        assert re.search(rf'<tr class="ok" data-connector="{name}" data-task="0" data-state="RUNNING">', html), html
    status, metrics = launcher.http("GET", f"http://127.0.0.1:{sidecar}/metrics")
    assert status == 200 and 'connect_health_task_state{connector="demo-sink",state="RUNNING",task="0"} 1.0' \
        in metrics

    state = launcher.load_state(workdir)
    assert state is not None
    output_file = Path(state["demo"]["output"])
    launcher.wait_until(lambda: output_file.exists() and output_file.read_text(), 30, "the sink's first lines")

    # demo-break: the sink's task fails for real, and the sidecar's ladder takes it on.
    broke = run_demo("break", workdir=workdir)
    assert broke.returncode == 0, broke.stderr
    assert "Couldn't find or create file" in broke.stdout and not output_file.parent.exists()
    launcher.wait_until(lambda: sink_task(sidecar)["verdict"] in ("restarting", "failed"), 20,
                          "the sidecar to see the sink fail")
    assert sink_task(sidecar)["state"] == "FAILED"
    up.wait_for(r"demo-sink task 0: FAILED, verdict restarting \(.*restart ladder attempt 1/3", 20)
    time.sleep(2 * demo.LINE_EVERY)  # lines keep arriving in the topic while the sink is down

    # demo-heal: the directory comes back and the sink runs again; no line written meanwhile is lost.
    healed = run_demo("heal", workdir=workdir)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "RUNNING again" in healed.stdout
    assert sink_task(sidecar)["verdict"] == "ok"
    up.wait_for(r"demo-sink task 0: RUNNING, verdict ok", 20)
    input_file = Path(state["demo"]["input"])

    def caught_up() -> bool:
        return input_file.read_text().splitlines()[-1] in output_file.read_text().splitlines()

    launcher.wait_until(caught_up, 30, "the sink to catch up")
    numbers = [int(line.split()[1]) for line in output_file.read_text().splitlines()]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), numbers  # contiguous: nothing lost
    assert len(numbers) >= 2

    # demo-misconfig: a break that needs action (class data: plain text through a JsonConverter with schemas). One
    # REST restart, the class and its hint on the page, /livez stays 200 although the sink is critical.
    t0 = time.monotonic()
    broke = run_demo("misconfig", workdir=workdir)
    assert broke.returncode == 0, broke.stdout + broke.stderr
    print(broke.stdout)
    entry = sink_entry(sidecar)
    assert entry["class"] == "data" and entry["needs_action"] and entry["failed_past_ladder"], entry
    failed = entry["tasks"][0]
    assert failed["state"] == "FAILED" and failed["class"] == "data", failed
    assert "errors.tolerance=all" in failed["hint"] and "class data" in broke.stdout, broke.stdout
    status, body = launcher.http("GET", f"http://127.0.0.1:{sidecar}/livez")
    assert status == 200, body
    warnings = sidecar_status(sidecar)["probes"]["readyz"].get("warnings", [])
    assert any(w.startswith(f"needs-action: {demo.SINK} ") for w in warnings), warnings
    assert rest_restarts(sidecar, "data") == 1
    up.wait_for(r"demo-sink task 0: FAILED, verdict failed \(.*class data: ", 20)
    healed = run_demo("heal", workdir=workdir)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "connect-health apply" in healed.stdout and "RUNNING again" in healed.stdout, healed.stdout
    config = launcher.http("GET", f"http://127.0.0.1:{ports['rest_port']}/connectors/{demo.SINK}/config")[1]
    assert config["value.converter"] == "org.apache.kafka.connect.storage.StringConverter", config
    assert "value.converter.schemas.enable" not in config, config
    assert sink_task(sidecar)["verdict"] == "ok"
    launcher.wait_until(caught_up, 30, "the sink to catch up after the misconfiguration")
    seen = {int(line.split()[1]) for line in output_file.read_text().splitlines()}
    assert seen >= set(range(min(seen), max(seen) + 1)), "a line lost"
    print(f"demo-misconfig and its heal: {time.monotonic() - t0:.1f}s")

    # Ctrl-C: everything stops, nothing listens any more.
    all_ports = launcher.state_ports(state)
    assert sorted(all_ports) == sorted(ports.values())
    t0 = time.monotonic()
    up.stop()
    assert up.proc.returncode == 0, up.output
    assert "stopped; nothing left listening" in up.output
    assert time.monotonic() - t0 < 30
    assert listening(all_ports) == []
    assert launcher.load_state(workdir) is None
    for p in launcher.recorded_processes(state):
        assert not launcher.pid_matches(p.pid, p.marker), f"{p.name} (pid {p.pid}) still alive"


def test_demo_stop_from_another_terminal(start_demo: Any, ports: dict[str, int], workdir: Path) -> None:
    up = start_demo()
    up.wait_for(r"\] ready in [0-9.]+s$", 180)
    state = launcher.load_state(workdir)
    assert state is not None
    stopped = run_demo("stop", workdir=workdir)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "nothing left listening" in stopped.stdout
    up.proc.wait(30)
    assert up.proc.returncode == 0
    assert listening(launcher.state_ports(state)) == []
    assert launcher.load_state(workdir) is None
    # Once stopped, the other commands say there is nothing to act on, in one line.
    for command in ("break", "heal", "misconfig"):
        r = run_demo(command, workdir=workdir)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no demo is running" in r.stderr, r.stderr


def test_demo_port_in_use_is_one_line(ports: dict[str, int], workdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*DEMO, "up", "--workdir", str(workdir), "--rest-port", str(port),
                            "--sidecar-port", str(ports["sidecar_port"]), "--broker-port", str(ports["broker_port"])],
                           capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env())
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"port {port} on 127.0.0.1 (the Connect REST API) is in use" in r.stderr
    assert "DEMO_REST_PORT" in r.stderr
    assert listening([ports["broker_port"], ports["sidecar_port"]]) == []
