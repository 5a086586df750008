#!/usr/bin/env bash
# Makes a local base image from Debian ($DEBIAN_SUITE, minbase) plus the given packages, for builds that cannot
# pull a public base (no registry is reachable here). Prints the image name on its last line of stdout.
#
#   bash ci/image/base.sh NAME PACKAGE...     e.g. base.sh connect-health-python python3 python3-venv python-is-python3
#
# The name's tag is a hash of the suite, mirror, package list and this script's code (not its comments), so a changed list makes a new base
# and an unchanged one is reused. Cached twice under .tools/: the root filesystem tarball (.tools/image/) and the
# imported image in the project's container storage (ci/image/env.sh). Downloaded .debs are kept in
# .tools/image/debs so a rebuild after a list change fetches only what is new.
# Kept small the way Debian's slim images are: no docs (copyright files stay), man pages, locales or apt lists,
# and a dpkg path-exclude so packages a Dockerfile adds later stay slim too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "$0")/env.sh"
if [ $# -lt 1 ] || [[ ! "$1" =~ ^[a-z0-9][a-z0-9._-]*$ ]]; then
  echo "usage: base.sh NAME [PACKAGE...]  (NAME: lowercase letters, digits, . _ -)" >&2; exit 2
fi
name=$1; shift
packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
key=$( { echo "$DEBIAN_SUITE $DEBIAN_MIRROR $packages"; grep -v '^ *#' "$0"; } | sha256sum | cut -c1-12)
image="localhost/$name:$key"
image_need buildah debootstrap
if buildah inspect --type image "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi

cache="$image_tools/image"
tarball="$cache/$name-$key.tar"
mkdir -p "$cache/debs"
if [ ! -s "$tarball" ]; then
  start=$(date +%s)
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"
  echo "image: debootstrap $DEBIAN_SUITE (minbase) + ${packages:-nothing} -> $name (first run only)" >&2
  debootstrap --variant=minbase ${packages:+--include="$packages"} --cache-dir="$cache/debs" \
    "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" > "$work/debootstrap.log" 2>&1 \
    || { echo "image: debootstrap failed; last lines of its log:" >&2; tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # Slim: what Debian's slim images drop, for the packages installed now and any a Dockerfile adds later.
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/usr/share/locale/* \
         "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
         "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/run/* \
         "$rootfs"/etc/machine-id "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
  tar --numeric-owner --sort=name --xattrs -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  find "$cache" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$key.tar" -delete  # older bases of this name
  rm -rf "$work"; trap - EXIT
  echo "image: root filesystem of $name made in $(( $(date +%s) - start )) s ($(du -m "$tarball" | cut -f1) MB)" >&2
fi

ctr=$(buildah from --quiet scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah add --quiet "$ctr" "$tarball" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --cmd '["bash"]' --label "org.opencontainers.image.description=Debian $DEBIAN_SUITE minbase + $packages" "$ctr"
buildah commit --quiet --rm "$ctr" "$image" >/dev/null
trap - EXIT
echo "image: base $image imported" >&2
echo "$image"
