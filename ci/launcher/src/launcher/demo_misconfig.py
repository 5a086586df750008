"""`make demo-misconfig`: a break that needs a person, on the running `make demo` (issue 21).

    python -m launcher.demo misconfig [--workdir DIR]

The demo's sink is reconfigured by hand (a PUT of its config, as someone fixing "the wrong converter" would) with
a JsonConverter that expects schemas (`value.converter.schemas.enable=true`) while the topic holds plain text lines.
Its task fails on the first record with a conversion error, a failure no restart can fix: connect-health classifies
it `data`, sends one REST restart (to be sure), then stops, shows the class and what to do on /status, warns on
/readyz (`needs-action`) and leaves /livez at 200 although the sink is critical (no pod restart could help either).
The drift from examples/demo-connectors.yaml shows too. `make demo-heal` re-applies the declared connectors with
`connect-health apply`, which puts the declared converter back; the sink re-reads from its committed offset.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from .errors import StackError
from .net import http, wait_until
from .pins import ROOT, rel
from .sidecar import sidecar_env
from .tools import connect_health_executable

# Plain text lines read by a converter that wants JSON envelopes with a schema: DataException on every record.
MISCONFIG = {"value.converter": "org.apache.kafka.connect.json.JsonConverter",
             "value.converter.schemas.enable": "true"}


def _config(demo: dict[str, Any]) -> dict[str, str]:
    """The sink's config as the worker holds it."""
    status, body = http("GET", f"{demo['connect_url']}/connectors/{demo['sink']}/config", timeout=10)
    if status != 200 or not isinstance(body, dict):
        raise StackError(f"GET /connectors/{demo['sink']}/config answered {status}: {body}")
    return {str(k): str(v) for k, v in body.items()}


def misconfigured(config: dict[str, str]) -> bool:
    return all(config.get(k) == v for k, v in MISCONFIG.items())


def _entry(demo: dict[str, Any]) -> dict[str, Any]:
    try:
        status, body = http("GET", demo["sidecar_url"] + "/status?format=json", timeout=3)
    except OSError:
        return {}
    doc = body if status == 200 and isinstance(body, dict) else {}
    return next((c for c in doc.get("connectors", []) if c.get("name") == demo["sink"]), {})


def run(demo: dict[str, Any]) -> int:
    """The misconfiguration, told step by step; ``demo`` is the running demo's state (launcher.demo)."""
    sink, connect, sidecar = demo["sink"], demo["connect_url"], demo["sidecar_url"]
    # Right after demo-break and demo-heal the ladder still counts that failure's restarts (it starts over once the
    # sink has run cleanly for a while): wait for that, so that this failure gets its own one restart.
    if _entry(demo).get("restart_attempts"):
        print(f"demo-misconfig: waiting for connect-health's ladder of {sink} to start over after the last failure")
        wait_until(lambda: _entry(demo).get("restart_attempts") == 0, 60, f"{sink}'s restart ladder to start over",
                   interval=0.5)
    config = {**_config(demo), **MISCONFIG}
    status, body = http("PUT", f"{connect}/connectors/{sink}/config", config, timeout=30)
    if status not in (200, 201):
        raise StackError(f"PUT /connectors/{sink}/config answered {status}: {body}")
    t0 = time.monotonic()
    print(f"demo-misconfig: reconfigured {sink} by hand (PUT {connect}/connectors/{sink}/config): value.converter "
          f"JsonConverter with schemas.enable=true, while topic {demo['topic']} holds plain text lines")

    def classified() -> dict[str, Any] | None:
        e = _entry(demo)
        return e if e.get("needs_action") and e.get("failed_past_ladder") else None

    entry = wait_until(classified, 60, f"connect-health to classify {sink}'s failure past its one restart",
                       interval=0.5)
    task = (entry.get("tasks") or [{}])[0]
    trace = next((line for line in str(task.get("trace") or "").splitlines() if line.strip()), "")
    print(f"demo-misconfig: {sink} task 0 is {task.get('state')} after {time.monotonic() - t0:.1f}s: {trace}")
    print(f"demo-misconfig: connect-health says class {entry.get('class')}: {task.get('hint')}")
    print(f"demo-misconfig: it sent {entry.get('restart_attempts')} REST restart and no more (a restart cannot fix "
          "a record the converter cannot read); the sink is critical, yet no pod restart either:")
    code, _ = http("GET", sidecar + "/livez", timeout=5)
    print(f"  /livez answers {code}")
    code, answer = http("GET", sidecar + "/readyz", timeout=5)
    notes = [w for w in (answer.get("warnings", []) if isinstance(answer, dict) else []) if sink in w]
    print(f"  /readyz answers {code}" + (f"; warning: {notes[0]}" if notes else ""))
    print(f"  watch {demo['status_url']}?format=html: the row shows the class and what to do, and the drift from "
          f"{rel(demo['connectors_file'])}")
    if demo.get("prometheus_url"):
        print(f"  Prometheus: KafkaConnectConnectorNeedsAction goes pending, then fires ({demo['prometheus_url']}"
              "/alerts)")
    print("  `make demo-heal` re-applies the declared connectors (connect-health apply).")
    return 0


def restore(demo: dict[str, Any]) -> bool:
    """When the sink carries demo-misconfig's converter, re-apply the declared connectors with `connect-health
    apply` (printing its lines) and return True."""
    try:
        if not misconfigured(_config(demo)):
            return False
    except (OSError, StackError):
        return False  # the sink is gone or the worker does not answer: nothing of demo-misconfig's to undo
    cmd = [connect_health_executable(), "apply", "--connectors-file", demo["connectors_file"], "--connect-url",
           demo["connect_url"], "--wait", "60"]
    print(f"demo-heal: {demo['sink']}'s config differs from {rel(demo['connectors_file'])}: connect-health apply "
          f"--connectors-file {rel(demo['connectors_file'])}")
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=sidecar_env(), cwd=ROOT,
                          timeout=120)
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            print(f"  apply: {line}")
    if done.returncode != 0:
        raise StackError(f"connect-health apply exited {done.returncode}")
    return True
