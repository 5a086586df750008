#!/usr/bin/env bash
# Builds an image from a Dockerfile with buildah, on a local Debian base made by base.sh from a package list and
# passed to the Dockerfile as a build arg (the Dockerfile itself keeps its public base as that arg's default).
#
#   bash ci/image/build.sh --tag TAG --dockerfile FILE --context DIR \
#        --base NAME --base-arg ARG [--package PKG]... [--build-arg K=V]... [--label K=V]...
#
# e.g. the sidecar (make image):  --base connect-health-python --base-arg PYTHON_IMAGE \
#        --package python3 --package python3-venv --package python-is-python3 --package ca-certificates
# and a Connect image:            --base connect-jre --base-arg JRE_IMAGE --package openjdk-17-jre-headless ...
#
# Builder: buildah (Debian's), daemonless and rootful with chroot isolation, so RUN steps need neither a daemon
# nor cgroup setup on this cgroup v1 VM. RUN steps use the host network (pip reaches PyPI through it) and see the
# host's CA bundle and pip.conf through read-only bind mounts that never land in a layer (a proxy with its own CA
# keeps working). Intermediate layers are cached (--layers), so an unchanged build is a cache hit.
# buildah 1.28's layer cache keys a LABEL step on its text before build args are expanded, so a label built from a
# build arg (org.opencontainers.image.version="${VERSION}") would keep the value of the first cached build: give such
# labels with --label too (applied to the final image, outside the cache).
# Prints the image's name, ID and uncompressed size on its last line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "$0")/env.sh"
usage() { echo "usage: build.sh --tag TAG --dockerfile FILE --context DIR --base NAME --base-arg ARG [--package PKG]... [--build-arg K=V]... [--label K=V]...${1:+ ($1)}" >&2; exit 2; }
tag="" dockerfile="" context="" base="" base_arg="" packages=() build_args=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage "$1 needs a value"
  case $1 in
    --tag) tag=$2 ;; --dockerfile) dockerfile=$2 ;; --context) context=$2 ;; --base) base=$2 ;;
    --base-arg) base_arg=$2 ;; --package) packages+=("$2") ;; --build-arg) build_args+=(--build-arg "$2") ;;
    --label) build_args+=(--label "$2") ;;
    *) usage "unknown option $1" ;;
  esac
  shift 2
done
for v in tag dockerfile context base base_arg; do [ -n "${!v}" ] || usage "--${v//_/-} is required"; done
[ -f "$dockerfile" ] || { echo "build.sh: no Dockerfile at $dockerfile" >&2; exit 2; }
[ -d "$context" ] || { echo "build.sh: no build context directory at $context" >&2; exit 2; }
image_need buildah

start=$(date +%s)
base_image=$(bash "$(dirname "$0")/base.sh" "$base" "${packages[@]}" | tail -1)
base_s=$(( $(date +%s) - start ))

mounts=()
ca=/etc/ssl/certs/ca-certificates.crt
if [ -s "$ca" ]; then
  pipconf="$image_tools/image/pip.conf"
  printf '[global]\ncert = %s\n' "$ca" > "$pipconf"
  mounts+=(--volume "$ca:$ca:ro" --volume "$pipconf:/etc/pip.conf:ro")
fi
build_start=$(date +%s)
BUILDAH_ISOLATION=chroot buildah bud --quiet --layers --pull-never --network host --format oci \
  --platform linux/amd64 "${mounts[@]}" --build-arg "$base_arg=$base_image" "${build_args[@]}" \
  -f "$dockerfile" -t "$tag" "$context" >/dev/null
id=$(buildah inspect --type image --format '{{.FromImageID}}' "$tag")
size=$(podman image inspect --format '{{.Size}}' "$tag" 2>/dev/null || echo 0)
echo "image: base ${base_s} s, build $(( $(date +%s) - build_start )) s" >&2
echo "$tag ${id:0:12} $(( size / 1000000 )) MB"
