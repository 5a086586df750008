#!/usr/bin/env python3
"""`make demo`: a real Kafka broker, a Connect worker and connect-health on 127.0.0.1, with a failure to cause.

    python ci/demo.py up     [--workdir DIR] [--broker-port N] [--controller-port N] [--rest-port N] [--sidecar-port N]
    python ci/demo.py break  [--workdir DIR]   the sink's output directory disappears and its task fails
    python ci/demo.py heal   [--workdir DIR]   the directory comes back; the ladder (or a restart) revives the sink
    python ci/demo.py stop   [--workdir DIR]   stop a demo running in another terminal (same as Ctrl-C there)

`up` runs in the foreground. The broker and the worker are ci/localstack.py's Stack, the sidecar its Sidecar (the
venv's `connect-health serve`); the connectors are examples/demo-connectors.yaml, created by `connect-health apply`.
Ports default to 9092 (broker), 8083 (Connect REST) and 8090 (connect-health), the controller gets a free one;
each has an environment twin (DEMO_BROKER_PORT, DEMO_CONTROLLER_PORT, DEMO_REST_PORT, DEMO_SIDECAR_PORT; 0 = any
free port): `make demo DEMO_REST_PORT=18083`. State (pids, ports, logs, files) lives in .tools/demo/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import localstack  # noqa: E402
from localstack import StackError  # noqa: E402

ROOT = localstack.ROOT
DEFAULT_WORKDIR = ROOT / ".tools" / "demo"
CONNECTORS_FILE = ROOT / "examples" / "demo-connectors.yaml"
# These match examples/demo-connectors.yaml (tests/e2e/test_demo.py checks that they do). FileStream paths there
# are relative to the worker's working directory, <workdir>/worker/.
SOURCE, SINK = "demo-source", "demo-sink"
INPUT_FILE = "input.txt"
OUTPUT_FILE = "output/lines.txt"
TOPIC = "demo-lines"
LINE_EVERY = 2.0  # seconds between the lines the demo appends to the source's input file
# Short timings so that the ladder plays out within a minute: restarts after 0, 5 and 15 s, given up at 35 s.
# Attempts start over after 10 s of running cleanly (so a second demo-break soon after a heal shows the ladder again).
RESTART_RESET = 10
SIDECAR_FLAGS = ("--poll-interval", "1", "--restart-attempts", "3", "--restart-backoff", "5",
                 "--restart-reset", str(RESTART_RESET))
UP_MARKER = "demo.py"  # in the `up` process's command line: `demo.py stop` (localstack.down) recognises it by it

PORTS = (  # (attribute, flag, environment variable, default, what listens there)
    ("broker_port", "--broker-port", "DEMO_BROKER_PORT", 9092, "the Kafka broker"),
    ("controller_port", "--controller-port", "DEMO_CONTROLLER_PORT", 0, "the KRaft controller"),
    ("rest_port", "--rest-port", "DEMO_REST_PORT", 8083, "the Connect REST API"),
    ("sidecar_port", "--sidecar-port", "DEMO_SIDECAR_PORT", 8090, "connect-health"),
)


class DemoError(Exception):
    """Ends the command with `demo: <first line>` (and any detail lines after it); never a traceback."""


def _rel(p: Path | str) -> str:
    p = Path(p)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _now() -> float:
    return time.monotonic()


# ------------------------------------------------------------------------------------------------- progress

class Stages:
    """Progress lines with the elapsed time; while a stage takes long, a line every 5 s says it still runs."""

    def __init__(self, t0: float, prefix: str = "demo", tick: float = 5.0) -> None:
        self.progress = localstack.Progress(prefix)
        self.progress.t0 = t0
        self.tick = tick
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._hint = ""
        self._since = self._last = 0.0
        self.logs: dict[str, Path] = {}  # "broker"/"worker" -> its log, named in the 'still ...' lines
        self._stop = threading.Event()
        threading.Thread(target=self._ticker, name="demo-progress", daemon=True).start()

    def stage(self, msg: str, hint: str = "") -> None:
        """A stage starts: printed now, and followed by 'still ...' lines until the next line."""
        with self._lock:
            self._stage, self._hint, self._since = msg, hint, _now()
            self._last = self._since
            self.progress(msg)

    def __call__(self, msg: str) -> None:
        """A plain line; it ends the current stage."""
        with self._lock:
            self._stage = None
            self.progress(msg)

    def stack_line(self, msg: str) -> None:
        """Progress callback of localstack.Stack: its 'starting ...' lines open stages."""
        msg = msg.replace("worker worker", "worker")  # localstack names the (only) worker "worker"
        if msg.startswith("starting"):
            log = self.logs.get("worker" if "Connect worker" in msg else "broker")
            self.stage(msg, hint=f"log: {_rel(log)}" if log else "")
        else:
            self(msg)

    def close(self) -> None:
        self._stop.set()

    def _ticker(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stage and _now() - self._last >= self.tick:
                    self._last = _now()
                    what = self._stage[0].lower() + self._stage[1:]
                    hint = f"; {self._hint}" if self._hint else ""
                    self.progress(f"  ... still {what} ({_now() - self._since:.0f}s so far{hint})")


# ---------------------------------------------------------------------------------------------- state file

def _write_state(workdir: Path, state: dict[str, Any]) -> None:
    path = localstack.state_file(workdir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def _up_alive(state: dict[str, Any] | None) -> bool:
    return bool(state) and localstack._pid_matches(state.get("up_pid"), UP_MARKER)  # type: ignore[union-attr]


def _running(workdir: Path) -> dict[str, Any]:
    """The state of the demo running from workdir, or DemoError saying how to start one."""
    state = localstack.load_state(workdir)
    if not _up_alive(state) or not state or "demo" not in state:
        raise DemoError("no demo is running: start one with `make demo` (in another terminal)")
    if not state.get("ready"):
        raise DemoError("the demo is still starting: try again once `make demo` has printed its URLs")
    return state


def _worker_dir(state: dict[str, Any]) -> Path:
    return Path(state["demo"]["worker_dir"])


# --------------------------------------------------------------------------------------------------- up

def _ports(args: argparse.Namespace) -> dict[str, int]:
    ports = {attr: int(getattr(args, attr)) for attr, *_ in PORTS}
    for attr, flag, env, _default, what in PORTS:
        port = ports[attr]
        if port and not localstack.port_is_free(port):
            raise DemoError(f"port {port} on 127.0.0.1 ({what}) is in use: stop what listens there "
                            f"(ss -ltnp 'sport = :{port}'; a demo of yours stops with `make demo-stop`) or choose "
                            f"another port: make demo {env}=<port> (0 = any free port), or {flag} N")
    return ports


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_") and k != "POD_IP"}


def _apply(executable: str, connect_url: str, out: Stages) -> None:
    cmd = [executable, "apply", "--connectors-file", str(CONNECTORS_FILE), "--connect-url", connect_url,
           "--wait", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, env=_clean_env(), cwd=ROOT)
    lines: list[str] = []
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                out.progress(f"  apply: {line}")
    if proc.returncode != 0:
        raise DemoError(f"connect-health apply exited {proc.returncode}: "
                        f"{lines[-1] if lines else 'no output'}")


def _sidecar_status(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        status, body = localstack.http("GET", url + "/status?format=json", timeout=timeout)
    except OSError:
        return None
    return body if status == 200 and isinstance(body, dict) else None


def _rows(doc: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """'connector' or 'connector task N' -> (state, verdict, reason), from the sidecar's /status JSON."""
    out: dict[str, tuple[str, str, str]] = {}
    for c in doc.get("connectors", []):
        items = [(c["name"], c.get("connector") or {})]
        items += [(f"{c['name']} task {t.get('id')}", t) for t in c.get("tasks", [])]
        for key, item in items:
            out[key] = (str(item.get("state")), str(item.get("verdict")), str(item.get("reason") or ""))
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


def cmd_up(args: argparse.Namespace) -> int:
    t0 = _now()
    workdir = Path(args.workdir).resolve()
    old = localstack.load_state(workdir)
    if _up_alive(old):
        assert old is not None
        url = (old.get("demo") or {}).get("status_url", "")
        raise DemoError(f"a demo is already running from {_rel(workdir)} (pid {old.get('up_pid')}"
                        + (f", status page {url}" if url else "") + "): use it, or stop it with `make demo-stop`")
    if old:
        localstack.down(workdir)  # the leftovers of a demo that was killed (normally none: they die with it)
    ports = _ports(args)
    localstack.require_java(args.kafka_version)
    localstack.require_fetched(args.kafka_version)
    for sub in ("broker", "worker", "sidecar"):  # a fresh cluster every time, as localstack `up` does
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)

    out = Stages(t0)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: see localstack's `up`
        signal.signal(sig, on_signal)
    stack = localstack.Stack(workdir, args.kafka_version, broker_port=ports["broker_port"] or None,
                             controller_port=ports["controller_port"] or None,
                             rest_port=ports["rest_port"] or None, progress=out.stack_line)
    sidecar = localstack.Sidecar(workdir, stack.connect_url, [*SIDECAR_FLAGS, "--connectors-file",
                                                              str(CONNECTORS_FILE)], port=ports["sidecar_port"] or None)
    out.logs = {"broker": stack.broker.log, "worker": stack.worker.log}
    worker_dir = stack.worker.dir
    input_file, output_file = worker_dir / INPUT_FILE, worker_dir / OUTPUT_FILE
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    demo = {"status_url": sidecar.url + "/status", "metrics_url": sidecar.url + "/metrics", "sidecar_url": sidecar.url,
            "connect_url": stack.connect_url, "bootstrap": stack.bootstrap, "worker_dir": str(worker_dir),
            "input": str(input_file), "output": str(output_file), "source": SOURCE, "sink": SINK, "topic": TOPIC,
            "connectors_file": str(CONNECTORS_FILE)}

    def save(ready: bool) -> None:  # after each stage, so that `demo.py stop` also stops a start that hangs
        _write_state(workdir, {"up_pid": os.getpid(), "up_marker": UP_MARKER, "ready": ready,
                               "started_at": started_at, **stack.state(), "sidecars": [sidecar.state()],
                               "postgres": None, "demo": demo})

    lines_written = 0

    def write_line() -> None:
        nonlocal lines_written
        lines_written += 1
        with open(input_file, "a") as f:
            f.write(f"line {lines_written} written at {time.strftime('%H:%M:%S')}\n")

    save(False)
    try:
        # The source reads input.txt from the worker's working directory; the sink writes into output/.
        output_file.parent.mkdir(parents=True, exist_ok=True)
        input_file.touch()
        stack.start()
        save(False)
        out.stage(f"starting connect-health on {sidecar.url} (polls every 1s; ladder: 3 restarts, 5s backoff)",
                  hint=f"log: {_rel(sidecar.log)}")
        sidecar.start()
        out(f"connect-health ready in {sidecar.start_seconds:.1f}s")
        save(False)
        out.stage(f"applying connectors: connect-health apply --connectors-file {_rel(CONNECTORS_FILE)}")
        _apply(sidecar.executable, stack.connect_url, out)
        write_line()
        for name in (SOURCE, SINK):
            stack.worker.wait_connector_state(name, "RUNNING", tasks=1, timeout=60)
        localstack.wait_until(lambda: _all_ok(_sidecar_status(sidecar.url), (SOURCE, SINK)), 30,
                              "connect-health to report both demo connectors ok", interval=0.3)
        save(True)
        out(f"ready in {_now() - t0:.1f}s")
        print(_banner(demo, stack, sidecar), flush=True)
        watcher = Watcher(sidecar.url, out)
        watcher.poll(quiet=True)
        next_line = _now() + LINE_EVERY
        while True:
            for svc in (stack.broker, stack.worker, sidecar):
                if not svc.alive():
                    raise DemoError(f"{svc.name} exited unexpectedly; last lines of {_rel(svc.log)}:\n"
                                    f"{svc.log_tail(15)}")
            if _now() >= next_line:
                write_line()
                next_line += LINE_EVERY
            watcher.poll()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except localstack.PortInUse as e:  # taken between our check and the start: the same line, with make's knob
        env = next((env for _a, flag, env, *_ in PORTS if flag in str(e)), "DEMO_<NAME>_PORT")
        raise DemoError(f"{str(e).split(' or choose')[0]} or choose another port: make demo {env}=<port> "
                        "(0 = any free port)") from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        out("stopping connect-health, the Connect worker and the broker")
        # Only the ports of what this process started (a port someone else took is not ours to report).
        ours = [*(stack.ports()[:2] if stack.broker.start_seconds is not None else []),
                *([stack.worker.rest_port] if stack.worker.start_seconds is not None else []),
                *([sidecar.port] if sidecar.start_seconds is not None else [])]
        sidecar.stop()
        stack.stop()
        localstack.state_file(workdir).unlink(missing_ok=True)
        busy = [p for p in ours if localstack.is_listening(p)]
        if busy:
            out(f"stopped, but something still listens on 127.0.0.1:{','.join(map(str, busy))} (ss -ltnp)")
        else:
            out("stopped; nothing left listening" + (f" on 127.0.0.1:{','.join(map(str, ours))}" if ours else ""))
        out.close()
    return 0


def _banner(demo: dict[str, Any], stack: localstack.Stack, sidecar: localstack.Sidecar) -> str:
    s = sidecar.url
    return f"""
  status page   {demo['status_url']}   (refreshes itself every 2 s)
  metrics       {demo['metrics_url']}
  Connect REST  {stack.connect_url}   Kafka bootstrap {stack.bootstrap}
  data          {_rel(demo['input'])} -> topic {TOPIC} -> {_rel(demo['output'])} (a new line every {LINE_EVERY:g} s)
  logs          {_rel(stack.broker.log)}, {_rel(stack.worker.log)}, {_rel(sidecar.log)}

Try, from another terminal:
  make demo-break    the sink's output directory disappears and its task fails: watch the page go yellow
                     (restarting: 3 restarts 5, 10, 20 s apart), then red (failed) with /livez 503
  make demo-heal     the directory comes back; the next restart (or demo-heal's own) revives the sink, no line lost
  make demo-stop     stop everything (or Ctrl-C here); nothing is left listening
  curl -i {s}/livez
  curl -s '{s}/status?format=json' | python3 -m json.tool
  curl -s {s}/metrics | grep connect_health_task_state
  curl -s '{stack.connect_url}/connectors?expand=status' | python3 -m json.tool
  .tools/venv/bin/connect-health check --connect-url {stack.connect_url}
  tail -f {_rel(demo['output'])}

What happens now is printed below as the sidecar sees it.
"""


# ------------------------------------------------------------------------------------------ break / heal

def _task_state(connect_url: str, name: str) -> tuple[str | None, str]:
    """(state of task 0, first line of its trace) as Connect reports it."""
    try:
        status, body = localstack.http("GET", f"{connect_url}/connectors/{name}/status", timeout=5)
    except OSError:
        return None, ""
    tasks = body.get("tasks", []) if status == 200 and isinstance(body, dict) else []
    if not tasks:
        return None, ""
    trace = str(tasks[0].get("trace") or "")
    return tasks[0].get("state"), next((line for line in trace.splitlines() if line.strip()), "")


def cmd_break(args: argparse.Namespace) -> int:
    t0 = _now()
    state = _running(Path(args.workdir).resolve())
    d = state["demo"]
    connect = d["connect_url"]
    out_dir = Path(d["output"]).parent
    doc = _sidecar_status(d["sidecar_url"]) or {}
    attempts = next((c.get("restart_attempts") for c in doc.get("connectors", []) if c.get("name") == SINK), 0)
    if out_dir.exists():
        shutil.rmtree(out_dir)
        print(f"demo-break: removed {_rel(out_dir)}/, where {SINK} writes {Path(d['output']).name}")
    else:
        print(f"demo-break: {_rel(out_dir)}/ is already gone (`make demo-heal` brings it back)")
    # A running FileStreamSink keeps its file open; the loss shows when the task starts again (a rebalance, a
    # redeploy). Restart it now, as those would.
    status, body = localstack.http("POST", f"{connect}/connectors/{SINK}/tasks/0/restart", timeout=10)
    if status not in (200, 202, 204):
        raise DemoError(f"POST /connectors/{SINK}/tasks/0/restart answered {status}: {body}")
    print(f"demo-break: restarted {SINK} task 0 (POST {connect}/connectors/{SINK}/tasks/0/restart), as a "
          "rebalance would; it cannot open its file now")
    found = localstack.wait_until(lambda: (lambda st: st if st[0] == "FAILED" else None)(_task_state(connect, SINK)),
                                  30, f"{SINK} task 0 to fail")
    print(f"demo-break: {SINK} task 0 is FAILED after {_now() - t0:.1f}s: {found[1]}")
    if attempts:
        print(f"  watch {d['status_url']}: the sink ran cleanly for less than {RESTART_RESET} s since its last "
              f"failure, so connect-health's ladder goes on from attempt {attempts}/3 (it starts over after "
              f"{RESTART_RESET} s of running); "
              f"once spent: 'failed' and {d['sidecar_url']}/livez 503.")
    else:
        print(f"  watch {d['status_url']}: 'restarting' while connect-health's ladder restarts it (3 times, 5, 10 "
              f"and 20 s apart), then 'failed' and {d['sidecar_url']}/livez 503 about 35 s from now.")
    print("  `make demo-heal` brings the directory back.")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    t0 = _now()
    state = _running(Path(args.workdir).resolve())
    d = state["demo"]
    connect, sidecar_url = d["connect_url"], d["sidecar_url"]
    out_dir = Path(d["output"]).parent
    if out_dir.exists() and _task_state(connect, SINK)[0] == "RUNNING":
        print(f"demo-heal: nothing to heal: {_rel(out_dir)}/ exists and {SINK} is RUNNING")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"demo-heal: recreated {_rel(out_dir)}/")
    restarted = False
    announced = False

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
            status, body = localstack.http(
                "POST", f"{connect}/connectors/{SINK}/restart?includeTasks=true&onlyFailed=true", timeout=10)
            print(f"demo-heal: connect-health's ladder had given up (/livez 503); restarted {SINK} over REST "
                  f"(POST /connectors/{SINK}/restart?includeTasks=true&onlyFailed=true: {status})")
        elif not announced and not restarted:
            announced = True
            attempts = sink.get("restart_attempts")
            print(f"demo-heal: connect-health's restart ladder brings {SINK} back at its next attempt "
                  f"(attempts so far: {attempts}/3)")
        return False

    localstack.wait_until(healed, 60, f"{SINK} to run again", interval=0.5)
    print(f"demo-heal: {SINK} task 0 is RUNNING again, {_now() - t0:.1f}s after the directory came back")
    localstack.wait_until(lambda: _all_ok(_sidecar_status(sidecar_url), (SINK,)), 15,
                          "connect-health to see the sink running", interval=0.3)
    with contextlib.suppress(OSError):
        status, _ = localstack.http("GET", sidecar_url + "/livez", timeout=5)
        print(f"demo-heal: connect-health says ok; /livez answers {status}; the sink catches up from its committed "
              f"offset, so {_rel(d['output'])} gets every line written while it was down")
    return 0


# --------------------------------------------------------------------------------------------------- stop

def cmd_stop(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    state = localstack.load_state(workdir)
    if state is None:
        print("demo-stop: no demo is running")
        return 0
    ports = localstack.state_ports(state)
    localstack.down(workdir, progress=localstack.Progress("demo-stop"))
    busy = [p for p in ports if localstack.is_listening(p)]
    if busy:
        raise DemoError(f"something still listens on 127.0.0.1:{','.join(map(str, busy))} (ss -ltnp)")
    print(f"demo-stop: stopped; nothing left listening on 127.0.0.1:{','.join(map(str, ports))}")
    return 0


# ---------------------------------------------------------------------------------------------------- main

def _port_default(env: str, default: int) -> int:
    raw = os.environ.get(env, "")
    if not raw.strip():
        return default
    if not raw.strip().isdigit() or int(raw) > 65535:
        raise DemoError(f"{env}={raw!r}: expected a TCP port number (0 = any free port)")
    return int(raw)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    try:
        for name, help_ in (("up", "run the demo in the foreground until Ctrl-C"),
                            ("break", "make the demo sink fail"), ("heal", "remove the cause of the failure"),
                            ("stop", "stop a demo running in another terminal")):
            p = sub.add_parser(name, help=help_)
            p.add_argument("--workdir", default=os.environ.get("DEMO_WORKDIR") or str(DEFAULT_WORKDIR),
                           help="where the demo's state, logs and files live (default .tools/demo)")
            if name == "up":
                p.add_argument("--kafka-version", default=localstack.KAFKA_VERSION)
                for attr, flag, env, default, what in PORTS:
                    p.add_argument(flag, dest=attr, type=int, default=_port_default(env, default),
                                   help=f"port of {what} (default {default or 'any free one'}; env {env})")
        args = ap.parse_args(argv)
        return {"up": cmd_up, "break": cmd_break, "heal": cmd_heal, "stop": cmd_stop}[args.cmd](args)
    except (DemoError, StackError) as e:
        first, *rest = str(e).split("\n", 1)
        print(f"demo: {first}", file=sys.stderr)
        if rest:
            print(rest[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
