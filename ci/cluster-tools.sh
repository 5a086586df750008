#!/usr/bin/env bash
# Provides the binaries of the e2e cluster in .tools/cluster-bin: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy and kubectl built from k8s.io/kubernetes at $KUBERNETES_VERSION (through the
# wrapper module ci/k8s, see its go.mod), and CoreDNS at $COREDNS_VERSION, all from the Go module proxy.
# Idempotent: a binary that reports the pinned version is kept. The Go build and module caches are Go's defaults,
# so a second clone or a rebuild after a bump reuses them (cold: ~10 min of both cores, peak ~3.2 GB).
# Runs under `nice` so a shared machine keeps its CPU for others.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/ci/versions.env"
bin="$root/.tools/cluster-bin"
mkdir -p "$bin"
command -v go >/dev/null || { echo "cluster-tools: Go is needed to build Kubernetes $KUBERNETES_VERSION (install golang)" >&2; exit 1; }

want=$(grep -oE "k8s.io/kubernetes v[0-9.]+" "$root/ci/k8s/go.mod" | head -1 | cut -d" " -f2)
if [ "$want" != "$KUBERNETES_VERSION" ]; then
  echo "cluster-tools: ci/k8s/go.mod requires k8s.io/kubernetes $want but versions.env pins $KUBERNETES_VERSION" >&2; exit 1
fi

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
stale=()
for c in "${k8s_cmds[@]}"; do
  if [ "$c" = kubectl ]; then v=$("$bin/$c" version --client 2>/dev/null | sed -n 's/^Client Version: //p' || true)
  else v=$("$bin/$c" --version 2>/dev/null | awk '{print $2}' || true); fi
  [ "$v" = "$KUBERNETES_VERSION" ] || stale+=("$c")
done
if [ ${#stale[@]} -gt 0 ]; then
  echo "cluster-tools: building ${stale[*]} $KUBERNETES_VERSION from source with Go (first run ~10 min)"
  ver=${KUBERNETES_VERSION#v}; major=${ver%%.*}; minor=${ver#*.}; minor=${minor%%.*}
  ld="-s -w"
  # The same version stamps as Kubernetes' hack/lib/version.sh: the apiserver reports them (helm's kubeVersion).
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  pkgs=(); for c in "${stale[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  start=$SECONDS
  (cd "$root/ci/k8s" && nice -n 15 go build -trimpath -ldflags "$ld" -o "$bin/" "${pkgs[@]}")
  echo "cluster-tools: built in $((SECONDS - start)) s"
fi

if [ "$("$bin/coredns" -version 2>/dev/null | sed -n 's/^CoreDNS-//p' | head -1)" != "${COREDNS_VERSION#v}" ]; then
  echo "cluster-tools: building coredns $COREDNS_VERSION from source with Go"
  GOBIN="$bin" nice -n 15 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
fi
echo "cluster-tools: kubernetes $KUBERNETES_VERSION, coredns $COREDNS_VERSION in $bin"
