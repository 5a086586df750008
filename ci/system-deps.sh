#!/usr/bin/env bash
# Debian packages make lint and the integration, CDC and browser tests need: shellcheck, PostgreSQL (server
# binaries), Chromium, and the openssl and ss commands (TLS test certificates; the demo's nothing-left-listening
# checks).
# Idempotent: installs only what is missing; apt-get update runs only when something is.
set -euo pipefail
need=()
# make lint: shellcheck on the project's shell scripts (actionlint also runs it on the workflows' run: steps when
# it is on PATH). `system-deps.sh lint` (make lint) checks only this one, so linting never installs the rest.
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ "${1:-}" != lint ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v ss >/dev/null 2>&1 || need+=(iproute2)
  # make image / make release and their tests: buildah (the builder), debootstrap (the local Debian base), podman with
  # runc (runs the built image), skopeo (copies and inspects images in registries).
  for c in buildah debootstrap podman runc skopeo; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
  # debootstrap checks Debian's archive signatures (preinstalled on Debian; a package of its own on Ubuntu CI).
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
  # `system-deps.sh cluster` (make cluster-up / make e2e): also the node of the e2e cluster: containerd, the CNI
  # plugins, etcd, iptables, conntrack and a static busybox (the pause image).
  if [ "${1:-}" = cluster ]; then
    command -v containerd >/dev/null 2>&1 || need+=(containerd)
    [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
    command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
    command -v iptables >/dev/null 2>&1 || need+=(iptables)
    command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
  fi
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2; exit 1
fi
echo "system-deps: installing ${need[*]} from Debian's packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
