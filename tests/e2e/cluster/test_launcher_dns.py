"""launcher.cluster.dns_query, the check `up` waits on before it calls the node ready, asked of a real CoreDNS.

This test uses the CoreDNS binary the cluster runs (.tools/cluster-bin/coredns, built by `bash ci/cluster-tools.sh`),
started here on 127.0.0.1 on a free port with a Corefile of its own (a hosts file, and a template answering a CNAME,
which CoreDNS follows with the target's A record, as for an ExternalName Service). It needs no cluster, no root and
touches nothing on the host. It lives here, not in tests/integration, because only `make e2e` builds CoreDNS
before it runs its tests; the rest of the launcher's tests are tests/integration/test_cluster_launcher.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from launcher import cluster as kc
from launcher.net import free_port
from launcher.process import Proc

COREDNS = kc.BIN / "coredns"
API_NAME = f"kubernetes.default.svc.{kc.CLUSTER_DOMAIN}"


def _port_free_for_udp_and_tcp() -> int:
    for _ in range(20):
        port = free_port()  # free for TCP
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")


@pytest.fixture(scope="module")
def coredns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real CoreDNS on 127.0.0.1, stopped at the end; yields its port."""
    if not COREDNS.is_file():
        pytest.fail(f"{COREDNS} is missing: run `bash ci/cluster-tools.sh`", pytrace=False)
    d = tmp_path_factory.mktemp("coredns")
    port = _port_free_for_udp_and_tcp()
    (d / "hosts").write_text(f"{kc.API_SERVICE_IP} {API_NAME}\n"
                             "10.244.0.7 two.example.test\n10.244.0.8 two.example.test\n"
                             "fd00::1 v6only.example.test\n")
    (d / "Corefile").write_text(f"""alias.example.test:{port} {{
    bind 127.0.0.1
    template IN A alias.example.test {{
        answer "alias.example.test. 60 IN CNAME {API_NAME}."
    }}
}}
.:{port} {{
    bind 127.0.0.1
    hosts {d / 'hosts'}
}}
""")
    log = d / "coredns.log"
    proc = Proc("coredns", [str(COREDNS), "-conf", str(d / "Corefile")], log, d)
    try:
        deadline = time.monotonic() + 30
        for _ in range(300):  # until it answers: bounded in count and time
            if not proc.alive():
                pytest.fail(f"coredns exited ({proc.popen.returncode}): {log.read_text(errors='replace')[-2000:]}",
                            pytrace=False)
            try:
                if kc.dns_query(API_NAME, "127.0.0.1", timeout=0.2, port=port):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"coredns did not answer on 127.0.0.1:{port} in 30 s: {log.read_text()[-2000:]}",
                            pytrace=False)
            time.sleep(0.05)
        yield port
    finally:
        proc.stop(timeout=10)


def test_the_apiserver_service_name_resolves_to_its_cluster_ip(coredns: int) -> None:
    assert kc.dns_query(API_NAME, "127.0.0.1", port=coredns) == kc.API_SERVICE_IP
    assert kc.dns_query(API_NAME + ".", "127.0.0.1", port=coredns) == kc.API_SERVICE_IP


def test_the_first_of_several_a_records(coredns: int) -> None:
    assert kc.dns_query("two.example.test", "127.0.0.1", port=coredns) in {"10.244.0.7", "10.244.0.8"}


def test_an_a_record_after_a_cname_is_found(coredns: int) -> None:
    """CoreDNS answers the CNAME, then the A record of its target (from the hosts file): the CNAME is skipped."""
    assert kc.dns_query("alias.example.test", "127.0.0.1", port=coredns) == kc.API_SERVICE_IP


@pytest.mark.parametrize("name", ["missing.example.test", "v6only.example.test"],
                         ids=["nxdomain", "aaaa-only"])
def test_no_a_record_is_none(coredns: int, name: str) -> None:
    assert kc.dns_query(name, "127.0.0.1", port=coredns) is None


def test_a_server_that_does_not_answer_times_out() -> None:
    """The caller (`up`'s wait for DNS) treats the exception as 'not yet'. A socket of the test's own stands in for
    a DNS server that never answers: CoreDNS cannot be made to stay silent on purpose."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(TimeoutError):
            kc.dns_query(API_NAME, "127.0.0.1", timeout=0.2, port=silent.getsockname()[1])
        assert silent.recv(512)  # the query did arrive there
