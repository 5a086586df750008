"""The launcher's command line: `python -m launcher` or `connect-health-stack` (both installed by `make venv`).

    python -m launcher fetch --kafka 4.3.1 --kafka 3.6.2 --debezium   # idempotent, cached under .tools/
    python -m launcher up [--version V] [--workdir DIR] [--broker-port N] [--rest-port N] [--debezium] [--postgres]
    python -m launcher down [--workdir DIR]
    python -m launcher status [--workdir DIR]

Errors are one line (plus a log tail when a process died), exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import StackError
from .fetch import fetch_debezium, fetch_kafka, require_fetched
from .net import listening
from .pins import DEBEZIUM_VERSION, DEFAULT_WORKDIR, KAFKA_VERSION
from .postgres import Postgres
from .process import foreground, pid_matches
from .progress import Progress
from .service import supervise
from .stack import Stack
from .state import StateWriter, down, load_state, recorded_processes, state_file, up_alive
from .tools import require_java

PROG = "launcher"


def cmd_fetch(args: argparse.Namespace) -> int:
    progress = Progress("fetch")
    require_java()
    for v in args.kafka or [KAFKA_VERSION]:
        t = time.monotonic()
        fetch_kafka(v, force=args.force, progress=progress)
        progress(f"kafka {v}: done in {time.monotonic() - t:.1f}s")
    if args.debezium:
        t = time.monotonic()
        fetch_debezium(args.debezium_version, force=args.force, progress=progress)
        progress(f"debezium-postgres: done in {time.monotonic() - t:.1f}s")
    progress("all fetched")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    old = load_state(workdir)
    if old and (up_alive(old) or any(pid_matches(p.pid, p.marker) for p in recorded_processes(old))):
        raise StackError(f"a stack is already running from {workdir} (see {state_file(workdir)}): "
                         f"run `python -m launcher down --workdir {workdir}` first")
    progress = Progress("up")
    require_java(args.version)
    require_fetched(args.version, debezium=args.debezium)
    # A fresh cluster each time: the previous run's broker data and worker files go.
    for sub in ("broker", "worker"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.version, broker_port=args.broker_port, controller_port=args.controller_port,
                  rest_port=args.rest_port, debezium=args.debezium, worker_props=args.worker_prop)
    pg = stack.add(Postgres(workdir, port=args.pg_port)) if args.postgres else None
    state = StateWriter(workdir, stack)

    def stage(msg: str) -> None:
        progress(msg)
        state.save()

    stack.progress = stage
    try:
        with foreground():
            stack.start()
            state.save(ready=True)
            progress(f"ready: bootstrap {stack.bootstrap}, Connect REST {stack.connect_url}"
                     + (f", PostgreSQL {pg.dsn}" if pg else ""))
            progress(f"logs: {stack.broker.log}, {stack.worker.log}; state: {state.path}")
            progress("Ctrl-C (or `python -m launcher down`) stops everything")
            supervise(stack.services)
    finally:
        progress("stopping")
        stack.stop()
        state.remove()
        progress("stopped (some port still answers)" if listening(stack.ports()) else "stopped; nothing left listening")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    down(args.workdir, progress=Progress("down"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = load_state(args.workdir)
    if state is None:
        print(f"no stack running from {Path(args.workdir).resolve()}")
        return 1
    alive = {p.name: pid_matches(p.pid, p.marker) for p in recorded_processes(state)}
    print(json.dumps({"alive": alive, **state}, indent=2))
    return 0 if all(alive.values()) else 1


def _prop(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    k, v = item.split("=", 1)
    return k.strip(), v.strip()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="The local stack: a KRaft Kafka broker, Kafka Connect "
                                 "workers and PostgreSQL on 127.0.0.1, from jars cached under .tools/.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="resolve Kafka jars (and the Debezium plugin) into .tools/ with Maven")
    f.add_argument("--kafka", action="append", metavar="VERSION", help=f"repeatable; default {KAFKA_VERSION}")
    f.add_argument("--debezium", action="store_true", help="also the Debezium PostgreSQL connector plugin")
    f.add_argument("--debezium-version", default=DEBEZIUM_VERSION)
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    u = sub.add_parser("up", help="run a broker and a Connect worker in the foreground until Ctrl-C")
    u.add_argument("--version", default=KAFKA_VERSION, help=f"Kafka version (default {KAFKA_VERSION})")
    u.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    u.add_argument("--broker-port", type=int, default=None, help="default: a free port")
    u.add_argument("--controller-port", type=int, default=None, help="default: a free port")
    u.add_argument("--rest-port", type=int, default=None, help="Connect REST port (default: a free port)")
    u.add_argument("--debezium", action="store_true", help="put the Debezium plugin on the worker's plugin.path")
    u.add_argument("--postgres", action="store_true", help="also start PostgreSQL (wal_level=logical)")
    u.add_argument("--pg-port", type=int, default=None)
    u.add_argument("--worker-prop", action="append", type=_prop, default=[], metavar="KEY=VALUE")
    d = sub.add_parser("down", help="stop the stack started by `up` (from its state file)")
    d.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    s = sub.add_parser("status", help="print the state file and which processes are alive")
    s.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    return ap


def report(prog: str, e: Exception) -> int:
    """The error's first line after `prog: `, then its detail (a log tail); exit code 1."""
    first, *rest = str(e).split("\n", 1)
    print(f"{prog}: {first}", file=sys.stderr)
    if rest:
        print(rest[0], file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "up":
        args.worker_prop = dict(args.worker_prop)
    commands = {"fetch": cmd_fetch, "up": cmd_up, "down": cmd_down, "status": cmd_status}
    try:
        return commands[args.cmd](args)
    except StackError as e:
        return report(PROG, e)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
