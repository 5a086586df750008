"""A single-node Kubernetes cluster on this machine, for `make cluster-up` / `make e2e`: everything under
.tools/cluster/ (override with --dir), torn down completely by `down`.

Pieces: etcd (Debian), kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy built by
ci/cluster-tools.sh into .tools/cluster-bin, CoreDNS (same), and its own containerd (Debian's binary, own config,
root, state and socket: never the host's /etc/containerd or /var/lib/containerd) with runc and Debian's CNI plugins.

Networking: one bridge, ``e2e0``, holding the node address 10.244.0.1/24; pods get 10.244.0.0/24 from host-local
and routes only to the pod network, the Service network and the node (no default route); a FORWARD rule drops
anything from the bridge to any other interface, and nothing is masqueraded. Every component listens on the node
address (nothing on 127.0.0.1 that other work on this machine could collide with); CoreDNS too, as clusterDNS.

CLI::

    python -m launcher.cluster up [--dir DIR] [--image-archive FILE ...]   # prints the kubeconfig path
    python -m launcher.cluster down [--dir DIR]
    python -m launcher.cluster status [--dir DIR]

Images: the node pulls every image from an OCI registry, as a real one does; none comes from the internet. The
cluster runs its own (CNCF Distribution, .tools/bin/registry of `make tools`) on REGISTRY (the node address, port
5000): ``--image-archive`` pushes OCI archives named ``e2e.local/NAME:TAG`` (ci/images/build-e2e.sh) to it as
``NAME:TAG``, and containerd's registry hosts config (``certs.d``) sends pulls of ``e2e.local/...`` there, the pause
image (PAUSE_IMAGE) first among them. Other local registries (127.0.0.1:PORT, e.g. the release rehearsal's) are
trusted over plain HTTP with ``--registry`` or ``Cluster.trust_registry``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import MissingTool, StackError
from .net import http, wait_until
from .pins import PINS, ROOT, TOOLS
from .registry import Registry, registry_executable

DEFAULT_DIR = TOOLS / "cluster"
BIN = TOOLS / "cluster-bin"
KUBERNETES_VERSION = PINS["KUBERNETES_VERSION"]
NODE_NAME = "e2e-node"
BRIDGE = "e2e0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
ETCD_PORTS = (2379, 2380)
CLUSTER_DOMAIN = "cluster.local"
IMAGE_NAMESPACE = "e2e.local"  # the name of the locally built images; pulled from the node's registry
PAUSE_IMAGE = f"{IMAGE_NAMESPACE}/pause:3.10"
REGISTRY_PORT = 5000
REGISTRY = f"{NODE_IP}:{REGISTRY_PORT}"
CNI_BIN = Path("/usr/lib/cni")
ISOLATE_CHAIN = "E2E-ISOLATE"
# The order components start in; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "registry", "containerd",
              "kubelet", "kube-proxy", "coredns")


def _progress(msg: str) -> None:
    print(f"cluster: {msg}", flush=True)


def run(cmd: Sequence[str], check: bool = True, timeout: float = 120) -> str:
    """Run a command, return its stdout; StackError with its stderr when it fails and check is set."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MissingTool(cmd[0], "run `bash ci/system-deps.sh cluster` (as root)") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"`{' '.join(cmd)}` timed out after {timeout:.0f}s") from None
    if check and r.returncode != 0:
        err = (r.stderr or r.stdout).strip().splitlines()
        raise StackError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {err[-1] if err else ''}")
    return r.stdout


class Layout:
    """Where each file of a cluster lives, under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.kubeconfig = self.root / "kubeconfig"
        self.state = self.root / "state.json"
        self.etcd = self.root / "etcd"
        self.containerd = self.root / "containerd"
        self.containerd_sock = self.containerd / "containerd.sock"
        self.registry_hosts = self.containerd / "certs.d"  # containerd's hosts config, one folder per registry
        self.kubelet = self.root / "kubelet"
        self.cni = self.root / "cni"
        self.config = self.root / "config"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


# ------------------------------------------------------------------------------------------ certificates

def _openssl(*args: str) -> None:
    run(["openssl", *args], timeout=60)


def make_pki(lay: Layout) -> None:
    """A CA, the apiserver's serving certificate (the names and addresses clients use) and the service-account key
    pair. Kept across `up`s: a second `up` of the same directory keeps its kubeconfig valid."""
    p = lay.pki
    p.mkdir(parents=True, exist_ok=True)
    if not (p / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p / "ca.key"), "-out",
                 str(p / "ca.crt"), "-days", "3650", "-subj", "/CN=e2e-cluster-ca")
    if not (p / "apiserver.crt").exists():
        sans = ",".join([f"IP:{NODE_IP}", f"IP:{API_SERVICE_IP}", "IP:127.0.0.1", "DNS:kubernetes",
                         "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                         f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}", "DNS:localhost"])
        ext = p / "apiserver.ext"
        ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,"
                       "keyEncipherment\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p / "apiserver.key"), "-out",
                 str(p / "apiserver.csr"), "-subj", "/CN=kube-apiserver")
        _openssl("x509", "-req", "-in", str(p / "apiserver.csr"), "-CA", str(p / "ca.crt"), "-CAkey",
                 str(p / "ca.key"), "-CAcreateserial", "-out", str(p / "apiserver.crt"), "-days", "3650",
                 "-extfile", str(ext))
    if not (p / "sa.key").exists():
        _openssl("genrsa", "-out", str(p / "sa.key"), "2048")
        _openssl("rsa", "-in", str(p / "sa.key"), "-pubout", "-out", str(p / "sa.pub"))
    if not (p / "tokens.csv").exists():
        # One static token in system:masters for the admin kubeconfig and the node's own components.
        write_private(p / "tokens.csv", f"{secrets.token_hex(24)},admin,admin,system:masters\n")


def write_private(path: Path, text: str) -> None:
    """A file only its owner can read, from its first byte (a token written then chmodded is readable by anyone
    for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


def admin_token(lay: Layout) -> str:
    return (lay.pki / "tokens.csv").read_text().split(",", 1)[0]


def write_kubeconfig(lay: Layout) -> None:
    ca = base64.b64encode((lay.pki / "ca.crt").read_bytes()).decode()
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": f"https://{NODE_IP}:{API_PORT}",
                                                 "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"token": admin_token(lay)}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
    }
    write_private(lay.kubeconfig, json.dumps(cfg, indent=2) + "\n")  # JSON is YAML: kubectl, helm, clients read it


# ------------------------------------------------------------------------------------------ configuration files

def cni_conflist(lay: Layout) -> dict[str, Any]:
    """The pods' network: a bridge on the node address, addresses from POD_SUBNET, no masquerade and no default
    route (pods reach the pod network, the Services and the node, nothing off this machine)."""
    return {
        "cniVersion": "0.4.0", "name": "e2e",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                      "dataDir": str(lay.cni / "ipam"),
                      # No default route: pods reach the pod network (on-link), Services and the node only.
                      "routes": [{"dst": SERVICE_CIDR}, {"dst": CLUSTER_CIDR}]}},
        ],
    }


def containerd_config(lay: Layout) -> str:
    """config.toml of the node's own containerd: root, state and sockets under lay.containerd (never the
    host's), the CRI plugin with the pause image, the CNI conflist of lay.cni and the registry hosts of
    lay.registry_hosts."""
    c = lay.containerd
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{lay.containerd_sock}"
[ttrpc]
  address = "{c / 'containerd.sock.ttrpc'}"
[debug]
  address = "{c / 'debug.sock'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The kubelet asks for negative oom_score_adj values; this VM lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{lay.cni / 'net.d'}"
    max_conf_num = 1
  [{cri}.registry]
    config_path = "{lay.registry_hosts}"
"""


def kubelet_config(lay: Layout) -> dict[str, Any]:
    """The KubeletConfiguration: cgroup v1 with cgroupfs (no systemd), the cluster's DNS only, the node's own
    containerd."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": NODE_IP, "port": 10250, "readOnlyPort": 0, "healthzBindAddress": NODE_IP,
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "clusterDNS": [NODE_IP], "clusterDomain": CLUSTER_DOMAIN, "resolvConf": str(lay.config / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{lay.containerd_sock}",
        "imageServiceEndpoint": f"unix://{lay.containerd_sock}",
        "serializeImagePulls": False, "registerNode": True,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "makeIPTablesUtilChains": False, "localStorageCapacityIsolation": False,
        "shutdownGracePeriod": "0s", "syncFrequency": "10s", "fileCheckFrequency": "10s",
        "podPidsLimit": 4096, "oomScoreAdj": 0, "maxPods": 50, "enableServer": True,
        "enableDebuggingHandlers": True,
    }


def kube_proxy_config(lay: Layout) -> dict[str, Any]:
    """The KubeProxyConfiguration: iptables mode, everything bound to the node address."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clientConnection": {"kubeconfig": str(lay.kubeconfig)},
        "bindAddress": NODE_IP, "healthzBindAddress": f"{NODE_IP}:10256",
        "metricsBindAddress": f"{NODE_IP}:10249", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": NODE_NAME,
        "conntrack": {"maxPerCore": 0, "min": 0}, "nodePortAddresses": [f"{NODE_IP}/32"],
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False, "syncPeriod": "10s",
                     "minSyncPeriod": "1s"},
        "oomScoreAdj": 0,  # a negative one needs CAP_SYS_RESOURCE, which this VM lacks
    }


def corefile_text(lay: Layout) -> str:
    """CoreDNS's Corefile: port 53 on the node address, the cluster's names from the apiserver, nothing
    forwarded anywhere else."""
    return f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {lay.kubeconfig} e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def archive_ref(archive: Path) -> str:
    """The image name an OCI archive carries (index.json's org.opencontainers.image.ref.name)."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("index.json")
            index = json.loads(member.read()) if member else {}
        return str(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])
    except (OSError, tarfile.TarError, KeyError, IndexError, TypeError, ValueError) as e:
        raise StackError(f"{archive}: not an OCI archive with an image name ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------------------ API access

class Api:
    """The apiserver as admin, with the cluster's CA (enough for readiness checks and teardown)."""

    def __init__(self, lay: Layout) -> None:
        self.base = f"https://{NODE_IP}:{API_PORT}"
        self.token = admin_token(lay)
        self.ctx = ssl.create_default_context(cafile=str(lay.pki / "ca.crt"))
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPSHandler(context=self.ctx))

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        return http(method, self.base + path, body, timeout, headers={"Authorization": f"Bearer {self.token}"},
                    opener=self.opener)

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        if status != 200:
            raise StackError(f"GET {path}: HTTP {status}: {body}")
        return body


def node_ready(api: Api) -> bool:
    status, node = api.call("GET", f"/api/v1/nodes/{NODE_NAME}")
    if status != 200:
        return False
    conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    return conds.get("Ready") == "True" and bool(node.get("spec", {}).get("podCIDR"))


# ------------------------------------------------------------------------------------------ processes

def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# The components this process started, kept so they are reaped when `down` stops them (and never garbage
# collected while running, which Python reports as a ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(lay: Layout, name: str, cmd: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Start a component detached (own session, outlives this process: `down` stops it), output in logs/NAME.log."""
    lay.logs.mkdir(parents=True, exist_ok=True)
    with open(lay.log(name), "ab") as out:
        p = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=lay.root, start_new_session=True, close_fds=True,
                             env={**os.environ, **(env or {})})
    _CHILDREN[p.pid] = p
    return p.pid


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Cluster:
    """Brings the node up in `dir`, or down. State (pids with their command-line markers) in state.json."""

    def __init__(self, directory: Path = DEFAULT_DIR, progress: Callable[[str], None] = _progress) -> None:
        self.lay = Layout(directory)
        self.progress = progress
        self.pids: dict[str, int] = {}

    # ---- state
    def _save(self, extra: dict[str, Any] | None = None) -> None:
        state = self.load() or {}
        state.update({"pids": self.pids, "kubeconfig": str(self.lay.kubeconfig), "node_ip": NODE_IP,
                      "dir": str(self.lay.root)})
        state.update(extra or {})
        self.lay.state.write_text(json.dumps(state, indent=2) + "\n")

    def load(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.lay.state.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _marker(self) -> str:
        return str(self.lay.root)

    def _alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        return bool(pid) and self._marker() in _pid_cmdline(pid or 0)

    def _check(self, name: str) -> Callable[[], None]:
        def check() -> None:
            if not self._alive(name):
                raise StackError(f"{name} exited during startup; last lines of {self.lay.log(name)}:\n"
                                 f"{_log_tail(self.lay.log(name))}")
        return check

    def _start(self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.pids[name] = spawn(self.lay, name, cmd, env)
        self._save()
        deadline = time.monotonic() + 10  # until the child has exec'ed (its command line names our directory)
        while not self._alive(name) and time.monotonic() < deadline and Path(f"/proc/{self.pids[name]}").exists():
            time.sleep(0.05)

    # ---- up
    def up(self, image_archives: Sequence[Path] = (), registries: Sequence[str] = ()) -> None:
        t0 = time.monotonic()
        self._preflight()
        if self.load() and any(_pid_cmdline(p) for p in (self.load() or {}).get("pids", {}).values()):
            self.progress("a cluster of this directory is (partly) running: tearing it down first")
            self.down()
        lay = self.lay
        for d in (lay.logs, lay.config, lay.cni):
            d.mkdir(parents=True, exist_ok=True)
        original_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        self._save({"ip_forward": original_forward, "started": time.time()})
        make_pki(lay)
        write_kubeconfig(lay)
        self._network()
        try:
            self._etcd()
            self._apiserver()
            self._controllers()
            self._registry()
            self._containerd(registries)
            for archive in image_archives:
                self.publish(archive)
            self._kubelet()
            self._kube_proxy()
            self._coredns()
            api = Api(lay)
            wait_until(lambda: node_ready(api), 120, f"node {NODE_NAME} to be Ready with a podCIDR",
                       interval=1, check=self._check("kubelet"))
            self._wait_dns()
        except BaseException:
            self.progress(f"startup failed; logs are in {lay.logs}; tearing down")
            with contextlib.suppress(Exception):
                self.down(quiet=True)
            raise
        self._save({"up_seconds": round(time.monotonic() - t0, 1)})
        self.progress(f"node {NODE_NAME} Ready in {time.monotonic() - t0:.0f}s; KUBECONFIG={lay.kubeconfig}")

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise StackError("the cluster needs root (network namespaces, mounts, iptables)")
        missing = [c for c in COMPONENTS if c not in ("etcd", "registry", "containerd") and not (BIN / c).exists()]
        if missing:
            raise MissingTool(", ".join(missing), f"not in {BIN}: run `bash ci/cluster-tools.sh`")
        registry_executable()  # MissingTool naming `make tools`
        for tool in ("etcd", "containerd", "ctr", "runc", "iptables", "ip6tables", "ip", "openssl", "skopeo"):
            if shutil.which(tool) is None:
                raise MissingTool(tool, "run `bash ci/system-deps.sh cluster` (as root)")
        if not (CNI_BIN / "bridge").exists():
            raise MissingTool(str(CNI_BIN / "bridge"), "run `bash ci/system-deps.sh cluster` (as root)")

    def _network(self) -> None:
        """The bridge with the node address, forwarding on (routed Service traffic) but never off this machine."""
        if not run(["ip", "link", "show", BRIDGE], check=False):
            run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for ipt in ("iptables", "ip6tables"):
            run([ipt, "-w", "-N", ISOLATE_CHAIN], check=False)
            run([ipt, "-w", "-F", ISOLATE_CHAIN])
            run([ipt, "-w", "-A", ISOLATE_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"])
            if subprocess.run([ipt, "-w", "-C", "FORWARD", "-j", ISOLATE_CHAIN], capture_output=True).returncode:
                run([ipt, "-w", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN])
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        (self.lay.cni / "net.d").mkdir(parents=True, exist_ok=True)
        (self.lay.cni / "net.d" / "10-e2e.conflist").write_text(json.dumps(cni_conflist(self.lay), indent=2) + "\n")

    def _etcd(self) -> None:
        self.progress("starting etcd")
        c, p = ETCD_PORTS
        self._start("etcd", [
            "etcd", "--name", "e2e", "--data-dir", str(self.lay.etcd),
            "--listen-client-urls", f"http://{NODE_IP}:{c}", "--advertise-client-urls", f"http://{NODE_IP}:{c}",
            "--listen-peer-urls", f"http://{NODE_IP}:{p}", "--initial-advertise-peer-urls", f"http://{NODE_IP}:{p}",
            "--initial-cluster", f"e2e=http://{NODE_IP}:{p}", "--listen-metrics-urls", "",
            "--quota-backend-bytes", str(1 << 30), "--log-level", "warn"])

        def healthy() -> bool:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://{NODE_IP}:{c}/health", timeout=2) as r:
                return b'"true"' in r.read()
        wait_until(healthy, 60, "etcd to be healthy", interval=0.5, check=self._check("etcd"))

    def _apiserver(self) -> None:
        self.progress("starting kube-apiserver")
        p = self.lay.pki
        self._start("kube-apiserver", [
            str(BIN / "kube-apiserver"), f"--etcd-servers=http://{NODE_IP}:{ETCD_PORTS[0]}",
            f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}", f"--token-auth-file={p / 'tokens.csv'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC", "--allow-privileged=false",
            "--kubelet-preferred-address-types=InternalIP",
            f"--cert-dir={p}", "--profiling=false", "--enable-priority-and-fairness=false", "--v=1"])
        api = Api(self.lay)
        wait_until(lambda: api.call("GET", "/readyz", timeout=3)[0] == 200, 120, "kube-apiserver /readyz",
                   interval=1, check=self._check("kube-apiserver"))

    def _controllers(self) -> None:
        self.progress("starting kube-controller-manager and kube-scheduler")
        kc = str(self.lay.kubeconfig)
        p = self.lay.pki
        self._start("kube-controller-manager", [
            str(BIN / "kube-controller-manager"), f"--kubeconfig={kc}", f"--bind-address={NODE_IP}",
            "--leader-elect=false", f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}", "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}",
            "--node-cidr-mask-size=24", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=false", "--profiling=false", "--v=1"])
        self._start("kube-scheduler", [
            str(BIN / "kube-scheduler"), f"--kubeconfig={kc}", f"--bind-address={NODE_IP}", "--leader-elect=false",
            "--profiling=false", "--v=1"])

    def _containerd(self, registries: Sequence[str]) -> None:
        self.progress("starting containerd")
        c = self.lay.containerd
        self.lay.registry_hosts.mkdir(parents=True, exist_ok=True)
        self.trust_registry(IMAGE_NAMESPACE, REGISTRY)
        for reg in registries:
            self.trust_registry(reg)
        (c / "config.toml").write_text(containerd_config(self.lay))
        self._start("containerd", ["containerd", "--config", str(c / "config.toml")])
        wait_until(lambda: self.ctr("version", check=False), 60, "containerd to answer", interval=0.5,
                   check=self._check("containerd"))

    def trust_registry(self, name: str, address: str | None = None) -> None:
        """Let the node pull images named `name` (a registry HOST:PORT, or a name like e2e.local) from the local
        OCI registry at `address` (default: `name` itself) over plain HTTP. containerd reads its hosts config
        (certs.d) on each pull, so this works on a running node too."""
        address = address or name
        d = self.lay.registry_hosts / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(f'server = "http://{address}"\n\n[host."http://{address}"]\n'
                                      '  capabilities = ["pull", "resolve"]\n')

    def _registry(self) -> None:
        self.progress(f"starting the node's registry on {REGISTRY}")
        reg = Registry(self.lay.root, port=REGISTRY_PORT, host=NODE_IP)
        reg.prepare()
        self._start("registry", reg.command(), dict(reg.env()))
        wait_until(reg.ready, 30, f"the registry to answer on {REGISTRY}", interval=0.3,
                   check=self._check("registry"))

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return run(["ctr", "--address", str(self.lay.containerd_sock), "--namespace", "k8s.io", *args],
                   check=check, timeout=timeout)

    def publish(self, archive: Path) -> str:
        """Push an OCI archive named e2e.local/NAME:TAG (its index annotation) to the node's registry as NAME:TAG,
        where the node pulls it from. A copy of that name already in the node's store is dropped, so the next pod
        pulls the image just pushed (a rebuilt image keeps its tag). Returns the image's name."""
        ref = archive_ref(archive)
        prefix = f"{IMAGE_NAMESPACE}/"
        if not ref.startswith(prefix):
            raise StackError(f"{archive}: image {ref!r} is not named {prefix}NAME:TAG")
        self.progress(f"pushing {archive.name} ({ref}) to {REGISTRY}")
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive}",
             f"docker://{REGISTRY}/{ref.removeprefix(prefix)}"], timeout=600)
        self.ctr("images", "rm", ref, check=False)
        return ref

    def _kubelet(self) -> None:
        self.progress("starting kubelet")
        cfg = self.lay.config
        (cfg / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")  # nothing outside: the cluster's DNS only
        (cfg / "kubelet.json").write_text(json.dumps(kubelet_config(self.lay), indent=2) + "\n")
        self._start("kubelet", [
            str(BIN / "kubelet"), f"--config={cfg / 'kubelet.json'}", f"--kubeconfig={self.lay.kubeconfig}",
            f"--root-dir={self.lay.kubelet}", f"--cert-dir={self.lay.kubelet / 'pki'}", f"--node-ip={NODE_IP}",
            f"--hostname-override={NODE_NAME}", "--v=1"])

    def _kube_proxy(self) -> None:
        self.progress("starting kube-proxy")
        (self.lay.config / "kube-proxy.json").write_text(json.dumps(kube_proxy_config(self.lay), indent=2) + "\n")
        self._start("kube-proxy", [str(BIN / "kube-proxy"), f"--config={self.lay.config / 'kube-proxy.json'}",
                                   "--v=1"])

    def _coredns(self) -> None:
        self.progress("starting CoreDNS")
        corefile = self.lay.config / "Corefile"
        corefile.write_text(corefile_text(self.lay))
        self._start("coredns", [str(BIN / "coredns"), "-conf", str(corefile)])

    def _wait_dns(self) -> None:
        # Asked of CoreDNS directly (the host's resolver knows nothing of the cluster).
        wait_until(lambda: dns_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == API_SERVICE_IP, 60,
                   "CoreDNS to resolve kubernetes.default", interval=0.5, check=self._check("coredns"))

    # ---- down
    def down(self, quiet: bool = False) -> None:
        """Stop everything and remove every trace on the host (idempotent, also after a crash)."""
        t0 = time.monotonic()
        state = self.load() or {}
        self.pids = {k: int(v) for k, v in (state.get("pids") or {}).items()}
        say = (lambda s: None) if quiet else self.progress
        # Pods first, while the kubelet runs: it tears down their sandboxes (CNI DEL, network namespaces).
        if self._alive("kube-apiserver") and self._alive("kubelet") and (self.lay.pki / "tokens.csv").exists():
            with contextlib.suppress(Exception):
                self._drain(say)
        for name in reversed(COMPONENTS):
            if name == "containerd":
                self._kill_containers(say)
            self._stop(name, say)
        self._kill_leftovers(say)
        self._unmount(say)
        self._remove_netns(say)
        self._remove_network(say, state.get("ip_forward"))
        self._remove_cgroups()
        # Keep pki/ and logs/ (a second `up` reuses the CA; logs explain a failure); drop everything with state.
        for d in (self.lay.etcd, self.lay.kubelet, self.lay.containerd, self.lay.cni):
            shutil.rmtree(d, ignore_errors=True)
        self.lay.state.unlink(missing_ok=True)
        say(f"down in {time.monotonic() - t0:.0f}s")

    def _drain(self, say: Callable[[str], None]) -> None:
        api = Api(self.lay)
        for name in ("kube-controller-manager", "kube-scheduler"):  # nothing recreates the pods
            self._stop(name, say)
        pods = api.get("/api/v1/pods").get("items", [])
        if not pods:
            return
        say(f"deleting {len(pods)} pod(s) so the kubelet tears down their sandboxes")
        for pod in pods:
            md = pod["metadata"]
            api.call("DELETE", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}",
                     {"gracePeriodSeconds": 0})
        with contextlib.suppress(StackError):
            wait_until(lambda: not api.get("/api/v1/pods").get("items"), 60, "the pods to be gone", interval=1)
            # and for the kubelet to stop their sandboxes (CNI DEL: veth, IP and network namespace released)
            wait_until(lambda: not self.ctr("tasks", "ls", "-q", check=False).strip(), 30,
                       "the pods' sandboxes to stop", interval=0.5)

    def _stop(self, name: str, say: Callable[[str], None], timeout: float = 20) -> None:
        pid = self.pids.get(name)
        if not pid or not self._alive(name):
            if pid:
                _reap(pid)
            return
        say(f"stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(name):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while self._alive(name) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
        _reap(pid)

    def _kill_containers(self, say: Callable[[str], None]) -> None:
        if not self._alive("containerd"):
            return
        tasks = [line.split()[0] for line in self.ctr("tasks", "ls", "-q", check=False).splitlines() if line.strip()]
        if tasks:
            say(f"killing {len(tasks)} container task(s) left in containerd")
        for t in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", t, check=False, timeout=30)
        for t in tasks:
            for _ in range(50):
                if not self.ctr("tasks", "delete", t, check=False, timeout=30) and \
                        t in self.ctr("tasks", "ls", "-q", check=False):
                    time.sleep(0.1)
                else:
                    break

    def _kill_leftovers(self, say: Callable[[str], None]) -> None:
        """containerd's shims (they outlive containerd) and any process still in the pods' cgroups."""
        sock = str(self.lay.containerd_sock)
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            cmd = _pid_cmdline(int(d.name))
            if "containerd-shim" in cmd and sock in cmd:
                say(f"killing leftover shim {d.name}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(d.name), signal.SIGKILL)
        for procs in Path("/sys/fs/cgroup/pids").glob("kubepods*/**/cgroup.procs"):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def _unmount(self, say: Callable[[str], None]) -> None:
        """Every mount under the cluster directory (the kubelet's bind mount of its root, pod volumes, container
        rootfs and shm mounts), deepest first."""
        for _ in range(5):
            ours = mounts_under(Path("/proc/self/mountinfo").read_text(), self.lay.root)
            if not ours:
                return
            say(f"unmounting {len(ours)} mount(s) under {self.lay.root}")
            for m in ours:
                run(["umount", "-l", m.encode().decode("unicode_escape")], check=False)

    def _remove_netns(self, say: Callable[[str], None]) -> None:
        """Network namespaces that still hold an interface whose peer was on our bridge are gone with the veths;
        the named ones the CRI made (/var/run/netns/cni-*) are removed when no process uses them any more and
        their veth sat on our bridge (recorded by the CNI plugin's cache under our cni dir)."""
        cache = Path("/var/lib/cni/results")
        ours: set[str] = set()
        if cache.is_dir():
            for f in cache.glob("e2e-*"):
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(f.read_text())
                    ns = data.get("result", {}).get("interfaces", [])
                    ours.update(i.get("sandbox") for i in ns if i.get("sandbox"))
                f.unlink(missing_ok=True)
        for path in sorted(p for p in ours if p):
            if Path(path).exists():
                say(f"removing network namespace {path}")
                run(["umount", path], check=False)
                with contextlib.suppress(OSError):
                    Path(path).unlink()

    def _remove_network(self, say: Callable[[str], None], ip_forward: str | None) -> None:
        links = run(["ip", "-o", "link", "show", "master", BRIDGE], check=False)
        for line in links.splitlines():
            veth = line.split(":")[1].strip().split("@")[0]
            run(["ip", "link", "delete", veth], check=False)
        if run(["ip", "link", "show", BRIDGE], check=False):
            say(f"removing bridge {BRIDGE}")
            run(["ip", "link", "delete", BRIDGE], check=False)
        for ipt in ("iptables", "ip6tables"):
            remove_chains(ipt, is_cluster_chain)
        if ip_forward in ("0", "1"):
            Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward + "\n")

    def _remove_cgroups(self) -> None:
        for ctl in Path("/sys/fs/cgroup").iterdir():
            top = ctl / "kubepods"
            if not top.is_dir():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()

    def status(self) -> dict[str, Any]:
        state = self.load()
        if not state:
            return {"running": False}
        self.pids = {k: int(v) for k, v in (state.get("pids") or {}).items()}
        out: dict[str, Any] = {"running": True, "kubeconfig": str(self.lay.kubeconfig),
                               "components": {n: self._alive(n) for n in COMPONENTS}}
        with contextlib.suppress(Exception):
            out["node_ready"] = node_ready(Api(self.lay))
        return out


def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """The mount points below root in /proc/self/mountinfo's text (octal escapes kept, as there), deepest first."""
    prefix = str(root) + "/"
    mounts = [line.split()[4] for line in mountinfo.splitlines()]
    return sorted({m for m in mounts if m.startswith(prefix)}, key=len, reverse=True)


def is_cluster_chain(chain: str) -> bool:
    """The iptables chains the cluster leaves behind: the kubelet's and kube-proxy's KUBE-*, and ISOLATE_CHAIN."""
    return chain.startswith("KUBE-") or chain == ISOLATE_CHAIN


def chain_removal(rules: Sequence[str], ours: Callable[[str], bool]) -> list[list[str]]:
    """What removes the chains `ours` selects from one table, given that table's `iptables -S` lines: delete the
    rules of other chains that jump to them (-D ...), then flush (-F) and delete (-X) each of them."""
    chains = [r.split()[1] for r in rules if r.startswith("-N ") and ours(r.split()[1])]
    if not chains:
        return []
    steps: list[list[str]] = []
    for r in rules:
        parts = shlex.split(r)  # comments are quoted: "kubernetes service portals"
        if parts[:1] == ["-A"] and not ours(parts[1]) and "-j" in parts and ours(parts[parts.index("-j") + 1]):
            steps.append(["-D", *parts[1:]])
    steps += [["-F", c] for c in chains]
    steps += [["-X", c] for c in chains]
    return steps


def remove_chains(ipt: str, ours: Callable[[str], bool]) -> None:
    """Delete the chains `ours` selects from every table, with the rules that jump to them from other chains."""
    for table in ("filter", "nat", "mangle", "raw"):
        rules = run([ipt, "-w", "-t", table, "-S"], check=False).splitlines()
        for step in chain_removal(rules, ours):
            run([ipt, "-w", "-t", table, *step], check=False)


def dns_query(name: str, server: str = NODE_IP, timeout: float = 2.0, port: int = 53) -> str | None:
    """The first A record of name from server:port (one UDP query), or None."""
    import socket
    import struct
    qid = secrets.randbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data = s.recv(4096)
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or flags & 0xF or an == 0:
        return None
    i = 12
    for _ in range(qd):  # skip the question
        while data[i]:
            i += data[i] + 1
        i += 5
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            return ".".join(str(b) for b in data[i:i + 4])
        i += rdlen
    return None


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not the usage block before it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = _OneLineParser(prog="python -m launcher.cluster", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"cluster directory (default {DEFAULT_DIR})")
        if name == "up":
            p.add_argument("--image-archive", type=Path, action="append", default=[],
                           help="an OCI archive named e2e.local/NAME:TAG to push to the node's registry "
                                "(repeatable; one must be the pause image)")
            p.add_argument("--registry", action="append", default=[],
                           help="HOST:PORT of a local plain-HTTP OCI registry containerd may pull from")
    args = ap.parse_args(argv)
    cluster = Cluster(args.dir)
    try:
        if args.cmd == "up":
            for a in args.image_archive:
                if not a.is_file():
                    ap.error(f"--image-archive {a}: no such file")
            cluster.up(args.image_archive, args.registry)
            print(cluster.lay.kubeconfig)
        elif args.cmd == "down":
            cluster.down()
        else:
            print(json.dumps(cluster.status(), indent=2))
    except StackError as e:
        print(f"cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Cluster", "Layout", "Api", "NODE_IP", "PAUSE_IMAGE", "REGISTRY", "ROOT", "main"]
