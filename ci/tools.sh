#!/usr/bin/env bash
# Provides the pinned Helm 3, Helm 4 and helm-docs binaries in .tools/bin (helm3, helm4, helm-docs), and the release
# tooling: registry (CNCF Distribution), cosign, crane, actionlint; and Prometheus with promtool.
# A binary already on PATH at the pinned version is linked; otherwise the pinned release is built from
# source with the Go toolchain (modules come from the Go module proxy). Idempotent: a present binary of
# the right version is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/ci/versions.env"
bin="$root/.tools/bin"
mkdir -p "$bin"

have_version() { # path wanted-version (exact, e.g. v3.22.0)
  [ -x "$1" ] || return 1
  [ "$("$1" version --template '{{.Version}}' 2>/dev/null)" = "$2" ]
}

provide_helm() { # name module version
  local name=$1 module=$2 version=$3 target="$bin/$1"
  if have_version "$target" "$version"; then return 0; fi
  local onpath; onpath=$(command -v helm || true)
  if [ -n "$onpath" ] && have_version "$onpath" "$version"; then
    ln -sf "$onpath" "$target"; echo "tools: $name: using $onpath"; return 0
  fi
  command -v go >/dev/null || { echo "tools: $name: Go is needed to build Helm $version (install golang)" >&2; exit 1; }
  echo "tools: building $name $version from source with Go (first run only)"
  local tmp; tmp=$(mktemp -d)
  # The same -X flags as Helm's own Makefile: the release version, and (Helm 3) the Kubernetes version it
  # assumes for .Capabilities and lint when no cluster is reachable (client-go v0.37 -> Kubernetes 1.37).
  local ldflags="-s -w -X $module/internal/version.version=$version"
  if [ "$name" = helm3 ]; then
    local k8s=( -X "$module/pkg/lint/rules.k8sVersionMajor=1" -X "$module/pkg/lint/rules.k8sVersionMinor=37"
                -X "$module/pkg/chartutil.k8sVersionMajor=1" -X "$module/pkg/chartutil.k8sVersionMinor=37" )
    ldflags="$ldflags ${k8s[*]}"
  fi
  GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "$module/cmd/helm@$version"
  mv "$tmp/helm" "$target"; rm -rf "$tmp"
}

provide_helm helm3 helm.sh/helm/v3 "$HELM3_VERSION"
provide_helm helm4 helm.sh/helm/v4 "$HELM4_VERSION"

# helm-docs built by `go install` prints no version, so a stamp file records the one built.
if [ ! -x "$bin/helm-docs" ] || [ "$(cat "$bin/helm-docs.version" 2>/dev/null)" != "$HELM_DOCS_VERSION" ]; then
  echo "tools: building helm-docs $HELM_DOCS_VERSION from source with Go (first run only)"
  GOBIN="$bin" go install "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
  echo "$HELM_DOCS_VERSION" > "$bin/helm-docs.version"
fi
ln -sf helm3 "$bin/helm"

# Release tooling: the CNCF Distribution registry, cosign, crane and actionlint (pins in versions.env). None of their
# go.mod files has replace lines, so `go install module/cmd@version` builds exactly the pinned release. A stamp
# file records the version built (not all of them print it); the build time is printed (cosign is the big one).
provide_go() { # name package version [ldflags]
  local name=$1 pkg=$2 version=$3 ldflags="-s -w ${4:-}" target="$bin/$1"
  if [ -x "$target" ] && [ "$(cat "$target.version" 2>/dev/null)" = "$version" ]; then return 0; fi
  command -v go >/dev/null || { echo "tools: $name: Go is needed to build $pkg $version (install golang)" >&2; exit 1; }
  echo "tools: building $name $version from source with Go (first run only)"
  local tmp start; tmp=$(mktemp -d); start=$(date +%s)
  GOBIN="$tmp" nice go install -trimpath -ldflags "$ldflags" "$pkg@$version"
  mv "$tmp/$(basename "$pkg")" "$target"; rm -rf "$tmp"
  echo "$version" > "$target.version"
  echo "tools: $name $version built in $(( $(date +%s) - start )) s"
}
provide_go registry github.com/distribution/distribution/v3/cmd/registry "$DISTRIBUTION_VERSION" \
  "-X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION"
provide_go crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION"
provide_go actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
provide_go cosign github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
  "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
# Prometheus and promtool (the observability tests and `make demo`), built together from the Go module proxy. The
# module's versions are v0.<100*major+minor>.<patch> for Prometheus <major>.<minor>.<patch>; its go.mod has no
# replace lines. -tags remove_all_sd leaves out the service-discovery plugins (cloud SDKs; only static targets are
# scraped here), which halves the build. Both binaries print their version, which is what is checked.
provide_prometheus() {
  local version=${PROMETHEUS_VERSION#v} major minor patch
  IFS=. read -r major minor patch <<< "$version"
  local module=github.com/prometheus/prometheus modver="v0.$((major * 100 + minor)).$patch" ok=1 name
  for name in prometheus promtool; do
    "$bin/$name" --version 2>/dev/null | head -1 | grep -q "version $version " || ok=0
  done
  [ "$ok" = 1 ] && return 0
  command -v go >/dev/null || { echo "tools: prometheus: Go is needed to build Prometheus $version (install golang)" >&2; exit 1; }
  echo "tools: building prometheus and promtool $version ($module@$modver) from source with Go (first run only)"
  local tmp start v=github.com/prometheus/common/version; tmp=$(mktemp -d); start=$(date +%s)
  GOBIN="$tmp" nice go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $v.Version=$version -X $v.Revision=$modver -X $v.Branch=release -X $v.BuildUser=connect-health" \
    "$module/cmd/prometheus@$modver" "$module/cmd/promtool@$modver"
  mv "$tmp/prometheus" "$tmp/promtool" "$bin/"; rm -rf "$tmp"
  echo "tools: prometheus and promtool $version built in $(( $(date +%s) - start )) s"
}
provide_prometheus
echo "tools: $("$bin/helm3" version --short) / $("$bin/helm4" version --short) / helm-docs $(cat "$bin/helm-docs.version")"
