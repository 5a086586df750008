#!/usr/bin/env python3
"""The local stack: a single-node KRaft Kafka broker, Kafka Connect distributed workers and PostgreSQL on 127.0.0.1.

One piece of code for the Makefile (``fetch``), the integration tests (``tests/integration/conftest.py``), the
demo (``ci/demo.py``) and the benchmarks. Standard library only (Python >= 3.11).

CLI::

    python ci/localstack.py fetch --kafka 4.3.1 --kafka 3.6.2 --debezium   # idempotent, cached under .tools/
    python ci/localstack.py up [--version V] [--workdir DIR] [--broker-port N] [--rest-port N] [--debezium] [--postgres]
    python ci/localstack.py down [--workdir DIR]
    python ci/localstack.py status [--workdir DIR]

Python API (import with ``sys.path.insert(0, "<repo>/ci")``; ``import localstack``)::

    with localstack.Stack(workdir, "4.3.1", debezium=True) as stack:
        stack.connect_url                     # http://127.0.0.1:<rest port>
        stack.worker.request("GET", "/connectors")
        stack.worker.pause_jvm(); stack.worker.resume_jvm()
    pg = localstack.Postgres(workdir).start(); pg.sql("select 1"); pg.stop()

Jars are cached under .tools/ (override with LOCALSTACK_TOOLS=DIR); logs of each process are in its workdir.
Every process is started in its own process group, is killed with its group by ``stop()``, by an atexit hook,
on SIGTERM/SIGHUP, and (through PR_SET_PDEATHSIG) when the Python process that started it dies.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import fcntl
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "ci"
TOOLS = Path(os.environ.get("LOCALSTACK_TOOLS", str(ROOT / ".tools"))).resolve()
LOG_CONFIG = CI / "log-config"
KAFKA_POM = CI / "maven" / "kafka.xml"
DEBEZIUM_POM = CI / "maven" / "debezium-postgres.xml"
DEFAULT_WORKDIR = TOOLS / "stack"
HOST = "127.0.0.1"

# Kafka < 4 ships log4j 1 (reload4j); the Maven file defaults to the log4j2 binding that 4.x uses.
LEGACY_LOG_BINDING = (
    "-Dlog.binding.groupId=org.slf4j",
    "-Dlog.binding.artifactId=slf4j-reload4j",
    "-Dlog.binding.version=1.7.36",
)

BROKER_HEAP = "512m"
WORKER_HEAP = "512m"
# C1 only and a small initial heap: a local broker/worker starts faster and nothing here is throughput-bound.
JVM_FLAGS = ("-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
             "-Djava.net.preferIPv4Stack=true", "-XX:-UsePerfData")

_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')


class StackError(Exception):
    """Anything that keeps the stack from running. str() is one line saying what to do (plus a log tail)."""


class PortInUse(StackError):
    pass


class MissingTool(StackError):
    pass


class NotFetched(StackError):
    pass


# ----------------------------------------------------------------------------------------------------- helpers

def pins(path: Path = CI / "versions.env") -> dict[str, str]:
    """The KEY=VALUE pins of ci/versions.env."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


PINS = pins()
KAFKA_VERSION = PINS["KAFKA_VERSION"]
KAFKA_LEGACY_VERSION = PINS["KAFKA_LEGACY_VERSION"]
DEBEZIUM_VERSION = PINS["DEBEZIUM_VERSION"]


def vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def has_health_endpoint(version: str) -> bool:
    """GET /health exists on Connect workers since 3.9 (KIP-1017)."""
    return vtuple(version) >= (3, 9)


def kafka_dir(version: str) -> Path:
    return TOOLS / "kafka" / version


def kafka_libs(version: str) -> Path:
    return kafka_dir(version) / "libs"


def plugins_root() -> Path:
    """The plugin.path entry whose sub-directories are Connect plugins (debezium-postgres/ ...)."""
    return TOOLS / "plugins"


def debezium_dir() -> Path:
    return plugins_root() / "debezium-postgres"


def _now() -> float:
    return time.monotonic()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (never one handed out before by this process)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise StackError("could not find a free TCP port on 127.0.0.1")


_HANDED_OUT: set[int] = set()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_free(port: int, what: str, flag: str) -> None:
    """Raise PortInUse, one line saying what to do, when something listens on 127.0.0.1:port."""
    if not port_is_free(port):
        raise PortInUse(f"port {port} on 127.0.0.1 ({what}) is in use: stop whatever listens there "
                        f"(ss -ltnp 'sport = :{port}') or choose another port ({flag})")


def _claim_port(port: int | None, what: str, flag: str) -> int:
    if port is None or port == 0:
        return free_port()
    require_free(port, what, flag)
    _HANDED_OUT.add(port)
    return port


def _wait_closed(ports: Sequence[int], timeout: float = 10.0) -> None:
    """Wait (bounded, never raises) until nothing listens on these ports any more."""
    with contextlib.suppress(StackError):
        wait_until(lambda: not any(is_listening(p) for p in ports), timeout, f"ports {list(ports)} to close")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    all_lines = data.splitlines()[-400:]
    # A JVM that died usually said why in its last ERROR: show from there, stack frames trimmed.
    errors = [i for i, line in enumerate(all_lines) if _ERROR_LINE.search(line)]
    if not errors:
        return "\n".join(all_lines[-lines:])
    out: list[str] = []
    frames = 0
    for line in all_lines[errors[-1]:]:
        frames = frames + 1 if line.startswith("\tat ") else 0
        if frames <= 3:
            out.append(line)
    return "\n".join(out[:lines])


_ERROR_LINE = re.compile(r"\] (ERROR|FATAL) |^Error: |^Exception in thread |FATAL:  ")


def http(method: str, url: str, body: Any = None, timeout: float = 10.0,
         headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """A small JSON HTTP client: (status, parsed JSON body or text or None). Raises OSError on no answer."""
    data = None
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
        e.close()
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# Local calls never go through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25,
               check: Callable[[], None] | None = None) -> Any:
    """Poll predicate until it returns a truthy value (returned). check() may raise to abort early."""
    deadline = _now() + timeout
    last_exc: BaseException | None = None
    while True:
        if check is not None:
            check()
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - any failure of the probe means "not yet"
            last_exc = e
        if _now() >= deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------ tools and fetching

def require_java(version: str | None = None) -> str:
    java = shutil.which("java")
    if not java:
        raise MissingTool("java not found: install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)")
    if version is not None and vtuple(version) >= (4,):
        major = java_major(java)
        if major is not None and major < 17:
            raise MissingTool(f"Kafka {version} needs Java 17 or newer, found Java {major} at {java}: "
                              "install openjdk-17-jdk-headless and put it first on PATH")
    return java


_JAVA_MAJOR: dict[str, int | None] = {}


def java_major(java: str) -> int | None:
    if java not in _JAVA_MAJOR:
        try:
            out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
            m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
            major = int(m.group(1)) if m else None
            if major == 1 and m and m.group(2):
                major = int(m.group(2))
        except (OSError, subprocess.TimeoutExpired):
            major = None
        _JAVA_MAJOR[java] = major
    return _JAVA_MAJOR[java]


def require_mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise MissingTool("mvn not found: install Maven (apt-get install -y maven), then run `make kafka` again")
    return mvn


def _sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _kafka_fetch_key(version: str) -> str:
    binding = LEGACY_LOG_BINDING if vtuple(version) < (4,) else ()
    return _sha(version, KAFKA_POM.read_bytes(), *binding)


def _debezium_fetch_key(version: str) -> str:
    return _sha(version, DEBEZIUM_POM.read_bytes())


def _stamp_ok(stamp: Path, key: str, must_exist: Iterable[Path]) -> bool:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return data.get("key") == key and all(p.exists() for p in must_exist)


def _kafka_required_jars(version: str, libs: Path) -> list[Path]:
    return [libs / f"kafka_2.13-{version}.jar", libs / f"connect-runtime-{version}.jar",
            libs / f"connect-file-{version}.jar", libs / f"kafka-clients-{version}.jar"]


def kafka_fetched(version: str) -> bool:
    libs = kafka_libs(version)
    return _stamp_ok(kafka_dir(version) / ".stamp", _kafka_fetch_key(version), _kafka_required_jars(version, libs))


def debezium_fetched(version: str = DEBEZIUM_VERSION) -> bool:
    d = debezium_dir()
    return _stamp_ok(d / ".stamp", _debezium_fetch_key(version),
                     [d / f"debezium-connector-postgres-{version}.jar"])


def require_fetched(version: str, debezium: bool = False) -> None:
    """Raise NotFetched (one line saying what to run) unless the jars are in the cache."""
    if not kafka_fetched(version):
        raise NotFetched(f"Kafka {version} jars are not in {kafka_libs(version)}: run `make kafka` "
                         f"(or python ci/localstack.py fetch --kafka {version})")
    if debezium and not debezium_fetched():
        raise NotFetched(f"the Debezium PostgreSQL plugin is not in {debezium_dir()}: run `make kafka` "
                         "(or python ci/localstack.py fetch --debezium)")


@contextlib.contextmanager
def _fetch_lock() -> Iterator[None]:
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / ".fetch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _mvn_copy(pom: Path, props: Sequence[str], dest: Path, log: Path, what: str, timeout: float = 1200,
              progress: Callable[[str], None] = lambda s: None, tick: float = 5.0) -> None:
    """Maven's dependency:copy-dependencies into dest; every `tick` seconds a progress line (never a silent wait)."""
    mvn = require_mvn()
    require_java()
    cmd = [mvn, "-B", "-ntp", "-Dstyle.color=never", "-f", str(pom), *props, "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={dest}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("$ " + " ".join(cmd) + "\n")
    # A _Proc, like the JVMs: an interrupted fetch never leaves Maven running on (writing into the next try).
    proc = _Proc("mvn", cmd, log, cwd=ROOT)
    t0 = _now()
    try:
        while True:
            try:
                rc = proc.popen.wait(timeout=max(0.1, min(tick, t0 + timeout - _now())))
                break
            except subprocess.TimeoutExpired:
                if _now() - t0 >= timeout:
                    raise
                jars = len(list(dest.glob("*.jar"))) if dest.is_dir() else 0
                progress(f"  ... still resolving {what} ({_now() - t0:.0f}s so far, {jars} jars copied; "
                         f"log: {_rel(log)})")
    except subprocess.TimeoutExpired:
        proc.stop(timeout=5)
        raise StackError(f"fetching {what} with Maven timed out after {timeout:.0f}s: check access to "
                         f"Maven Central and run `make kafka` again (log: {_rel(log)})") from None
    finally:
        proc.stop(timeout=5)
    if rc != 0:
        reason = ""
        generic = ("Some problems were encountered", "[Help", "To see the full", "Re-run Maven",
                   "For more information", "The build could not read", "The project ")
        for line in log.read_text(errors="replace").splitlines():
            m = re.match(r"\[(ERROR|FATAL)\]\s*(?:\[ERROR\]\s*)?(.*)", re.sub(r"\x1b\[[0-9;]*m", "", line))
            if m and m.group(2).strip() and not m.group(2).strip().startswith(generic):
                reason = m.group(2).strip()
                break
        reason = (reason[:220] + "...") if len(reason) > 220 else reason
        raise StackError(f"fetching {what} with Maven failed ({reason or f'exit {rc}'}): check access to Maven "
                         f"Central and run `make kafka` again (full log: {_rel(log)})")


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _install_dir(tmp: Path, final: Path, stamp: Path, key: str, what: str) -> int:
    jars = sorted(tmp.glob("*.jar"))
    if not jars:
        raise StackError(f"fetching {what}: Maven copied no jars into {tmp}; run `make kafka` again")
    stamp.unlink(missing_ok=True)
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    tmp_stamp = stamp.with_suffix(".tmp")
    tmp_stamp.write_text(json.dumps({"key": key, "what": what, "jars": len(jars),
                                     "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    os.replace(tmp_stamp, stamp)
    return len(jars)


def fetch_kafka(version: str, force: bool = False, progress: Callable[[str], None] = lambda s: None) -> Path:
    """Resolve Kafka <version>'s broker + Connect jars into .tools/kafka/<version>/libs (cached; stamp-checked)."""
    with _fetch_lock():
        libs = kafka_libs(version)
        if not force and kafka_fetched(version):
            progress(f"kafka {version}: cached in {_rel(libs)}")
            return libs
        progress(f"kafka {version}: resolving broker and Connect jars from Maven Central")
        tmp = TOOLS / "tmp" / f"kafka-{version}"
        if tmp.exists():
            shutil.rmtree(tmp)  # a half-finished earlier fetch
        props = [f"-Dkafka.version={version}", *(LEGACY_LOG_BINDING if vtuple(version) < (4,) else ())]
        _mvn_copy(KAFKA_POM, props, tmp, TOOLS / "logs" / f"fetch-kafka-{version}.log", f"Kafka {version}",
                  progress=progress)
        missing = [p.name for p in _kafka_required_jars(version, tmp) if not p.exists()]
        if missing:
            raise StackError(f"fetching Kafka {version}: Maven did not deliver {', '.join(missing)}; "
                             f"is {version} a released Kafka version? (check ci/versions.env)")
        n = _install_dir(tmp, libs, kafka_dir(version) / ".stamp", _kafka_fetch_key(version), f"kafka {version}")
        progress(f"kafka {version}: {n} jars in {_rel(libs)}")
        return libs


def fetch_debezium(version: str = DEBEZIUM_VERSION, force: bool = False,
                   progress: Callable[[str], None] = lambda s: None) -> Path:
    """Resolve the Debezium PostgreSQL connector plugin into .tools/plugins/debezium-postgres/."""
    with _fetch_lock():
        dest = debezium_dir()
        if not force and debezium_fetched(version):
            progress(f"debezium-postgres {version}: cached in {_rel(dest)}")
            return dest
        progress(f"debezium-postgres {version}: resolving the connector plugin from Maven Central")
        tmp = TOOLS / "tmp" / "debezium-postgres"
        if tmp.exists():
            shutil.rmtree(tmp)
        _mvn_copy(DEBEZIUM_POM, [f"-Ddebezium.version={version}"], tmp,
                  TOOLS / "logs" / "fetch-debezium-postgres.log", f"Debezium PostgreSQL connector {version}",
                  progress=progress)
        if not (tmp / f"debezium-connector-postgres-{version}.jar").exists():
            raise StackError(f"fetching Debezium {version}: the connector jar is missing; check DEBEZIUM_VERSION "
                             "in ci/versions.env")
        # The stamp lives inside the plugin dir: Connect only looks at jars there.
        n = _install_dir(tmp, dest, dest / ".stamp", _debezium_fetch_key(version), f"debezium-postgres {version}")
        progress(f"debezium-postgres {version}: {n} jars in {_rel(dest)}")
        return dest


# ------------------------------------------------------------------------------------------ process handling

_LIVE: set[_Proc] = set()
_LIVE_LOCK = threading.Lock()
_TEMP_DIRS: list[Path] = []
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that forked it dies (so no JVM outlives a crash)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; atexit and signal handlers remain
        pass


class _Proc:
    """One child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, cmd: Sequence[str], log: Path, cwd: Path, env: Mapping[str, str] | None = None,
                 user: str | None = None, stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.cmd = list(cmd)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")
        try:
            # PR_SET_PDEATHSIG fires when the forking *thread* ends: only ask for it from the main thread.
            main = threading.current_thread() is threading.main_thread()
            kwargs: dict[str, Any] = {}
            if user is not None:
                pw = pwd.getpwnam(user)
                kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            self.popen = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                env=dict(env) if env is not None else None, start_new_session=True,
                preexec_fn=_die_with_parent if main else None, **kwargs)
        finally:
            out.close()
        self.pid = self.popen.pid
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_signal_handlers()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig: int | None = None, timeout: float = 20.0) -> int | None:
        """Signal the group (default: its stop_signal), wait up to timeout, then SIGKILL it. Returns the exit code."""
        if self.alive():
            self.signal_group(self.stop_signal if sig is None else sig)
            self.signal_group(signal.SIGCONT)  # a SIGSTOPped process cannot handle the first signal
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.popen.returncode


def _cleanup_all() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        if p.alive():
            p.signal_group(p.stop_signal)
            p.signal_group(signal.SIGCONT)
    deadline = _now() + 10
    for p in procs:
        try:
            p.popen.wait(timeout=max(0.1, deadline - _now()))
        except subprocess.TimeoutExpired:
            p.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=5)
        with _LIVE_LOCK:
            _LIVE.discard(p)
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    _TEMP_DIRS.clear()


atexit.register(_cleanup_all)
_HANDLERS_INSTALLED = False


def _install_signal_handlers() -> None:
    """On SIGTERM/SIGHUP (whose default would skip atexit), stop our children, then die of the same signal."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _HANDLERS_INSTALLED = True

    def handler(signum: int, frame: Any) -> None:
        _cleanup_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, handler)


def _java_cmd(version: str, heap: str, log_config: str, main: str, args: Sequence[str],
              sysprops: Mapping[str, str] | None = None, classpath: Sequence[Path] | None = None) -> list[str]:
    java = require_java(version)
    require_fetched(version)
    libs = kafka_libs(version)
    if classpath is None:
        cp = str(libs / "*")
    else:
        cp = os.pathsep.join(str(p) for p in classpath)
    legacy = vtuple(version) < (4,)
    cfg = LOG_CONFIG / (f"{log_config}-log4j.properties" if legacy else f"{log_config}-log4j2.xml")
    logprop = f"-Dlog4j.configuration=file:{cfg}" if legacy else f"-Dlog4j2.configurationFile={cfg}"
    props = [f"-D{k}={v}" for k, v in (sysprops or {}).items()]
    return [java, "-Xms64m", f"-Xmx{heap}", *JVM_FLAGS, logprop, *props, "-cp", cp, main, *args]


def _write_props(path: Path, props: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={_props_escape(str(v))}" for k, v in props.items()]
    path.write_text("# written by ci/localstack.py\n" + "\n".join(lines) + "\n")


def _props_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _kafka_cluster_id() -> str:
    while True:  # Kafka's Uuid.randomUuid(): url-safe base64 of 16 random bytes, never starting with '-'
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


def _api_versions(port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers a Kafka ApiVersions request (it processes requests, not just accepts TCP)."""
    client_id = b"localstack"
    corr = 7
    body = struct.pack(">hhih", 18, 0, corr, len(client_id)) + client_id
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        resp = _recv_exact(s, min(size, 1 << 20))
    return len(resp) >= 6 and struct.unpack(">i", resp[:4])[0] == corr


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


class _Service:
    name = "service"
    proc: _Proc | None = None
    log: Path

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def _check_alive(self) -> None:
        if self.proc is not None and not self.proc.alive():
            rc = self.proc.popen.returncode
            raise StackError(f"{self.name} exited (code {rc}) during startup; last lines of {self.log}:\n"
                             f"{self.log_tail()}")

    def _startup_failed(self, e: StackError) -> StackError:
        msg = str(e)
        if "last lines of" not in msg:
            msg += f"; last lines of {self.log}:\n{self.log_tail()}"
        return StackError(f"{self.name}: {msg}")

    def pause_jvm(self) -> None:
        """SIGSTOP the process (group): it stops answering anything, like a hung JVM."""
        assert self.proc is not None, f"{self.name} is not running"
        self.proc.signal_group(signal.SIGSTOP)

    def resume_jvm(self) -> None:
        assert self.proc is not None, f"{self.name} is not running"
        self.proc.signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (a crash): no graceful shutdown."""
        if self.proc is not None:
            self.proc.stop(signal.SIGKILL, timeout=10)
            self.proc = None

    def __enter__(self) -> Any:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: Any) -> None:
        self.stop()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ Kafka broker

class Broker(_Service):
    """A single-node KRaft broker (combined broker + controller) on 127.0.0.1.

    Files live in <workdir>/<name>/: server.properties, data/, broker.log (stdout+stderr of the JVM).
    """

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, port: int | None = None,
                 controller_port: int | None = None, extra_props: Mapping[str, Any] | None = None,
                 heap: str = BROKER_HEAP, name: str = "broker") -> None:
        self.workdir = Path(workdir).resolve()
        self.version = version
        self.name = name
        self.dir = self.workdir / name
        self.port = _claim_port(port, "Kafka broker listener", "--broker-port")
        self.controller_port = _claim_port(controller_port, "Kafka controller listener", "--controller-port")
        self.extra_props = dict(extra_props or {})
        self.heap = heap
        self.log = self.dir / "broker.log"
        self.config = self.dir / "server.properties"
        self.data_dir = self.dir / "data"
        self.proc = None
        self.start_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "log.flush.interval.messages": 9223372036854775807,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.segment.bytes": 16 * 1024 * 1024,
        }
        if vtuple(self.version) >= (4,):
            props["share.coordinator.state.topic.replication.factor"] = 1
            props["share.coordinator.state.topic.min.isr"] = 1
        props.update(self.extra_props)
        return props

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return  # formatted by an earlier start: keep the data (restart)
        cmd = _java_cmd(self.version, "256m", "broker", "kafka.tools.StorageTool",
                        ["format", "-t", _kafka_cluster_id(), "-c", str(self.config), "--ignore-formatted"])
        with open(self.dir / "format.log", "wb") as out:
            try:
                r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   timeout=90, cwd=self.dir, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise StackError(f"formatting KRaft storage timed out; see {self.dir / 'format.log'}") from None
        if r.returncode != 0:
            raise StackError(f"formatting KRaft storage failed (exit {r.returncode}); last lines of "
                             f"{self.dir / 'format.log'}:\n{log_tail(self.dir / 'format.log')}")

    def start(self, timeout: float = 90.0) -> Broker:
        if self.alive():
            return self
        t0 = _now()
        require_free(self.port, "Kafka broker listener", "--broker-port")
        require_free(self.controller_port, "Kafka controller listener", "--controller-port")
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_props(self.config, self.properties())
        self._format()
        cmd = _java_cmd(self.version, self.heap, "broker", "kafka.Kafka", [str(self.config)])
        self.proc = _Proc(self.name, cmd, self.log, cwd=self.dir)
        try:
            self.wait_ready(timeout)
        except StackError as e:
            self.stop()
            raise self._startup_failed(e) from None
        self.start_seconds = _now() - t0
        return self

    def ready(self) -> bool:
        """The broker accepts connections and answers a Kafka ApiVersions request."""
        try:
            return _api_versions(self.port)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_until(self.ready, timeout, f"the broker to answer on {self.bootstrap}", check=self._check_alive)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=timeout)
            self.proc = None
        _wait_closed([self.port, self.controller_port])

    def restart(self, timeout: float = 90.0) -> Broker:
        self.stop()
        return self.start(timeout=timeout)

    def state(self) -> dict[str, Any]:
        return {"pid": self.pid, "version": self.version, "port": self.port, "controller_port": self.controller_port,
                "bootstrap": self.bootstrap, "log": str(self.log), "dir": str(self.dir)}


# -------------------------------------------------------------------------------------- Kafka Connect worker

class Worker(_Service):
    """A Kafka Connect distributed worker (ConnectDistributed) on 127.0.0.1.

    worker_id is 127.0.0.1:<rest_port>. Files live in <workdir>/<name>/: worker.properties, worker.log (all of
    the JVM's output) and requests.log (Jetty's request log lines only, extended NCSA + duration ms).
    Several workers with the same group_id form one Connect cluster (give each its own name).
    """

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, bootstrap: str = "",
                 rest_port: int | None = None, plugin_path: Sequence[str | os.PathLike[str]] = (),
                 extra_props: Mapping[str, Any] | None = None, group_id: str = "connect-local",
                 heap: str = WORKER_HEAP, name: str = "worker") -> None:
        if not bootstrap:
            raise ValueError("Worker needs bootstrap='127.0.0.1:<broker port>'")
        self.workdir = Path(workdir).resolve()
        self.version = version
        self.bootstrap = bootstrap
        self.name = name
        self.dir = self.workdir / name
        self.rest_port = _claim_port(rest_port, "Connect REST listener", "--rest-port")
        self.plugin_path = [Path(p).resolve() for p in plugin_path]
        self.extra_props = dict(extra_props or {})
        self.group_id = group_id
        self.heap = heap
        self.log = self.dir / "worker.log"
        self.request_log = self.dir / "requests.log"
        self.config = self.dir / "worker.properties"
        self.proc = None
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    @property
    def worker_id(self) -> str:
        return f"{HOST}:{self.rest_port}"

    def connect_file_jar(self) -> Path:
        return kafka_libs(self.version) / f"connect-file-{self.version}.jar"

    def properties(self) -> dict[str, Any]:
        g = self.group_id
        # The FileStream connectors are isolated plugins, as in Kafka's own distribution since 3.2: their jar is
        # kept off the worker's classpath and listed in plugin.path.
        paths = [self.connect_file_jar(), *self.plugin_path]
        props: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": g,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": f"{g}-configs",
            "offset.storage.topic": f"{g}-offsets",
            "status.storage.topic": f"{g}-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": 1,
            "status.storage.partitions": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://{HOST}:{self.rest_port}",
            "rest.advertised.host.name": HOST,
            "rest.advertised.port": self.rest_port,
            "rest.advertised.listener": "http",
            "plugin.path": ",".join(str(p) for p in paths),
            # A worker that left comes back quickly in tests; 5 min (the default) would stall them.
            "scheduled.rebalance.max.delay.ms": 10000,
            "task.shutdown.graceful.timeout.ms": 3000,
            "connector.client.config.override.policy": "All",
            # Every plugin here (connect-file, Debezium) ships ServiceLoader manifests: skip the slow reflective scan.
            "plugin.discovery": "service_load",
        }
        props.update(self.extra_props)
        return props

    def _classpath(self) -> list[Path]:
        libs = kafka_libs(self.version)
        return sorted(p for p in libs.glob("*.jar") if not p.name.startswith("connect-file-"))

    def start(self, timeout: float = 120.0) -> Worker:
        if self.alive():
            return self
        t0 = _now()
        require_free(self.rest_port, "Connect REST listener", "--rest-port")
        for p in self.plugin_path:
            if not p.exists():
                raise NotFetched(f"plugin path {p} does not exist: run `make kafka` "
                                 "(python ci/localstack.py fetch --debezium)")
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_props(self.config, self.properties())
        cmd = _java_cmd(self.version, self.heap, "worker", "org.apache.kafka.connect.cli.ConnectDistributed",
                        [str(self.config)], sysprops={"localstack.request.log": str(self.request_log)},
                        classpath=self._classpath())
        self.proc = _Proc(self.name, cmd, self.log, cwd=self.dir)
        try:
            self.wait_ready(timeout)
        except StackError as e:
            self.stop()
            raise self._startup_failed(e) from None
        self.start_seconds = _now() - t0
        return self

    def ready(self) -> bool:
        """GET /connectors answers 200 (and GET /health 200 on workers that have it)."""
        status, _ = http("GET", self.url + "/connectors", timeout=5)
        if status != 200:
            return False
        if has_health_endpoint(self.version):
            status, _ = http("GET", self.url + "/health", timeout=15)
            return status == 200
        return True

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_until(self.ready, timeout, f"the Connect worker at {self.url} to be ready", interval=0.5,
                   check=self._check_alive)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=timeout)
            self.proc = None
        _wait_closed([self.rest_port])

    def restart(self, timeout: float = 120.0) -> Worker:
        self.stop()
        return self.start(timeout=timeout)

    # -- REST helpers (stdlib; the sidecar and the tests may use requests instead) --

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        return http(method, self.url + path, body=body, timeout=timeout)

    def put_connector(self, name: str, config: Mapping[str, Any], timeout: float = 30.0) -> Any:
        """PUT /connectors/<name>/config, retrying 409 (rebalance in progress). Returns the answer body."""
        def attempt() -> Any:
            status, body = self.request("PUT", f"/connectors/{name}/config", dict(config))
            if status in (200, 201):
                return body or True
            if status == 409:
                return None
            raise StackError(f"PUT /connectors/{name}/config answered {status}: {body}")
        return wait_until(attempt, timeout, f"connector {name} to be accepted")

    def delete_connector(self, name: str, timeout: float = 30.0) -> None:
        def attempt() -> bool:
            status, body = self.request("DELETE", f"/connectors/{name}")
            if status in (204, 404):
                return True
            if status == 409:
                return False
            raise StackError(f"DELETE /connectors/{name} answered {status}: {body}")
        wait_until(attempt, timeout, f"connector {name} to be deleted")

    def connector_status(self, name: str) -> dict[str, Any] | None:
        status, body = self.request("GET", f"/connectors/{name}/status")
        return body if status == 200 and isinstance(body, dict) else None

    def wait_connector_state(self, name: str, state: str = "RUNNING", tasks: int | None = 1,
                             timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks (at least `tasks` of them) are in `state`."""
        def check() -> dict[str, Any] | None:
            st = self.connector_status(name)
            if not st or st.get("connector", {}).get("state") != state:
                return None
            ts = st.get("tasks", [])
            if tasks is not None and len(ts) < tasks:
                return None
            return st if all(t.get("state") == state for t in ts) else None
        try:
            result: dict[str, Any] = wait_until(check, timeout, f"connector {name} to be {state}", interval=0.5,
                                                check=self._check_alive)
            return result
        except StackError as e:
            raise StackError(f"{e}; last status: {self.connector_status(name)}") from None

    def plugins(self) -> list[str]:
        status, body = self.request("GET", "/connector-plugins", timeout=30)
        if status != 200 or not isinstance(body, list):
            raise StackError(f"GET /connector-plugins answered {status}: {body}")
        return [p.get("class", "") for p in body]

    # -- request log --

    def request_log_lines(self) -> list[str]:
        """Jetty's request log lines so far, e.g. '127.0.0.1 - - [..] "PUT /connectors/a/config HTTP/1.1" 201 ...'."""
        try:
            text = self.request_log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if _REQUEST_LINE.search(line)]

    def requests_matching(self, method: str, path_regex: str) -> list[str]:
        """Request log lines whose method is `method` and whose path (with query) fully matches path_regex."""
        rx = re.compile(path_regex)
        out = []
        for line in self.request_log_lines():
            m = _REQUEST_LINE.search(line)
            if m and m.group("method") == method and rx.fullmatch(m.group("path")):
                out.append(line)
        return out

    def wait_for_request(self, method: str, path_regex: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Jetty writes the request log after the answer: wait until `count` matching lines are there."""
        def enough() -> list[str] | None:
            lines = self.requests_matching(method, path_regex)
            return lines if len(lines) >= count else None
        result: list[str] = wait_until(enough, timeout, f"{count} request log line(s) {method} {path_regex}",
                                       interval=0.1)
        return result

    def state(self) -> dict[str, Any]:
        return {"pid": self.pid, "version": self.version, "rest_port": self.rest_port, "url": self.url,
                "worker_id": self.worker_id, "group_id": self.group_id, "log": str(self.log),
                "request_log": str(self.request_log), "dir": str(self.dir)}


# ------------------------------------------------------------------------------------------------------ Stack

class Stack:
    """A broker and one Connect worker (more with add_worker()), started together and stopped together.

    with Stack(workdir, "4.3.1", debezium=True) as s: ... s.connect_url, s.bootstrap, s.broker, s.worker
    """

    def __init__(self, workdir: str | os.PathLike[str], version: str = KAFKA_VERSION, *,
                 broker_port: int | None = None, controller_port: int | None = None,
                 rest_port: int | None = None, debezium: bool = False,
                 plugin_path: Sequence[str | os.PathLike[str]] = (), worker_props: Mapping[str, Any] | None = None,
                 broker_props: Mapping[str, Any] | None = None, group_id: str = "connect-local",
                 progress: Callable[[str], None] | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.version = version
        self.debezium = debezium
        self.progress = progress or (lambda s: None)
        require_fetched(version, debezium=debezium)
        self.plugin_path = [*([plugins_root()] if debezium else []), *plugin_path]
        self.worker_props = dict(worker_props or {})
        self.group_id = group_id
        self.broker = Broker(self.workdir, version, port=broker_port, controller_port=controller_port,
                             extra_props=broker_props)
        self.worker = Worker(self.workdir, version, self.broker.bootstrap, rest_port=rest_port,
                             plugin_path=self.plugin_path, extra_props=self.worker_props, group_id=group_id)
        self.workers: list[Worker] = [self.worker]
        self.timings: dict[str, float] = {}

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def connect_url(self) -> str:
        return self.worker.url

    def start(self) -> Stack:
        try:
            self.progress(f"starting Kafka {self.version} broker on {self.broker.bootstrap}")
            self.broker.start()
            self.timings["broker"] = self.broker.start_seconds or 0.0
            self.progress(f"broker ready in {self.timings['broker']:.1f}s")
            for w in self.workers:
                self.progress(f"starting Connect worker {w.name} on {w.url}")
                w.start()
                self.timings[w.name] = w.start_seconds or 0.0
                self.progress(f"worker {w.name} ready in {self.timings[w.name]:.1f}s")
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, name: str | None = None, rest_port: int | None = None, start: bool = True,
                   extra_props: Mapping[str, Any] | None = None) -> Worker:
        """Another worker of the same Connect cluster (same group_id and topics)."""
        w = Worker(self.workdir, self.version, self.broker.bootstrap, rest_port=rest_port,
                   plugin_path=self.plugin_path, extra_props={**self.worker_props, **(extra_props or {})},
                   group_id=self.group_id, name=name or f"worker{len(self.workers) + 1}")
        self.workers.append(w)
        if start:
            w.start()
        return w

    def stop(self) -> None:
        for w in reversed(self.workers):
            w.stop()
        self.broker.stop()

    def ports(self) -> list[int]:
        return [self.broker.port, self.broker.controller_port, *(w.rest_port for w in self.workers)]

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "workdir": str(self.workdir), "bootstrap": self.bootstrap,
                "connect_url": self.connect_url, "broker": self.broker.state(),
                "workers": [w.state() for w in self.workers]}

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------- PostgreSQL

def postgres_bin() -> Path:
    """Debian's newest PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: vtuple(p.split("/")[4] + ".0"))
    if not found:
        raise MissingTool("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run "
                          "`bash ci/system-deps.sh` (apt-get install -y postgresql)")
    return Path(found[-1]).parent


class Postgres(_Service):
    """A throwaway PostgreSQL server: initdb in a temporary data dir, wal_level=logical, 127.0.0.1 only.

    The unix socket lives next to the data dir. As root, the server runs as the `postgres` system user and
    its data dir is a private temporary directory that user can reach (a pytest tmp dir is root-only); the
    path is linked from <workdir>/postgres. Superuser `postgres`, trust authentication (local tests only).
    """

    user = "postgres"

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, name: str = "postgres",
                 settings: Mapping[str, Any] | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.port = _claim_port(port, "PostgreSQL", "--pg-port")
        self.settings = dict(settings or {})
        self.bin = postgres_bin()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            self.run_as = "postgres"
            pw = pwd.getpwnam(self.run_as)
            base = Path(tempfile.mkdtemp(prefix=f"localstack-{name}-"))
            os.chown(base, pw.pw_uid, pw.pw_gid)
            _TEMP_DIRS.append(base)
            self.workdir.mkdir(parents=True, exist_ok=True)
            link = self.workdir / name  # where a person looks for it
            if link.is_symlink():
                link.unlink()
            if not link.exists():
                link.symlink_to(base)
            self.dir = base
        else:
            self.dir = self.workdir / name
            self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir
        self.log = self.dir / "postgres.log"
        self.proc = None
        self.start_seconds: float | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/postgres"

    def _run(self, cmd: Sequence[str], timeout: float = 60.0,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input,
                              cwd=self.dir, env=env, **kwargs)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        r = self._run([str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                       "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
        if r.returncode != 0:
            raise StackError(f"initdb failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")

    def start(self, timeout: float = 60.0) -> Postgres:
        if self.alive():
            return self
        t0 = _now()
        require_free(self.port, "PostgreSQL", "--pg-port")
        self._initdb()
        settings: dict[str, Any] = {
            "listen_addresses": HOST, "port": self.port, "unix_socket_directories": str(self.socket_dir),
            "wal_level": "logical", "max_wal_senders": 10, "max_replication_slots": 10,
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "32MB", "max_connections": 50, "logging_collector": "off",
        }
        settings.update(self.settings)
        cmd = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for k, v in settings.items():
            cmd += ["-c", f"{k}={v}"]
        env = {**os.environ, "LC_ALL": "C"}
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients such as Debezium to leave).
        self.proc = _Proc(self.name, cmd, self.log, cwd=self.dir, env=env, user=self.run_as, stop_signal=signal.SIGINT)
        try:
            wait_until(self._ready, timeout, f"PostgreSQL to accept connections on 127.0.0.1:{self.port}",
                       check=self._check_alive)
        except StackError as e:
            self.stop()
            raise self._startup_failed(e) from None
        self.start_seconds = _now() - t0
        return self

    def _ready(self) -> bool:
        r = subprocess.run([str(self.bin / "pg_isready"), "-h", HOST, "-p", str(self.port), "-U", self.user,
                            "-t", "2"], capture_output=True, timeout=10)
        return r.returncode == 0

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back clients, checkpoint, exit); SIGKILL of the group after timeout."""
        if self.proc is not None:
            self.proc.stop(timeout=timeout)
            self.proc = None
        _wait_closed([self.port])

    def restart(self, timeout: float = 60.0) -> Postgres:
        self.stop()
        return self.start(timeout=timeout)

    def sql(self, statement: str, db: str = "postgres", timeout: float = 30.0) -> str:
        """Run SQL with psql over TCP; returns unaligned, tuples-only output ('|' separated). Raises on error."""
        r = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", db, "-c", statement],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
        if r.returncode != 0:
            raise StackError(f"psql failed (exit {r.returncode}): {r.stderr.strip()}")
        return r.stdout.strip()

    def debezium_config(self, topic_prefix: str, table_include_list: str | None = None,
                        db: str = "postgres", **overrides: Any) -> dict[str, Any]:
        """A Debezium PostgreSQL connector config for this server (pgoutput, no extra server plugin)."""
        cfg: dict[str, Any] = {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": HOST,
            "database.port": str(self.port),
            "database.user": self.user,
            "database.password": "postgres",
            "database.dbname": db,
            "topic.prefix": topic_prefix,
            "plugin.name": "pgoutput",
            "slot.name": re.sub(r"[^a-z0-9_]", "_", f"slot_{topic_prefix}".lower()),
            "publication.autocreate.mode": "filtered" if table_include_list else "all_tables",
        }
        if table_include_list:
            cfg["table.include.list"] = table_include_list
        cfg.update({k.replace("__", "."): v for k, v in overrides.items()})
        return cfg

    def state(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "dsn": self.dsn, "socket_dir": str(self.socket_dir),
                "data_dir": str(self.data_dir), "log": str(self.log)}


# ---------------------------------------------------------------------------------------------- the sidecar

class Sidecar(_Service):
    """`connect-health serve` as a real process (the console script of the venv), on 127.0.0.1.

    Arguments are flags of `connect-health serve`; CONNECT_HEALTH_* variables of the calling environment are
    dropped so only what is passed here counts. Its log is <workdir>/<name>/sidecar.log.
    """

    def __init__(self, workdir: str | os.PathLike[str], connect_url: str, args: Sequence[str] = (),
                 port: int | None = None, name: str = "sidecar", env: Mapping[str, str] | None = None,
                 executable: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.dir = self.workdir / name
        self.connect_url = connect_url
        self.args = list(args)
        self.port = _claim_port(port, "connect-health sidecar", "--sidecar-port")
        self.extra_env = dict(env or {})
        self.executable = executable or _sidecar_executable()
        self.log = self.dir / "sidecar.log"
        self.proc = None
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [self.executable, "serve", "--host", HOST, "--port", str(self.port),
                "--connect-url", self.connect_url, *self.args]

    def start(self, timeout: float = 30.0) -> Sidecar:
        if self.alive():
            return self
        t0 = _now()
        require_free(self.port, "connect-health", "--sidecar-port")
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECT_HEALTH_") and k != "POD_IP"}
        env.update(self.extra_env)
        self.proc = _Proc(self.name, self.command(), self.log, cwd=self.dir, env=env)
        try:
            wait_until(lambda: http("GET", self.url + "/ping", timeout=2)[0] == 200, timeout,
                       f"connect-health at {self.url} to answer /ping", interval=0.2, check=self._check_alive)
        except StackError as e:
            self.stop()
            raise self._startup_failed(e) from None
        self.start_seconds = _now() - t0
        return self

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        return http("GET", self.url + path, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=timeout)
            self.proc = None
        _wait_closed([self.port])

    def marker(self) -> str:
        """A piece of this process's command line that no other process has (for `down` to recognise it)."""
        return f"serve --host {HOST} --port {self.port}"

    def state(self) -> dict[str, Any]:
        """For a state file's "sidecars" list: `down` stops these too."""
        return {"name": self.name, "pid": self.pid, "port": self.port, "url": self.url, "marker": self.marker(),
                "log": str(self.log), "dir": str(self.dir)}


def _sidecar_executable() -> str:
    """The venv's connect-health (make venv installs the sidecar there), else one on PATH."""
    candidate = TOOLS / "venv" / "bin" / "connect-health"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("connect-health")
    if found:
        return found
    raise MissingTool("connect-health is not installed: run `make venv` (installs the sidecar into .tools/venv)")


# --------------------------------------------------------------------------------------------- state files

def state_file(workdir: str | os.PathLike[str]) -> Path:
    return Path(workdir).resolve() / "state.json"


def load_state(workdir: str | os.PathLike[str] = DEFAULT_WORKDIR) -> dict[str, Any] | None:
    """The state written by `up` (pids, ports, URLs, log paths), or None."""
    try:
        state = json.loads(state_file(workdir).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _write_state(workdir: Path, state: Mapping[str, Any]) -> None:
    p = state_file(workdir)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, p)


def _pid_matches(pid: int | None, marker: str) -> bool:
    """pid is alive and its command line mentions marker (guards against a recycled pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _state_pids(state: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """(name, pid, marker) of each process recorded in a state file."""
    out: list[tuple[str, Any, Any]] = []
    for w in state.get("workers", []):
        out.append((w.get("dir", "worker"), w.get("pid"), w.get("dir", "")))
    b = state.get("broker") or {}
    out.append(("broker", b.get("pid"), b.get("dir", "")))
    pg = state.get("postgres") or {}
    if pg:
        out.append(("postgres", pg.get("pid"), pg.get("data_dir", "")))
    for sc in state.get("sidecars") or []:
        out.append((sc.get("name", "sidecar"), sc.get("pid"), sc.get("marker", "")))
    return [(str(n), int(p), str(m)) for n, p, m in out if p and m]


def state_ports(state: Mapping[str, Any]) -> list[int]:
    """Every TCP port a state file records (broker, controller, workers' REST, PostgreSQL, sidecars)."""
    b = state.get("broker") or {}
    ports = [b.get("port"), b.get("controller_port"), *[w.get("rest_port") for w in state.get("workers", [])],
             (state.get("postgres") or {}).get("port"), *[sc.get("port") for sc in state.get("sidecars") or []]]
    return [int(p) for p in ports if p]


def down(workdir: str | os.PathLike[str] = DEFAULT_WORKDIR, timeout: float = 30.0,
         progress: Callable[[str], None] = lambda s: None) -> bool:
    """Stop a stack started by `up` in workdir: the `up` process, then any of its children still alive.

    The `up` process is recognised by its pid and the "up_marker" of the state file (default "localstack"),
    so another launcher that writes the same state file (ci/demo.py) is stopped the same way.
    """
    state = load_state(workdir)
    if state is None:
        progress(f"nothing to stop: no state file in {workdir}")
        return False
    up_pid = state.get("up_pid")
    up_marker = str(state.get("up_marker") or "localstack")
    if up_pid and _pid_matches(up_pid, up_marker) and up_pid != os.getpid():
        progress(f"stopping the `up` process (pid {up_pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(up_pid, signal.SIGTERM)
        deadline = _now() + timeout
        while _now() < deadline and _pid_matches(up_pid, up_marker):
            time.sleep(0.2)
    for name, pid, marker in _state_pids(state):
        if _pid_matches(pid, marker):
            progress(f"stopping {Path(name).name} (pid {pid})")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)  # PostgreSQL: fast shutdown
                os.killpg(pid, signal.SIGCONT)
            deadline = _now() + 20
            while _now() < deadline and _pid_matches(pid, marker):
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    pg_dir = Path((state.get("postgres") or {}).get("data_dir") or "/nonexistent").parent
    if pg_dir.name.startswith("localstack-") and pg_dir.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(pg_dir, ignore_errors=True)  # the private data dir of a Postgres run as root
    ports = state_ports(state)
    with contextlib.suppress(StackError):
        wait_until(lambda: not any(is_listening(p) for p in ports), 15, "the stack's ports to close")
    state_file(workdir).unlink(missing_ok=True)
    return True


# ------------------------------------------------------------------------------------------------------- CLI

class Progress:
    def __init__(self, prefix: str = "localstack") -> None:
        self.t0 = _now()
        self.prefix = prefix

    def __call__(self, msg: str) -> None:
        print(f"[{self.prefix} {_now() - self.t0:6.1f}s] {msg}", flush=True)


def _cmd_fetch(args: argparse.Namespace) -> int:
    progress = Progress("fetch")
    versions = args.kafka or [KAFKA_VERSION]
    require_java()
    for v in versions:
        t = _now()
        fetch_kafka(v, force=args.force, progress=progress)
        progress(f"kafka {v}: done in {_now() - t:.1f}s")
    if args.debezium:
        t = _now()
        fetch_debezium(args.debezium_version, force=args.force, progress=progress)
        progress(f"debezium-postgres: done in {_now() - t:.1f}s")
    progress("all fetched")
    return 0


def _parse_props(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"localstack: --worker-prop expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _cmd_up(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    old = load_state(workdir)
    if old and any(_pid_matches(pid, marker) for _, pid, marker in _state_pids(old)):
        raise StackError(f"a stack is already running from {workdir} (see {state_file(workdir)}): "
                         f"run `python ci/localstack.py down --workdir {workdir}` first")
    progress = Progress("up")
    require_java(args.version)
    require_fetched(args.version, debezium=args.debezium)
    # A fresh cluster each time: the previous run's broker data and worker files go.
    for sub in ("broker", "worker"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    stop_event = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop_event.set()
        raise KeyboardInterrupt

    # SIGINT too: a shell that starts `up` in the background leaves SIGINT ignored, and Python keeps it so.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    pg: Postgres | None = None
    stack = Stack(workdir, args.version, broker_port=args.broker_port, controller_port=args.controller_port,
                  rest_port=args.rest_port, debezium=args.debezium, worker_props=_parse_props(args.worker_prop),
                  progress=progress)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def save(ready: bool) -> None:  # after each stage, so that `down` also stops a start that hangs
        _write_state(workdir, {"up_pid": os.getpid(), "ready": ready, "started_at": started_at, **stack.state(),
                               "postgres": pg.state() if pg else None})

    try:
        if args.postgres:
            pg = Postgres(workdir, port=args.pg_port)
        def stage(msg: str) -> None:
            progress(msg)
            save(False)
        stack.progress = stage
        stack.start()
        if pg is not None:
            progress(f"starting PostgreSQL on 127.0.0.1:{pg.port}")
            pg.start()
            progress(f"PostgreSQL ready in {pg.start_seconds:.1f}s")
        save(True)
        progress(f"ready: bootstrap {stack.bootstrap}, Connect REST {stack.connect_url}"
                 + (f", PostgreSQL {pg.dsn}" if pg else ""))
        progress(f"logs: {stack.broker.log}, {stack.worker.log}; state: {state_file(workdir)}")
        progress("Ctrl-C (or `python ci/localstack.py down`) stops everything")
        while not stop_event.is_set():
            for svc in [stack.broker, *stack.workers, *([pg] if pg else [])]:
                if not svc.alive():
                    raise StackError(f"{svc.name} exited unexpectedly; last lines of {svc.log}:\n{svc.log_tail()}")
            stop_event.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        progress("stopping")
        stack.stop()
        if pg is not None:
            pg.stop()
        state_file(workdir).unlink(missing_ok=True)
        progress("stopped; nothing left listening" if not any(is_listening(p) for p in stack.ports())
                 else "stopped (some port still answers)")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    down(args.workdir, progress=Progress("down"))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = load_state(args.workdir)
    if state is None:
        print(f"no stack running from {Path(args.workdir).resolve()}")
        return 1
    alive = {Path(n).name: _pid_matches(p, m) for n, p, m in _state_pids(state)}
    print(json.dumps({"alive": alive, **state}, indent=2))
    return 0 if all(alive.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="localstack", description=__doc__.split("\n\n")[0])
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
    u.add_argument("--worker-prop", action="append", default=[], metavar="KEY=VALUE")
    d = sub.add_parser("down", help="stop the stack started by `up` (from its state file)")
    d.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    s = sub.add_parser("status", help="print the state file and which processes are alive")
    s.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    args = ap.parse_args(argv)
    try:
        return {"fetch": _cmd_fetch, "up": _cmd_up, "down": _cmd_down, "status": _cmd_status}[args.cmd](args)
    except StackError as e:
        first, *rest = str(e).split("\n", 1)
        print(f"localstack: {first}", file=sys.stderr)
        if rest:
            print(rest[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("localstack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
