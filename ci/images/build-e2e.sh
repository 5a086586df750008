#!/usr/bin/env bash
# The images of the e2e cluster, as OCI archives in .tools/images/ that `python -m launcher.cluster up
# --image-archive ...` imports into the node's containerd (nothing can be pulled from a public registry here):
#   pause.tar    e2e.local/pause:3.10                 the pod sandbox image (ci/images/pause)
#   connect.tar  e2e.local/kafka-connect:$KAFKA_VERSION  Connect with apache/kafka's layout (ci/images/connect)
# Built with the project's image builder (ci/image/: buildah on a local Debian base); the Kafka jars are the ones
# `make kafka` fetched. Idempotent: an archive is rewritten only when its image changed (buildah caches layers).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../image/env.sh
. "$root/ci/image/env.sh"
image_need buildah
out="$root/.tools/images"
mkdir -p "$out"
libs="$root/.tools/kafka/$KAFKA_VERSION/libs"
[ -d "$libs" ] || { echo "images: no Kafka $KAFKA_VERSION jars in $libs: run \`make kafka\` first" >&2; exit 1; }
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then  # ldd fails on a static binary
  echo "images: a static busybox is needed at $busybox: run \`bash ci/system-deps.sh cluster\`" >&2; exit 1
fi

export_archive() { # local-image archive-name reference
  local image=$1 archive="$out/$2" ref=$3 id
  id=$(buildah inspect --type image --format '{{.FromImageID}}' "$image")
  if [ -s "$archive" ] && [ "$(cat "$archive.id" 2>/dev/null)" = "$id $ref" ]; then return 0; fi
  rm -f "$archive"
  buildah push --quiet "$image" "oci-archive:$archive:$ref" >/dev/null
  echo "$id $ref" > "$archive.id"
  echo "images: $ref -> ${archive#"$root"/} ($(du -h "$archive" | cut -f1))"
}

ctx=$(mktemp -d "$out/context.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

mkdir "$ctx/pause"
cp "$busybox" "$ctx/pause/busybox"
BUILDAH_ISOLATION=chroot buildah bud --quiet --layers --pull-never --format oci --platform linux/amd64 \
  -f "$root/ci/images/pause/Dockerfile" -t localhost/e2e-pause:3.10 "$ctx/pause" >/dev/null
export_archive localhost/e2e-pause:3.10 pause.tar e2e.local/pause:3.10

mkdir -p "$ctx/connect/libs"
cp -l "$libs"/*.jar "$ctx/connect/libs/" 2>/dev/null || cp "$libs"/*.jar "$ctx/connect/libs/"
cp "$root/ci/images/connect/connect-distributed.sh" "$root/ci/images/connect/connect-log4j2.xml" "$ctx/connect/"
bash "$root/ci/image/build.sh" --tag "localhost/kafka-connect-e2e:$KAFKA_VERSION" \
  --dockerfile "$root/ci/images/connect/Dockerfile" --context "$ctx/connect" \
  --base connect-jre --base-arg JRE_IMAGE --package openjdk-17-jre-headless \
  --build-arg "KAFKA_VERSION=$KAFKA_VERSION" | tail -1
export_archive "localhost/kafka-connect-e2e:$KAFKA_VERSION" connect.tar "e2e.local/kafka-connect:$KAFKA_VERSION"

# The sidecar image of `make image` (ci/image/build.sh on sidecar/Dockerfile), for installs from the source chart.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/sidecar/pyproject.toml")
if ! buildah inspect --type image "localhost/connect-health:$version" >/dev/null 2>&1; then
  echo "images: no localhost/connect-health:$version: run \`make image\` first" >&2; exit 1
fi
export_archive "localhost/connect-health:$version" sidecar.tar "e2e.local/connect-health:$version"
