"""The REST client on real sockets on 127.0.0.1 (issue 18): what counts as a restart (only a refused connection),
a deadline for the whole call (headers included), status answers of any size (traces cut while read).

The servers here are raw sockets, not a Connect worker: a real worker cannot be made to trickle its headers, to be
resolved by a broken DNS or to answer 100 MiB on demand. What a real worker does with odd connector names is in
tests/integration/test_odd_names.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from connect_health import client as client_mod
from connect_health.client import AnswerTooLarge, ConnectClient, ConnectError, SidecarError, Unreachable
from connect_health.config import ConnectSettings
from connect_health.redact import trace_line
from connect_health.snapshot import MAX_TRACE_CHARS, parse_answer

SRC = Path(client_mod.__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_client(url: str, timeout: float = 5) -> ConnectClient:
    return ConnectClient(ConnectSettings(url=url, request_timeout=timeout))


Handler = Callable[[socket.socket, bytes], None]  # (connection, the request's head as read)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """serve(handler) -> the URL of a raw socket server on 127.0.0.1 running ``handler(conn, request)`` per
    connection."""
    stop = threading.Event()
    socks: list[socket.socket] = []

    def start(handler: Handler) -> str:
        srv = socket.create_server(("127.0.0.1", 0))
        srv.settimeout(0.2)
        socks.append(srv)

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                threading.Thread(target=_run, args=(handler, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    stop.set()
    for s in socks:
        s.close()


def _run(handler: Handler, conn: socket.socket) -> None:
    with conn:
        try:
            handler(conn, _read_request(conn))
        except OSError:
            pass  # the client gave up: what these tests want


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --- only a refused connection is Unreachable ---------------------------------------------------------------

def test_a_closed_port_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"^GET /health: cannot connect: connection refused"):
        make_client(f"http://127.0.0.1:{free_port()}").health()


def test_a_dns_failure_is_the_sidecars_problem_not_a_restart() -> None:
    with pytest.raises(ConnectError) as caught:
        make_client("http://connect.no-such-host.invalid:8083").health()
    assert not isinstance(caught.value, Unreachable)
    assert isinstance(caught.value, SidecarError)
    assert "cannot resolve Connect's host name (a DNS failure" in str(caught.value)


EMFILE_CHILD = """
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
from connect_health.client import ConnectClient
from connect_health.config import ConnectSettings
client = ConnectClient(ConnectSettings(url=sys.argv[2], request_timeout=5))
assert client.health().status == 200  # the server answers while there are descriptors
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    client.health()
    got = {"error": None}
except Exception as exc:
    got = {"error": type(exc).__name__, "message": str(exc)}
# Give the descriptors back before the interpreter ends: ending the daemon deadline thread at exit calls
# pthread_exit, whose unwinder glibc loads (libgcc_s.so.1) at its first use, which needs a descriptor. Without
# one the child aborts after its answer ("libgcc_s.so.1 must be installed for pthread_exit to work"), about one
# run in twenty here; that is the interpreter's exit, not what this test is about.
for fd in held:
    os.close(fd)
print(json.dumps(got))
"""


def test_out_of_file_descriptors_is_the_sidecars_problem_not_a_restart(serve: Callable[[Handler], str]) -> None:
    url = serve(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"))
    out = subprocess.run([sys.executable, "-c", EMFILE_CHILD, str(SRC), url], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["error"] == "SidecarError", got  # not Unreachable
    assert "the sidecar is out of file descriptors (EMFILE" in got["message"]


def test_a_reset_is_not_unreachable(serve: Callable[[Handler], str]) -> None:
    def reset(conn: socket.socket, _: bytes) -> None:  # SO_LINGER 0: close() sends a RST
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with pytest.raises(ConnectError) as caught:
        make_client(serve(reset)).health()
    assert not isinstance(caught.value, Unreachable)
    assert "connection reset" in str(caught.value)


# --- the deadline bounds the whole call ---------------------------------------------------------------------

def trickle(payload: bytes, every: float) -> Handler:
    def handler(conn: socket.socket, _: bytes) -> None:
        for i in range(len(payload)):
            conn.sendall(payload[i:i + 1])
            time.sleep(every)

    return handler


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"p" * 100
        + b"\r\nContent-Length: 2\r\n\r\n")


def test_response_headers_trickled_end_at_the_deadline(serve: Callable[[Handler], str]) -> None:
    url = serve(trickle(HEAD + b"{}", 0.3))  # 140 bytes: 42 s in all
    start = time.monotonic()
    with pytest.raises(ConnectError, match=r"GET /health: timed out after 1s") as caught:
        make_client(url, timeout=1).health()
    took = time.monotonic() - start
    assert not isinstance(caught.value, Unreachable)
    assert took < 5, f"the call took {took:.1f}s, the trickle lasts 42s"  # generous: about 1 s expected


def test_a_body_trickled_ends_at_the_deadline(serve: Callable[[Handler], str]) -> None:
    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
        trickle(b"[" + b" " * 198 + b"]", 0.3)(conn, request)

    start = time.monotonic()
    with pytest.raises(ConnectError, match="answer not complete after 1s"):
        make_client(serve(handler), timeout=1).health()
    assert time.monotonic() - start < 5


# --- answers of any size ------------------------------------------------------------------------------------

TRACE = ("org.apache.kafka.connect.errors.ConnectException: database down\n"
         + "\tat org.example.Sink.put(Sink.java:1)\n" * 800)


def failed_answer(tasks: int) -> bytes:
    """An answer of ``tasks`` FAILED tasks, each with a 30 KB trace (the shape of a mass failure)."""
    per = 10
    doc = {f"sink-{c}": {"status": {"name": f"sink-{c}", "type": "sink",
                                    "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                                    "tasks": [{"id": i, "state": "FAILED", "worker_id": "127.0.0.1:8083",
                                               "trace": f"task {c}/{i}: {TRACE}"} for i in range(per)]}}
           for c in range(tasks // per)}
    return json.dumps(doc).encode()


def answer_with(body: bytes, length: bool) -> Handler:
    def handler(conn: socket.socket, _: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n" % len(body) if length else b"Connection: close\r\n\r\n"
        conn.sendall(head)
        for i in range(0, len(body), 65536):
            conn.sendall(body[i:i + 65536])

    return handler


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
def test_a_status_answer_past_the_limit_is_read_with_traces_cut(serve: Callable[[Handler], str],
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                length: bool) -> None:
    body = failed_answer(200)  # 6 MiB, past a limit lowered to 1 MiB (the same as 100 MiB past 32 MiB, faster)
    monkeypatch.setattr(client_mod, "MAX_BODY", 1024 * 1024)
    assert len(body) > 5 * client_mod.MAX_BODY
    reply = make_client(serve(answer_with(body, length))).connectors_expanded(info=False, raw=True)
    assert reply.status == 200 and isinstance(reply.body, bytes) and len(reply.body) <= client_mod.MAX_BODY
    assert parse_answer(reply.body) == parse_answer(body)
    view = parse_answer(reply.body).connectors["sink-7"]
    assert [t.state for t in view.tasks] == ["FAILED"] * 10
    assert trace_line(view.tasks[3].trace, "first-line") == \
        "task 7/3: org.apache.kafka.connect.errors.ConnectException: database down"


def test_a_status_answer_too_big_even_cut_says_so(serve: Callable[[Handler], str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MAX_BODY", 256 * 1024)  # 200 tasks keep 200 x 2 KB of traces: more
    with pytest.raises(AnswerTooLarge, match=rf"answer exceeds the 262144 byte limit even with traces cut to "
                                             rf"{MAX_TRACE_CHARS} characters \(the sidecar's limit: Connect "
                                             r"answered\)"):
        make_client(serve(answer_with(failed_answer(200), True))).connectors_expanded(info=False, raw=True)


def test_other_answers_past_the_limit_are_refused(serve: Callable[[Handler], str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MAX_BODY", 64 * 1024)
    with pytest.raises(AnswerTooLarge, match="exceeds the 65536 byte limit"):
        make_client(serve(answer_with(json.dumps(["x" * 100_000]).encode(), False))).health()



# --- one path segment per name ------------------------------------------------------------------------------

@pytest.fixture
def recorder(serve: Callable[[Handler], str]) -> tuple[str, list[bytes]]:
    """A server answering 204, or 400 to a %2E segment (as Jetty 12 does), recording each request line."""
    lines: list[bytes] = []

    def handler(conn: socket.socket, request: bytes) -> None:
        line = request.split(b"\r\n")[0]
        lines.append(line)
        status = b"400 Bad Request" if b"/%2E" in line else b"204 No Content"
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    return serve(handler), lines


def test_a_name_goes_out_as_one_encoded_segment(recorder: tuple[str, list[bytes]]) -> None:
    """The request line as sent (requests alone would decode %2E back to "."); what real workers make of these is in
    tests/integration/test_odd_names.py."""
    url, lines = recorder
    client = make_client(url)
    wire = {}
    for name in ["a/b", "%2e%2e", "with space", "ü名", "q?x", "h#x", "a;b", "..a", "a\\b"]:
        assert client.restart_task(name, 0).status == 204
        wire[name] = lines[-1].split(b" ")[1].decode()
    assert wire == {"a/b": "/connectors/a%2Fb/tasks/0/restart", "%2e%2e": "/connectors/%252e%252e/tasks/0/restart",
                    "with space": "/connectors/with%20space/tasks/0/restart",
                    "ü名": "/connectors/%C3%BC%E5%90%8D/tasks/0/restart", "q?x": "/connectors/q%3Fx/tasks/0/restart",
                    "h#x": "/connectors/h%23x/tasks/0/restart", "a;b": "/connectors/a%3Bb/tasks/0/restart",
                    "..a": "/connectors/..a/tasks/0/restart", "a\\b": "/connectors/a%5Cb/tasks/0/restart"}


def test_dot_names_go_out_encoded_then_literal_to_a_worker_refusing_encoded_dots(
        recorder: tuple[str, list[bytes]]) -> None:
    url, lines = recorder
    client = make_client(url)
    assert client.restart_connector("..", include_tasks=True, only_failed=True).status == 204
    assert [ln.split(b" ")[1] for ln in lines] == [
        b"/connectors/%2E%2E/restart?includeTasks=true&onlyFailed=true",  # refused (400) as Jetty 12 does
        b"/connectors/../restart?includeTasks=true&onlyFailed=true"]  # Jetty 12 takes this as the name
    assert client.set_state(".", "pause").status == 204  # remembered: literal at once
    assert lines[-1] == b"PUT /connectors/./pause HTTP/1.1" and len(lines) == 3


def test_check_with_a_request_timeout_ends_although_the_worker_trickles_headers(
        serve: Callable[[Handler], str]) -> None:
    """The symptom of issue 18: `check --request-timeout 1` against such a worker ran for 40 s and more."""
    url = serve(trickle(HEAD + b"{}", 0.3))
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "connect_health.cli", "check", "--connect-url", url,
                          "--request-timeout", "1"], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    took = time.monotonic() - start
    assert out.returncode == 1, out.stderr
    assert "timed out after 1s" in out.stdout and "Traceback" not in out.stderr
    assert took < 15, f"check took {took:.1f}s"  # a few calls of 1 s each and the start-up; the trickle lasts 42 s
