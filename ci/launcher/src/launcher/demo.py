"""`make demo`: a real Kafka broker, a Connect worker and connect-health on 127.0.0.1, with a failure to cause.

    python -m launcher.demo up [--workdir DIR] [--broker-port N] [--controller-port N] [--rest-port N]
                               [--sidecar-port N] [--prometheus-port N]
    python -m launcher.demo break [--workdir DIR]   the sink's output directory disappears and its task fails
    python -m launcher.demo heal [--workdir DIR]    the directory comes back; the ladder (or a restart) revives it
    python -m launcher.demo stall [--workdir DIR]   a sink's output stops draining: stalled, restarted, recovered
    python -m launcher.demo misconfig [--workdir DIR]  the sink gets a converter that cannot read its records: a
                                                    failure that needs a person (class data), one restart, no 503
    python -m launcher.demo stop [--workdir DIR]    stop a demo running in another terminal (same as Ctrl-C there)

`up` runs in the foreground: the launcher's Stack with its Sidecar (the venv's `connect-health serve`) added; the
connectors are examples/demo-connectors.yaml, created by `connect-health apply`. A real Prometheus (built by `make
tools`; left out, with a line saying so, when it is not) scrapes the sidecar with the chart's own alerting rules
loaded (their `for:` shortened to ALERT_FOR), and the terminal prints each change of its alerts. Ports default to
9092 (broker), 8083 (Connect REST), 8090 (connect-health) and 9090 (Prometheus), the controller gets a free one;
each has an environment twin (DEMO_BROKER_PORT, DEMO_CONTROLLER_PORT, DEMO_REST_PORT, DEMO_SIDECAR_PORT,
DEMO_PROMETHEUS_PORT; 0 = any free port):
`make demo DEMO_REST_PORT=18083`. State (pids, ports, logs, files) lives in .tools/demo/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import demo_misconfig, demo_stall
from .cli import report
from .errors import MissingTool, PortInUse, StackError
from .fetch import require_fetched
from .net import Port, http, listening, require_free, wait_until
from .pins import KAFKA_VERSION, ROOT, TOOLS, rel
from .process import foreground
from .progress import Progress
from .prometheus import Prometheus, ScrapeTarget, fullname, render_chart_rules
from .service import Service, supervise
from .sidecar import Sidecar, sidecar_env
from .stack import Stack
from .state import StateWriter, down, load_state, state_ports, up_alive
from .tools import require_java

PROG = "demo"
DEFAULT_WORKDIR = TOOLS / "demo"
CONNECTORS_FILE = ROOT / "examples" / "demo-connectors.yaml"
# These match examples/demo-connectors.yaml (tests/e2e/test_demo.py checks that they do). FileStream paths there
# are relative to the worker's working directory, <workdir>/worker/.
SOURCE, SINK = "demo-source", "demo-sink"
INPUT_FILE = "input.txt"
OUTPUT_FILE = "output/lines.txt"
TOPIC = "demo-lines"
LINE_EVERY = 2.0  # seconds between the lines the demo appends to the source's input file

# Short timings so that the ladder plays out within a minute. Attempts start over after RESTART_RESET s of running
# cleanly (so a second demo-break soon after a heal shows the ladder again).
POLL_INTERVAL = 1
RESTART_ATTEMPTS = 3
RESTART_BACKOFF = 5
RESTART_RESET = 10
SIDECAR_FLAGS = ("--poll-interval", str(POLL_INTERVAL), "--restart-attempts", str(RESTART_ATTEMPTS),
                 "--restart-backoff", str(RESTART_BACKOFF), "--restart-reset", str(RESTART_RESET))
# The sidecar's ladder (connect_health.ladder) waits RESTART_BACKOFF * 2**(n-1) s after attempt n; after the last
# wait it gives up.
LADDER_WAITS = [RESTART_BACKOFF * 2 ** n for n in range(RESTART_ATTEMPTS)]
LADDER_GIVES_UP_AFTER = sum(LADDER_WAITS)
# Prometheus scrapes the sidecar as the chart's ServiceMonitor would for release RELEASE in NAMESPACE (the job is the
# Service, i.e. the release's fullname; namespace and pod added by its relabelling), so the chart's rules, which
# select on namespace and job, apply unchanged. Their pending periods are shortened for the demo.
RELEASE = NAMESPACE = "demo"
JOB = fullname(RELEASE)
ALERT_FOR = "10s"
RULE_VALUES = {f"metrics.prometheusRule.alerts.{a}.for": ALERT_FOR
               for a in ("connectorFailed", "connectorNeedsAction", "workerUnreachable", "restartRate", "taskStalled")}


def _seconds(values: Sequence[int]) -> str:
    """[5, 10, 20] -> '5, 10 and 20'."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


class PortSpec(NamedTuple):
    attr: str
    flag: str
    env: str
    default: int
    what: str


PORTS = (
    PortSpec("broker_port", "--broker-port", "DEMO_BROKER_PORT", 9092, "the Kafka broker"),
    PortSpec("controller_port", "--controller-port", "DEMO_CONTROLLER_PORT", 0, "the KRaft controller"),
    PortSpec("rest_port", "--rest-port", "DEMO_REST_PORT", 8083, "the Connect REST API"),
    PortSpec("sidecar_port", "--sidecar-port", "DEMO_SIDECAR_PORT", 8090, "connect-health"),
    PortSpec("prometheus_port", "--prometheus-port", "DEMO_PROMETHEUS_PORT", 9090, "Prometheus"),
)


class DemoError(Exception):
    """Ends the command with `demo: <first line>` (and any detail lines after it); never a traceback."""


def _port_in_use(e: PortInUse) -> DemoError:
    """The launcher's PortInUse, told in the demo's words: which make variable moves that port."""
    spec = next((p for p in PORTS if p.flag == e.flag), None)
    what, knob = (spec.what, f"make demo {spec.env}=<port> (0 = any free port), or {spec.flag} N") if spec else \
        (e.what, e.flag)
    return DemoError(f"port {e.port} on 127.0.0.1 ({what}) is in use: stop what listens there "
                     f"(ss -ltnp 'sport = :{e.port}'; a demo of yours stops with `make demo-stop`) or choose another "
                     f"port: {knob}")


# ------------------------------------------------------------------------------------------------- progress

class Stages:
    """Progress lines with the elapsed time; while a stage takes long, a line every 5 s says it still runs."""

    def __init__(self, t0: float, prefix: str = PROG, tick: float = 5.0) -> None:
        self.progress = Progress(prefix, t0)
        self.tick = tick
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._hint = ""
        self._since = self._last = 0.0
        self.services: list[Service] = []  # whose "starting ..." lines (from the Stack) open stages
        self.notes: dict[str, str] = {}  # service name -> what its stage line adds
        self._stop = threading.Event()
        threading.Thread(target=self._ticker, name="demo-progress", daemon=True).start()

    def stage(self, msg: str, hint: str = "") -> None:
        """A stage starts: printed now, and followed by 'still ...' lines until the next line."""
        with self._lock:
            self._stage, self._hint, self._since = msg, hint, time.monotonic()
            self._last = self._since
            self.progress(msg)

    def __call__(self, msg: str) -> None:
        """A plain line; it ends the current stage."""
        with self._lock:
            self._stage = None
            self.progress(msg)

    def stack_line(self, msg: str) -> None:
        """Progress callback of the Stack: its 'starting <service>' lines open stages."""
        svc = next((s for s in self.services if msg == f"starting {s.describe()}"), None)
        if svc is None:
            self(msg)
        else:
            self.stage(msg + self.notes.get(svc.name, ""), hint=f"log: {rel(svc.log)}")

    def close(self) -> None:
        self._stop.set()

    def _ticker(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stage and time.monotonic() - self._last >= self.tick:
                    self._last = time.monotonic()
                    what = self._stage[0].lower() + self._stage[1:]
                    hint = f"; {self._hint}" if self._hint else ""
                    self.progress(f"  ... still {what} ({time.monotonic() - self._since:.0f}s so far{hint})")


# --------------------------------------------------------------------------------------------------- up

def _running(workdir: Path) -> dict[str, Any]:
    """The state of the demo running from workdir, or DemoError saying how to start one."""
    state = load_state(workdir)
    if not state or not up_alive(state) or "demo" not in state:
        raise DemoError("no demo is running: start one with `make demo` (in another terminal)")
    if not state.get("ready"):
        raise DemoError("the demo is still starting: try again once `make demo` has printed its URLs")
    return state


def _ports(args: argparse.Namespace) -> dict[str, int]:
    ports = {p.attr: int(getattr(args, p.attr)) for p in PORTS}
    for p in PORTS:
        if ports[p.attr]:
            require_free(Port(ports[p.attr], p.what, p.flag))
    return ports


def _apply(executable: str, connect_url: str, out: Stages) -> None:
    cmd = [executable, "apply", "--connectors-file", str(CONNECTORS_FILE), "--connect-url", connect_url,
           "--wait", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, env=sidecar_env(), cwd=ROOT)
    lines: list[str] = []
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                out.progress(f"  apply: {line}")
    if proc.returncode != 0:
        raise DemoError(f"connect-health apply exited {proc.returncode}: {lines[-1] if lines else 'no output'}")


def _sidecar_status(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        status, body = http("GET", url + "/status?format=json", timeout=timeout)
    except OSError:
        return None
    return body if status == 200 and isinstance(body, dict) else None


def _rows(doc: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """'connector' or 'connector task N' -> (state, verdict, reason), from the sidecar's /status JSON; a failure's
    class and what to do follow the reason, as in `connect-health check`'s table."""
    out: dict[str, tuple[str, str, str]] = {}
    for c in doc.get("connectors", []):
        items = [(c["name"], c.get("connector") or {})]
        items += [(f"{c['name']} task {t.get('id')}", t) for t in c.get("tasks", [])]
        for key, item in items:
            reason = str(item.get("reason") or "")
            if item.get("class"):
                reason += f" | class {item['class']}: {item.get('hint') or ''}"
            out[key] = (str(item.get("state")), str(item.get("verdict")), reason)
    return out


def _all_ok(doc: dict[str, Any] | None, names: Sequence[str]) -> bool:
    if not doc:
        return False
    rows = _rows(doc)
    for name in names:
        mine = {k: v for k, v in rows.items() if k == name or k.startswith(name + " task ")}
        if len(mine) < 2 or any(v[1] != "ok" for v in mine.values()):
            return False
    return True


class Watcher:
    """Prints what the sidecar sees change (verdicts, restart ladder, /livez), so the terminal tells the story."""

    def __init__(self, url: str, out: Callable[[str], None]) -> None:
        self.url = url
        self.out = out
        self.rows: dict[str, tuple[str, str, str]] = {}
        self.livez: tuple[str, tuple[str, ...]] | None = None

    def poll(self, quiet: bool = False) -> None:
        doc = _sidecar_status(self.url)
        if doc is None:
            return
        rows = _rows(doc)
        for key, (state, verdict, reason) in rows.items():
            before = self.rows.get(key)
            if not quiet and (before is None or before[:2] != (state, verdict) or
                              (verdict == "restarting" and before[2] != reason)):
                self.out(f"{key}: {state}, verdict {verdict}" + (f" ({reason})" if verdict != "ok" else ""))
        self.rows = rows
        probe = doc.get("probes", {}).get("livez", {})
        livez = (str(probe.get("status")), tuple(probe.get("reasons") or ()))
        if not quiet and self.livez is not None and livez != self.livez:
            code = "200" if livez[0] == "ok" else "503"
            self.out(f"/livez now answers {code}" + (f": {'; '.join(livez[1])}" if livez[1] else ""))
        self.livez = livez


class AlertWatcher:
    """Prints each change of Prometheus's alerts (pending, firing, resolved), as /api/v1/alerts shows them."""

    def __init__(self, prom: Prometheus, out: Callable[[str], None]) -> None:
        self.prom = prom
        self.out = out
        self.states: dict[tuple[str, str], str] = {}

    def poll(self) -> None:
        try:
            alerts = self.prom.alerts()
        except (OSError, StackError):
            return
        now: dict[tuple[str, str], str] = {}
        for a in alerts:
            labels = a.get("labels", {})
            subject = ", ".join(f"{k}={labels[k]}" for k in ("connector", "pod") if k in labels)
            now[(str(labels.get("alertname")), subject)] = str(a.get("state"))
        for key in sorted(set(now) | set(self.states)):
            before, after = self.states.get(key), now.get(key, "resolved")
            if before != after and (before is not None or after != "resolved"):
                self.out(f"Prometheus: alert {key[0]}{{{key[1]}}} {after}"
                         + (f" (pending for {ALERT_FOR} first)" if after == "pending" else ""))
        self.states = now


def _prometheus(workdir: Path, sidecar: Sidecar, port: int | None, out: Stages) -> Prometheus | None:
    """The demo's Prometheus with the chart's rules, or None (said why) when `make tools` has not built it."""
    try:
        rules = render_chart_rules(workdir / "prometheus-rules" / "rules.yml", RELEASE, NAMESPACE, RULE_VALUES)
        target = ScrapeTarget(JOB, sidecar.url, {"namespace": NAMESPACE, "pod": f"{JOB}-0"})
        return Prometheus(workdir, [target], [rules], port=port)
    except MissingTool as e:
        out(f"no Prometheus in this demo: {e}")
        return None


def cmd_up(args: argparse.Namespace) -> int:
    try:
        return _up(args)
    except PortInUse as e:
        raise _port_in_use(e) from None


def _up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    workdir = Path(args.workdir).resolve()
    old = load_state(workdir)
    if up_alive(old):
        assert old is not None
        url = (old.get("demo") or {}).get("status_url", "")
        raise DemoError(f"a demo is already running from {rel(workdir)} (pid {old.get('up_pid')}"
                        + (f", status page {url}" if url else "") + "): use it, or stop it with `make demo-stop`")
    if old:
        down(workdir)  # the leftovers of a demo that was killed (normally none: they die with it)
    ports = _ports(args)
    require_java(args.kafka_version)
    require_fetched(args.kafka_version)
    for sub in ("broker", "worker", "sidecar", "prometheus"):  # a fresh cluster every time, as the launcher's `up` does
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)

    out = Stages(t0)
    stack = Stack(workdir, args.kafka_version, broker_port=ports["broker_port"] or None,
                  controller_port=ports["controller_port"] or None, rest_port=ports["rest_port"] or None,
                  progress=out.stack_line)
    agent = demo_stall.agent(out)  # the worker's JMX exporter, read by connect-health for stalled tasks
    stall_flags = demo_stall.sidecar_flags(agent[1]) if agent else []
    if agent:
        stack.worker.jvm_options.append(agent[0])
    sidecar = stack.add(Sidecar(workdir, stack.connect_url, [*SIDECAR_FLAGS, *stall_flags, "--connectors-file",
                                                             str(CONNECTORS_FILE)], port=ports["sidecar_port"] or None))
    prom = _prometheus(workdir, sidecar, ports["prometheus_port"] or None, out)
    if prom is not None:
        stack.add(prom)
    out.services = stack.services
    out.notes[sidecar.name] = (f" (polls every {POLL_INTERVAL}s; ladder: {RESTART_ATTEMPTS} restarts, "
                               f"{RESTART_BACKOFF}s backoff)")
    worker_dir = stack.worker.dir
    input_file, output_file = worker_dir / INPUT_FILE, worker_dir / OUTPUT_FILE
    demo = {"status_url": sidecar.url + "/status", "metrics_url": sidecar.url + "/metrics", "sidecar_url": sidecar.url,
            "connect_url": stack.connect_url, "bootstrap": stack.bootstrap, "worker_dir": str(worker_dir),
            "input": str(input_file), "output": str(output_file), "source": SOURCE, "sink": SINK, "topic": TOPIC,
            "connectors_file": str(CONNECTORS_FILE), "prometheus_url": prom.url if prom else None,
            "worker_metrics_url": agent[1] if agent else None}
    state = StateWriter(workdir, stack, {"demo": demo})
    lines_written = 0

    def write_line() -> None:
        nonlocal lines_written
        lines_written += 1
        with open(input_file, "a") as f:
            f.write(f"line {lines_written} written at {time.strftime('%H:%M:%S')}\n")

    def stage(msg: str) -> None:  # the state file after each stage, so that `demo stop` also stops a start that hangs
        out.stack_line(msg)
        state.save()

    stack.progress = stage
    state.save()
    try:
        with foreground():
            # The source reads input.txt from the worker's working directory; the sink writes into output/.
            output_file.parent.mkdir(parents=True, exist_ok=True)
            input_file.touch()
            stack.start()
            out.stage(f"applying connectors: connect-health apply --connectors-file {rel(CONNECTORS_FILE)}")
            _apply(sidecar.executable, stack.connect_url, out)
            write_line()
            for name in (SOURCE, SINK):
                stack.worker.wait_connector_state(name, "RUNNING", tasks=1, timeout=60)
            wait_until(lambda: _all_ok(_sidecar_status(sidecar.url), (SOURCE, SINK)), 30,
                       "connect-health to report both demo connectors ok", interval=0.3)
            state.save(ready=True)
            out(f"ready in {time.monotonic() - t0:.1f}s")
            print(_banner(demo, stack, sidecar, prom), flush=True)
            watcher = Watcher(sidecar.url, out)
            watcher.poll(quiet=True)
            alerts = AlertWatcher(prom, out) if prom else None
            next_line = time.monotonic() + LINE_EVERY

            def tick() -> None:  # a line for the source every LINE_EVERY s; what the sidecar sees, as it changes
                nonlocal next_line
                if time.monotonic() >= next_line:
                    write_line()
                    next_line += LINE_EVERY
                watcher.poll()
                if alerts:
                    alerts.poll()

            supervise(stack.services, tick, interval=0.5)
    finally:
        out("stopping " + ("Prometheus, " if prom else "") + "connect-health, the Connect worker and the broker")
        # Only the ports of what this process started (a port someone else took is not ours to report).
        ours = [p.number for svc in stack.services if svc.start_seconds is not None for p in svc.ports()]
        stack.stop()
        state.remove()
        busy = listening(ours)
        if busy:
            out(f"stopped, but something still listens on 127.0.0.1:{','.join(map(str, busy))} (ss -ltnp)")
        else:
            out("stopped; nothing left listening" + (f" on 127.0.0.1:{','.join(map(str, ours))}" if ours else ""))
        out.close()
    return 0


def _banner(demo: dict[str, Any], stack: Stack, sidecar: Sidecar, prom: Prometheus | None) -> str:
    s = sidecar.url
    ladder = f"{RESTART_ATTEMPTS} restarts {', '.join(map(str, LADDER_WAITS))} s apart"
    graph = ("" if prom is None else
             f"  Prometheus    {prom.url}/alerts   (the chart's alerts, `for:` {ALERT_FOR}; scrapes every 1 s)\n"
             f"  graph         {prom.url}/graph?g0.expr=connect_health_tasks&g0.tab=graph&g0.range_input=15m\n")
    return f"""
  status page   {demo['status_url']}   (refreshes itself every 2 s)
  metrics       {demo['metrics_url']}
{graph}  Connect REST  {stack.connect_url}   Kafka bootstrap {stack.bootstrap}
  data          {rel(demo['input'])} -> topic {TOPIC} -> {rel(demo['output'])} (a new line every {LINE_EVERY:g} s)
  logs          {rel(stack.broker.log)}, {rel(stack.worker.log)}, {rel(sidecar.log)}

Try, from another terminal:
  make demo-break    the sink's output directory disappears and its task fails: watch the page go yellow
                     (restarting: {ladder}), then red (failed) with /livez 503
                     {"and Prometheus's KafkaConnectConnectorFailed alert pending, then firing" if prom else ""}
  make demo-heal     the directory comes back; the next restart (or demo-heal's own) revives the sink, no line lost
                     {"(and the alert resolves)" if prom else ""}
  make demo-stall    a sink whose output stops draining stays RUNNING: connect-health calls it stalled after
                     {demo_stall.STALL_AFTER} s, restarts its task, and the row recovers once it drains again
  make demo-misconfig  the sink gets a converter that cannot read its records: class data on the page with what to
                     do, one restart only, /livez stays 200; `make demo-heal` re-applies the declared config
  make demo-stop     stop everything (or Ctrl-C here); nothing is left listening
  curl -i {s}/livez
  curl -s '{s}/status?format=json' | python3 -m json.tool
  curl -s {s}/metrics | grep connect_health_task_state
  curl -s '{stack.connect_url}/connectors?expand=status' | python3 -m json.tool
  .tools/venv/bin/connect-health check --connect-url {stack.connect_url}
  tail -f {rel(demo['output'])}

What happens now is printed below as the sidecar sees it.
"""


# ------------------------------------------------------------------------------------------ break / heal

def _task_state(connect_url: str, name: str) -> tuple[str | None, str]:
    """(state of task 0, first line of its trace) as Connect reports it."""
    try:
        status, body = http("GET", f"{connect_url}/connectors/{name}/status", timeout=5)
    except OSError:
        return None, ""
    tasks = body.get("tasks", []) if status == 200 and isinstance(body, dict) else []
    if not tasks:
        return None, ""
    trace = str(tasks[0].get("trace") or "")
    return tasks[0].get("state"), next((line for line in trace.splitlines() if line.strip()), "")


def cmd_break(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    state = _running(Path(args.workdir).resolve())
    d = state["demo"]
    connect = d["connect_url"]
    out_dir = Path(d["output"]).parent
    doc = _sidecar_status(d["sidecar_url"]) or {}
    attempts = next((c.get("restart_attempts") for c in doc.get("connectors", []) if c.get("name") == SINK), 0)
    if out_dir.exists():
        shutil.rmtree(out_dir)
        print(f"demo-break: removed {rel(out_dir)}/, where {SINK} writes {Path(d['output']).name}")
    else:
        print(f"demo-break: {rel(out_dir)}/ is already gone (`make demo-heal` brings it back)")
    # A running FileStreamSink keeps its file open; the loss shows when the task starts again (a rebalance, a
    # redeploy). Restart it now, as those would.
    status, body = http("POST", f"{connect}/connectors/{SINK}/tasks/0/restart", timeout=10)
    if status not in (200, 202, 204):
        raise DemoError(f"POST /connectors/{SINK}/tasks/0/restart answered {status}: {body}")
    print(f"demo-break: restarted {SINK} task 0 (POST {connect}/connectors/{SINK}/tasks/0/restart), as a "
          "rebalance would; it cannot open its file now")

    def failed() -> tuple[str | None, str] | None:
        st = _task_state(connect, SINK)
        return st if st[0] == "FAILED" else None

    found = wait_until(failed, 30, f"{SINK} task 0 to fail")
    print(f"demo-break: {SINK} task 0 is FAILED after {time.monotonic() - t0:.1f}s: {found[1]}")
    if attempts:
        print(f"  watch {d['status_url']}: the sink ran cleanly for less than {RESTART_RESET} s since its last "
              f"failure, so connect-health's ladder goes on from attempt {attempts}/{RESTART_ATTEMPTS} (it starts "
              f"over after {RESTART_RESET} s of running); once spent: 'failed' and {d['sidecar_url']}/livez 503.")
    else:
        print(f"  watch {d['status_url']}: 'restarting' while connect-health's ladder restarts it "
              f"({RESTART_ATTEMPTS} times, {_seconds(LADDER_WAITS)} s apart), then 'failed' and "
              f"{d['sidecar_url']}/livez 503 about {LADDER_GIVES_UP_AFTER} s from now.")
    if d.get("prometheus_url"):
        print(f"  Prometheus: KafkaConnectConnectorFailed goes pending once the ladder gives up, firing {ALERT_FOR} "
              f"later ({d['prometheus_url']}/alerts; the `make demo` terminal prints each change).")
    print("  `make demo-heal` brings the directory back.")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    state = _running(Path(args.workdir).resolve())
    d = state["demo"]
    connect, sidecar_url = d["connect_url"], d["sidecar_url"]
    out_dir = Path(d["output"]).parent
    reapplied = demo_misconfig.restore(d)  # demo-misconfig's converter: the declared config again
    if not reapplied and out_dir.exists() and _task_state(connect, SINK)[0] == "RUNNING":
        print(f"demo-heal: nothing to heal: {rel(out_dir)}/ exists and {SINK} is RUNNING")
        return 0
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        print(f"demo-heal: recreated {rel(out_dir)}/")
    restarted = False
    announced = reapplied  # a new config restarts the task itself: no ladder attempt to announce

    def healed() -> bool:
        nonlocal restarted, announced
        task, _ = _task_state(connect, SINK)
        if task == "RUNNING":
            return True
        doc = _sidecar_status(sidecar_url) or {}
        sink: dict[str, Any] = next((c for c in doc.get("connectors", []) if c.get("name") == SINK), {})
        if task == "FAILED" and sink.get("failed_past_ladder") and not restarted:
            # In Kubernetes the kubelet would now restart the Connect container (liveness 503); here, restart
            # the failed task over REST, as an operator would.
            restarted = True
            status, body = http("POST", f"{connect}/connectors/{SINK}/restart?includeTasks=true&onlyFailed=true",
                                timeout=10)
            print(f"demo-heal: connect-health's ladder had given up (/livez 503); restarted {SINK} over REST "
                  f"(POST /connectors/{SINK}/restart?includeTasks=true&onlyFailed=true: {status})")
        elif not announced and not restarted:
            announced = True
            attempts = sink.get("restart_attempts")
            print(f"demo-heal: connect-health's restart ladder brings {SINK} back at its next attempt "
                  f"(attempts so far: {attempts}/{RESTART_ATTEMPTS})")
        return False

    wait_until(healed, 60, f"{SINK} to run again", interval=0.5)
    print(f"demo-heal: {SINK} task 0 is RUNNING again, {time.monotonic() - t0:.1f}s after the fix")
    wait_until(lambda: _all_ok(_sidecar_status(sidecar_url), (SINK,)), 15, "connect-health to see the sink running",
               interval=0.3)
    with contextlib.suppress(OSError):
        status, _ = http("GET", sidecar_url + "/livez", timeout=5)
        print(f"demo-heal: connect-health says ok; /livez answers {status}; the sink catches up from its committed "
              f"offset, so {rel(d['output'])} gets every line written while it was down")
    if d.get("prometheus_url"):
        print(f"demo-heal: Prometheus resolves KafkaConnectConnectorFailed at its next scrape and evaluation "
              f"({d['prometheus_url']}/alerts)")
    return 0


def cmd_stall(args: argparse.Namespace) -> int:
    return demo_stall.run(_running(Path(args.workdir).resolve())["demo"])


def cmd_misconfig(args: argparse.Namespace) -> int:
    return demo_misconfig.run(_running(Path(args.workdir).resolve())["demo"])


# --------------------------------------------------------------------------------------------------- stop

def cmd_stop(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    state = load_state(workdir)
    if state is None:
        print("demo-stop: no demo is running")
        return 0
    ports = state_ports(state)
    down(workdir, progress=Progress("demo-stop"))
    busy = listening(ports)
    if busy:
        raise DemoError(f"something still listens on 127.0.0.1:{','.join(map(str, busy))} (ss -ltnp)")
    print(f"demo-stop: stopped; nothing left listening on 127.0.0.1:{','.join(map(str, ports))}")
    return 0


# ---------------------------------------------------------------------------------------------------- main

def _port_default(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise DemoError(f"{env}={raw!r}: expected a TCP port number (0 = any free port)")
    return int(raw)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description="make demo: Kafka, a Connect worker and connect-health on "
                                 "127.0.0.1, with a failure to cause")
    sub = ap.add_subparsers(dest="cmd", required=True)
    try:
        for name, help_ in (("up", "run the demo in the foreground until Ctrl-C"),
                            ("break", "make the demo sink fail"), ("heal", "remove the cause of the failure"),
                            ("stall", "a sink whose output stops draining: stalled, restarted, recovered"),
                            ("misconfig", "give the demo sink a converter that cannot read its records"),
                            ("stop", "stop a demo running in another terminal")):
            p = sub.add_parser(name, help=help_)
            p.add_argument("--workdir", default=os.environ.get("DEMO_WORKDIR") or str(DEFAULT_WORKDIR),
                           help="where the demo's state, logs and files live (default .tools/demo)")
            if name == "up":
                p.add_argument("--kafka-version", default=KAFKA_VERSION)
                for spec in PORTS:
                    p.add_argument(spec.flag, dest=spec.attr, type=int, default=_port_default(spec.env, spec.default),
                                   help=f"port of {spec.what} (default {spec.default or 'any free one'}; env "
                                        f"{spec.env})")
        args = ap.parse_args(argv)
        commands = {"up": cmd_up, "break": cmd_break, "heal": cmd_heal, "stall": cmd_stall,
                    "misconfig": cmd_misconfig, "stop": cmd_stop}
        return commands[args.cmd](args)
    except (DemoError, StackError) as e:
        return report(PROG, e)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
