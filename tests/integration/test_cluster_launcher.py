"""The e2e cluster launcher (launcher.cluster) without a cluster: its certificates made by the real openssl, the
config files it writes for containerd, the kubelet, kube-proxy, CoreDNS and CNI, its registry trust, its CLI and
the pure pieces of its teardown, all in a tmp directory.

Nothing here starts a node component or runs iptables, ip, mount, umount or ctr, and nothing kills a process
it did not start: Cluster.up/down, _network and remove_chains are never called (the one real node of this
machine may be running). dns_query against a real CoreDNS is in tests/e2e/cluster/test_launcher_dns.py, run by
`make e2e`, which builds CoreDNS first.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import os
import ssl
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from launcher import cluster as kc
from launcher.errors import MissingTool, StackError

HOST_CONTAINERD = ("/var/lib/containerd", "/run/containerd", "/etc/containerd")
APISERVER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   f"kubernetes.default.svc.{kc.CLUSTER_DOMAIN}", kc.NODE_IP, kc.API_SERVICE_IP, "127.0.0.1")


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> kc.Layout:
    """One tmp cluster directory with make_pki and write_kubeconfig done (RSA keys cost CPU: made once)."""
    lay = kc.Layout(tmp_path_factory.mktemp("cluster"))
    kc.make_pki(lay)
    kc.write_kubeconfig(lay)
    return lay


def contents(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# ------------------------------------------------------------------------------------------ certificates

def test_apiserver_certificate_verifies_against_the_ca_with_every_name_clients_use(pki: kc.Layout) -> None:
    p = pki.pki
    verify = openssl("verify", "-purpose", "sslserver", "-CAfile", str(p / "ca.crt"), str(p / "apiserver.crt"))
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": OK"), verify.stdout + verify.stderr
    ext = openssl("x509", "-in", str(p / "apiserver.crt"), "-noout", "-ext", "subjectAltName")
    assert ext.returncode == 0, ext.stderr
    sans = {s.strip() for s in ext.stdout.splitlines()[-1].split(",")}
    for ip in (kc.NODE_IP, kc.API_SERVICE_IP, "127.0.0.1"):
        assert f"IP Address:{ip}" in sans, sans
    assert f"DNS:kubernetes.default.svc.{kc.CLUSTER_DOMAIN}" in sans, sans
    # A certificate signed by another CA does not verify: the check above can fail.
    other = openssl("verify", "-CAfile", str(p / "apiserver.crt"), str(p / "ca.crt"))
    assert other.returncode != 0


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str) -> None:
    """A real TLS handshake between two contexts through memory buffers (no socket, no network)."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    pending = [client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname),
               server_ctx.wrap_bio(s_in, s_out, server_side=True)]
    for _ in range(10):
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        if not pending:
            return
    raise AssertionError(f"TLS handshake for {hostname} did not finish")


@pytest.mark.parametrize("name", APISERVER_NAMES)
def test_the_launchers_own_api_client_accepts_the_apiserver_certificate_by_each_name(pki: kc.Layout,
                                                                                      name: str) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.pki / "apiserver.crt", pki.pki / "apiserver.key")  # the key matches the cert
    _handshake(kc.Api(pki).ctx, server, name)


def test_the_api_client_refuses_a_name_the_certificate_does_not_carry(pki: kc.Layout) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.pki / "apiserver.crt", pki.pki / "apiserver.key")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(kc.Api(pki).ctx, server, "kafka-connect.default.svc")


def test_service_account_keys_are_a_pair_and_private_keys_are_owner_only(pki: kc.Layout) -> None:
    pub = openssl("rsa", "-in", str(pki.pki / "sa.key"), "-pubout")
    assert pub.returncode == 0, pub.stderr
    assert pub.stdout == (pki.pki / "sa.pub").read_text()
    for key in ("ca.key", "apiserver.key", "sa.key"):
        assert mode(pki.pki / key) & 0o077 == 0, f"{key} mode {oct(mode(pki.pki / key))}"


def test_the_admin_token_is_owner_only_and_in_system_masters(pki: kc.Layout) -> None:
    tokens = pki.pki / "tokens.csv"
    assert mode(tokens) == 0o600
    lines = tokens.read_text().splitlines()
    assert len(lines) == 1
    token, user, uid, groups = lines[0].split(",")
    assert (user, uid, groups) == ("admin", "admin", "system:masters")
    assert len(token) == 48 and set(token) <= set("0123456789abcdef")
    assert kc.admin_token(pki) == token


def test_a_second_make_pki_keeps_every_file_so_the_kubeconfig_stays_valid(pki: kc.Layout) -> None:
    before = contents(pki.pki)
    kubeconfig = pki.kubeconfig.read_bytes()
    kc.make_pki(pki)
    kc.write_kubeconfig(pki)
    assert contents(pki.pki) == before
    assert pki.kubeconfig.read_bytes() == kubeconfig


def test_make_pki_makes_what_is_missing_only(tmp_path: Path) -> None:
    lay = kc.Layout(tmp_path)
    kc.make_pki(lay)
    ca = (lay.pki / "ca.crt").read_bytes()
    (lay.pki / "apiserver.crt").unlink()
    kc.make_pki(lay)
    assert (lay.pki / "ca.crt").read_bytes() == ca
    verify = openssl("verify", "-CAfile", str(lay.pki / "ca.crt"), str(lay.pki / "apiserver.crt"))
    assert verify.returncode == 0, verify.stdout + verify.stderr


# ------------------------------------------------------------------------------------------ kubeconfig

def test_kubeconfig_points_at_the_node_with_the_ca_and_the_admin_token(pki: kc.Layout) -> None:
    text = pki.kubeconfig.read_text()
    cfg = yaml.safe_load(text)
    assert cfg == json.loads(text)
    assert mode(pki.kubeconfig) == 0o600
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    assert cluster["server"] == f"https://{kc.NODE_IP}:{kc.API_PORT}"
    assert base64.b64decode(cluster["certificate-authority-data"]) == (pki.pki / "ca.crt").read_bytes()
    assert user["token"] == kc.admin_token(pki)


# ------------------------------------------------------------------------------------------ config files

def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


@pytest.fixture
def lay(tmp_path: Path) -> kc.Layout:
    return kc.Layout(tmp_path / "cluster")


def test_containerd_keeps_everything_under_the_cluster_directory(lay: kc.Layout) -> None:
    cfg = tomllib.loads(kc.containerd_config(lay))
    assert cfg["root"] == str(lay.containerd / "root") and cfg["state"] == str(lay.containerd / "state")
    assert cfg["grpc"]["address"] == str(lay.containerd_sock)
    paths = [s for s in strings(cfg) if s.startswith("/")]
    assert len(paths) >= 8, paths
    for path in paths:
        assert not path.startswith(HOST_CONTAINERD), path
        # The one path outside it: Debian's CNI plugins, read only.
        assert Path(path).is_relative_to(lay.root) or path == str(kc.CNI_BIN), path


def test_containerd_cri_settings_the_node_needs(lay: kc.Layout) -> None:
    cri = tomllib.loads(kc.containerd_config(lay))["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here: every sandbox fails without it
    assert cri["sandbox_image"] == kc.PAUSE_IMAGE
    assert cri["cni"]["conf_dir"] == str(lay.cni / "net.d")
    assert cri["cni"]["bin_dir"] == str(kc.CNI_BIN)
    assert cri["registry"]["config_path"] == str(lay.registry_hosts)
    assert Path(cri["registry"]["config_path"]).is_relative_to(lay.containerd)
    # The kubelet uses cgroupfs, so runc must not use the systemd driver.
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_kubelet_config(lay: kc.Layout) -> None:
    cfg = kc.kubelet_config(lay)
    assert cfg["failCgroupV1"] is False and cfg["cgroupDriver"] == "cgroupfs" and cfg["failSwapOn"] is False
    assert cfg["clusterDNS"] == [kc.NODE_IP] and cfg["clusterDomain"] == kc.CLUSTER_DOMAIN
    assert cfg["containerRuntimeEndpoint"] == cfg["imageServiceEndpoint"] == f"unix://{lay.containerd_sock}"
    assert Path(cfg["resolvConf"]).is_relative_to(lay.root)
    assert cfg["address"] == cfg["healthzBindAddress"] == kc.NODE_IP
    assert cfg["readOnlyPort"] == 0
    json.dumps(cfg)  # written as JSON


def test_kubelet_talks_to_the_socket_containerd_listens_on(lay: kc.Layout) -> None:
    socket = tomllib.loads(kc.containerd_config(lay))["grpc"]["address"]
    assert kc.kubelet_config(lay)["containerRuntimeEndpoint"] == f"unix://{socket}"


def test_kube_proxy_config(lay: kc.Layout) -> None:
    cfg = kc.kube_proxy_config(lay)
    assert cfg["kind"] == "KubeProxyConfiguration" and cfg["mode"] == "iptables"
    assert cfg["clientConnection"]["kubeconfig"] == str(lay.kubeconfig)
    assert cfg["bindAddress"] == kc.NODE_IP and cfg["nodePortAddresses"] == [f"{kc.NODE_IP}/32"]
    assert cfg["clusterCIDR"] == kc.CLUSTER_CIDR and cfg["hostnameOverride"] == kc.NODE_NAME
    assert cfg["iptables"]["masqueradeAll"] is False and cfg["iptables"]["localhostNodePorts"] is False
    assert cfg["oomScoreAdj"] == 0  # a negative one needs CAP_SYS_RESOURCE
    for addr in (cfg["healthzBindAddress"], cfg["metricsBindAddress"]):
        assert addr.startswith(f"{kc.NODE_IP}:"), addr


def test_corefile_serves_the_cluster_domain_on_the_address_the_kubelet_gives_pods(lay: kc.Layout) -> None:
    lines = [line.strip() for line in kc.corefile_text(lay).splitlines()]
    assert lines[0] == ".:53 {"
    assert f"bind {kc.NODE_IP}" in lines and [kc.NODE_IP] == kc.kubelet_config(lay)["clusterDNS"]
    assert f"kubernetes {kc.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{" in lines
    assert f"kubeconfig {lay.kubeconfig} e2e" in lines
    assert not any(line.startswith("forward") for line in lines)  # nothing asked of resolvers off this machine
    assert kc.corefile_text(lay).count("{") == kc.corefile_text(lay).count("}")


def test_pod_network_has_no_masquerade_and_no_default_route(lay: kc.Layout) -> None:
    conflist = kc.cni_conflist(lay)
    (bridge,) = conflist["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == kc.BRIDGE and bridge["ipMasq"] is False
    ipam = bridge["ipam"]
    assert Path(ipam["dataDir"]).is_relative_to(lay.root)
    routes = [ipaddress.ip_network(r["dst"]) for r in ipam["routes"]]
    assert all(r.prefixlen > 0 for r in routes), routes
    assert set(routes) == {ipaddress.ip_network(kc.SERVICE_CIDR), ipaddress.ip_network(kc.CLUSTER_CIDR)}
    (range_,) = ipam["ranges"][0]
    assert range_ == {"subnet": kc.POD_SUBNET, "gateway": kc.NODE_IP}


def test_addresses_are_consistent() -> None:
    pods, cluster, services = (ipaddress.IPv4Network(n) for n in (kc.POD_SUBNET, kc.CLUSTER_CIDR, kc.SERVICE_CIDR))
    assert ipaddress.ip_address(kc.NODE_IP) in pods and pods.subnet_of(cluster)
    assert ipaddress.ip_address(kc.API_SERVICE_IP) in services and not services.overlaps(cluster)
    assert ipaddress.ip_address(kc.API_SERVICE_IP) == next(services.hosts())  # the apiserver's ClusterIP


def test_layout_keeps_every_file_under_its_directory(tmp_path: Path) -> None:
    lay = kc.Layout(tmp_path / "x" / ".." / "c")
    assert lay.root == (tmp_path / "c").resolve()
    for value in vars(lay).values():
        assert Path(value).is_relative_to(lay.root)
    assert lay.log("kubelet") == lay.logs / "kubelet.log"


# ------------------------------------------------------------------------------------------ registry trust

def test_trust_registry_allows_plain_http_pull_and_resolve_only(tmp_path: Path) -> None:
    c = kc.Cluster(tmp_path)
    c.trust_registry("127.0.0.1:5000")
    hosts = c.lay.registry_hosts / "127.0.0.1:5000" / "hosts.toml"
    cfg = tomllib.loads(hosts.read_text())
    assert cfg["server"] == "http://127.0.0.1:5000"
    assert cfg["host"] == {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}}
    # where containerd's config looks for it
    path = tomllib.loads(kc.containerd_config(c.lay))["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    assert hosts.parent.parent == Path(path["config_path"])
    # a second registry gets its own folder; the first is left as it was
    c.trust_registry("127.0.0.1:5001")
    assert sorted(p.name for p in c.lay.registry_hosts.iterdir()) == ["127.0.0.1:5000", "127.0.0.1:5001"]
    assert tomllib.loads(hosts.read_text()) == cfg


def test_locally_built_images_are_pulled_from_the_nodes_registry(tmp_path: Path) -> None:
    """e2e.local/NAME:TAG (the names ci/images/build-e2e.sh gives) resolve to the node's registry over plain HTTP,
    so the kubelet pulls the pause image (and the others) from a registry, not from an import."""
    c = kc.Cluster(tmp_path)
    c.trust_registry(kc.IMAGE_NAMESPACE, kc.REGISTRY)
    cfg = tomllib.loads((c.lay.registry_hosts / "e2e.local" / "hosts.toml").read_text())
    assert cfg == {"server": f"http://{kc.NODE_IP}:5000",
                   "host": {f"http://{kc.NODE_IP}:5000": {"capabilities": ["pull", "resolve"]}}}
    assert kc.PAUSE_IMAGE.startswith("e2e.local/")
    assert "registry" in kc.COMPONENTS
    assert kc.COMPONENTS.index("registry") < kc.COMPONENTS.index("containerd")


def oci_archive(path: Path, index: Any) -> Path:
    data = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_ref_reads_the_image_name_and_refuses_what_has_none(tmp_path: Path) -> None:
    named = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "annotations": {"org.opencontainers.image.ref.name":
                                                                "e2e.local/pause:3.10"}}]}
    assert kc.archive_ref(oci_archive(tmp_path / "a.tar", named)) == "e2e.local/pause:3.10"
    for bad, what in ((oci_archive(tmp_path / "b.tar", {"manifests": [{}]}), "KeyError"),
                      (oci_archive(tmp_path / "c.tar", {"manifests": []}), "IndexError"),
                      (tmp_path / "missing.tar", "FileNotFoundError")):
        with pytest.raises(StackError) as e:
            kc.archive_ref(bad)
        assert str(e.value).startswith(f"{bad}: not an OCI archive with an image name ({what}")
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ status and the CLI

def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher.cluster", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.parametrize(("args", "named"), [
    ((), "the following arguments are required"),
    (("bogus",), "'bogus'"),
    (("status", "--bogus"), "--bogus"),
    (("status", "--dir"), "--dir"),
], ids=["no-verb", "unknown-verb", "bad-flag", "flag-without-value"])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...], named: str) -> None:
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m launcher.cluster") and "error:" in lines[0] and named in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_directory_never_started_says_not_running_and_creates_nothing(tmp_path: Path) -> None:
    d = tmp_path / "never-started"
    r = cli("status", "--dir", str(d), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"running": False}
    assert not d.exists()


def test_status_counts_a_recorded_pid_alive_only_when_its_command_line_names_the_directory(tmp_path: Path) -> None:
    """The marker that keeps `down` from killing a process that reused a recorded pid. The test starts its own
    process naming the directory, and records its own pid (a live process that does not) for another component.
    No tokens.csv: status cannot reach any apiserver."""
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)],
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while str(tmp_path) not in kc._pid_cmdline(mine.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (tmp_path / "state.json").write_text(json.dumps({"pids": {"etcd": mine.pid, "kubelet": os.getpid()}}))
        st = kc.Cluster(tmp_path).status()
    finally:
        mine.kill()
        mine.wait(timeout=10)
    assert st["running"] is True and st["kubeconfig"] == str(tmp_path / "kubeconfig")
    assert st["components"] == {n: n == "etcd" for n in kc.COMPONENTS}
    assert "node_ready" not in st
    # and once that process is gone, it is not alive either
    assert kc.Cluster(tmp_path).status()["components"]["etcd"] is False


def test_a_state_file_that_is_not_json_reads_as_never_started(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    assert kc.Cluster(tmp_path).status() == {"running": False}


# ------------------------------------------------------------------------------------------ teardown, pure parts

@pytest.mark.parametrize(("chain", "ours"), [
    ("KUBE-SERVICES", True), ("KUBE-FIREWALL", True), ("KUBE-SEP-ABCDEF0123456789", True), (kc.ISOLATE_CHAIN, True),
    ("INPUT", False), ("FORWARD", False), ("DOCKER", False), ("DOCKER-ISOLATION-STAGE-1", False),
    ("KUBE", False), ("kube-services", False), ("E2E-ISOLATE-2", False), ("CNI-FORWARD", False),
])
def test_only_the_clusters_chains_are_ours(chain: str, ours: bool) -> None:
    assert kc.is_cluster_chain(chain) is ours


NAT_RULES = """-P PREROUTING ACCEPT
-P OUTPUT ACCEPT
-N DOCKER
-N KUBE-SERVICES
-N KUBE-SVC-NPX46M4PTMTKRN6Y
-N KUBE-POSTROUTING
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SVC-NPX46M4PTMTKRN6Y
""".splitlines()  # noqa: E501 - `iptables -S` lines are as long as they are


def test_chain_removal_unhooks_flushes_then_deletes_only_our_chains() -> None:
    steps = kc.chain_removal(NAT_RULES, kc.is_cluster_chain)
    ours = ["KUBE-SERVICES", "KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-POSTROUTING"]
    assert steps == [
        ["-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"],
        ["-D", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"],
        ["-D", "POSTROUTING", "-m", "comment", "--comment", "kubernetes postrouting rules", "-j",
         "KUBE-POSTROUTING"],
        *(["-F", c] for c in ours),
        *(["-X", c] for c in ours),  # every chain flushed before any is deleted: they jump to each other
    ]
    assert not any("DOCKER" in s or "MASQUERADE" in s for s in steps)


def test_chain_removal_does_nothing_to_a_table_without_our_chains() -> None:
    rules = [r for r in NAT_RULES if "KUBE-" not in r]
    assert kc.chain_removal(rules, kc.is_cluster_chain) == []
    assert kc.chain_removal([], kc.is_cluster_chain) == []


def test_filter_table_isolation_hook_is_removed() -> None:
    rules = ["-P FORWARD DROP", f"-N {kc.ISOLATE_CHAIN}", "-N KUBE-FIREWALL",
             f"-A FORWARD -j {kc.ISOLATE_CHAIN}", "-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL",
             f"-A {kc.ISOLATE_CHAIN} -i {kc.BRIDGE} ! -o {kc.BRIDGE} -j DROP", "-A FORWARD -j ACCEPT"]
    steps = kc.chain_removal(rules, kc.is_cluster_chain)
    assert steps == [["-D", "FORWARD", "-j", kc.ISOLATE_CHAIN], ["-D", "INPUT", "-j", "KUBE-FIREWALL"],
                     ["-D", "OUTPUT", "-j", "KUBE-FIREWALL"], ["-F", kc.ISOLATE_CHAIN], ["-F", "KUBE-FIREWALL"],
                     ["-X", kc.ISOLATE_CHAIN], ["-X", "KUBE-FIREWALL"]]


def test_mounts_under_the_cluster_directory_deepest_first(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    line = "{id} 1 0:{id} / {mp} rw,relatime shared:1 - tmpfs tmpfs rw"
    points = [f"{root}/kubelet", f"{root}/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/data",
              f"{root}/kubelet", f"{root}/containerd/state/run\\040with\\040space/rootfs",
              f"{root}-other/kubelet", str(root), "/", "/proc"]
    mountinfo = "\n".join(line.format(id=i + 30, mp=mp) for i, mp in enumerate(points)) + "\n"
    assert kc.mounts_under(mountinfo, root) == [
        f"{root}/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/data",
        f"{root}/containerd/state/run\\040with\\040space/rootfs",
        f"{root}/kubelet",
    ]


def test_mounts_under_reads_this_machines_mountinfo(tmp_path: Path) -> None:
    real = Path("/proc/self/mountinfo").read_text()  # read only
    assert kc.mounts_under(real, tmp_path) == []
    nested = next(m for m in ("/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup") if os.path.ismount(m))
    found = kc.mounts_under(real, Path(nested).parent)
    assert nested in found and all(os.path.ismount(m) for m in found if "\\" not in m), found


# ------------------------------------------------------------------------------------------ run()

def test_run_returns_stdout_and_says_why_a_command_failed() -> None:
    script = "echo out; echo first >&2; echo last-line >&2; exit 3"
    assert kc.run(["sh", "-c", script], check=False) == "out\n"
    with pytest.raises(StackError, match=r"failed \(exit 3\): last-line$"):
        kc.run(["sh", "-c", script])


def test_run_names_a_missing_tool_and_bounds_time(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match="system-deps.sh cluster"):
        kc.run([str(tmp_path / "no-such-tool")])
    with pytest.raises(StackError, match="timed out after"):
        kc.run(["sleep", "30"], timeout=0.3)
