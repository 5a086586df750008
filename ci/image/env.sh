# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by the image scripts (ci/image/*.sh, ci/images/*) and by anyone running buildah, podman or skopeo on
# the project's images (`. ci/image/env.sh`; `bash ci/image/env.sh --print` prints the two variables for tests):
# - the container storage lives under .tools/containers instead of the machine's /var/lib/containers, so
#   everything `make image` makes is cached with the project's other tools and removed by `make clean`;
# - podman runs containers with runc, because Debian's crun 1.8 refuses this VM's hybrid cgroup v1/v2 layout
#   ("cgroups in hybrid mode not supported"), and with the host's own hard limits, because podman's rootful
#   defaults (nofile and nproc 1048576) are above them and raising a limit is not permitted in this VM.
image_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image_tools="$image_root/.tools"
# shellcheck source=../versions.env
. "$image_root/ci/versions.env"
mkdir -p "$image_tools/containers"
export CONTAINERS_STORAGE_CONF="$image_tools/containers/storage.conf"
if [ ! -s "$CONTAINERS_STORAGE_CONF" ]; then
  cat > "$CONTAINERS_STORAGE_CONF" <<EOF
# written by ci/image/env.sh
[storage]
driver = "overlay"
graphroot = "$image_tools/containers/storage"
runroot = "$image_tools/containers/run"
EOF
fi
export CONTAINERS_CONF="$image_tools/containers/containers.conf"
# (nproc: values above ~30000 are refused here even below the hard limit; a container needs far fewer.)
image_nproc=$(ulimit -Hu); [ "$image_nproc" = unlimited ] || [ "$image_nproc" -gt 16384 ] && image_nproc=16384
image_conf=$(printf '# written by ci/image/env.sh\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n' \
  "$(ulimit -Hn)" "$(ulimit -Hn)" "$image_nproc" "$image_nproc")
if [ "$(cat "$CONTAINERS_CONF" 2>/dev/null)" != "$image_conf" ]; then
  echo "$image_conf" > "$CONTAINERS_CONF.$$" && mv "$CONTAINERS_CONF.$$" "$CONTAINERS_CONF"
fi

image_need() { # command... : one line naming what to install when a builder tool is missing
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "image: $c is missing; run: bash ci/system-deps.sh" >&2; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { echo "image: buildah and debootstrap run as root here (rootful storage under .tools)" >&2; exit 1; }
}

if [ "${1:-}" = --print ]; then
  printf 'CONTAINERS_STORAGE_CONF=%s\nCONTAINERS_CONF=%s\n' "$CONTAINERS_STORAGE_CONF" "$CONTAINERS_CONF"
fi
