#!/usr/bin/env bash
# Prometheus's web UI (the React "mantine-ui": graph, alerts, targets pages), built from the same module as the
# server (ci/versions.env PROMETHEUS_VERSION, via the Go module cache) into .tools/prometheus-ui/static/.
# Only the docs' screenshot of the graph page needs it: the tests use the HTTP API, which needs no UI. The
# launcher's Prometheus serves these files when they are there (launcher/prometheus.py links them). npm packages
# come from the npm registry (pnpm, then the UI's pinned lockfile); a stamp records the version built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/ci/versions.env"
version=${PROMETHEUS_VERSION#v}
IFS=. read -r major minor patch <<< "$version"
modver="v0.$((major * 100 + minor)).$patch"
out="$root/.tools/prometheus-ui"
if [ -f "$out/static/mantine-ui/index.html" ] && [ "$(cat "$out/version" 2>/dev/null)" = "$version" ]; then exit 0; fi
if ! command -v go >/dev/null || ! command -v npm >/dev/null; then echo "prometheus-ui: needs go and npm (nodejs)" >&2; exit 1; fi
start=$(date +%s)
src=$(go mod download -json "github.com/prometheus/prometheus@$modver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
rm -rf "$out" && mkdir -p "$out"
cp -r "$src/web/ui" "$out/src" && chmod -R u+w "$out/src"
cd "$out/src"
pnpm=(npx --yes pnpm@10)
mkdir -p "$out/bin" && printf '#!/bin/sh\nexec npx --yes pnpm@10 "$@"\n' > "$out/bin/pnpm" && chmod +x "$out/bin/pnpm"
export PATH="$out/bin:$PATH"  # build_ui.sh calls pnpm by name
# The lockfile first; where this registry lacks a locked version (it happens with mirrors), the newest release the
# UI's ranges and one override allow.
if ! "${pnpm[@]}" install --frozen-lockfile --config.ignore-scripts=true; then
  node -e 'const f="package.json", p=require("./"+f); p.pnpm={overrides:{"@mantine/code-highlight":"^9.6.0"}};
           require("fs").writeFileSync(f, JSON.stringify(p, null, 2))'
  "${pnpm[@]}" install --no-frozen-lockfile --config.ignore-scripts=true
fi
bash build_ui.sh --build-module
"${pnpm[@]}" --filter @prometheus-io/mantine-ui exec vite build
mkdir -p "$out/static" && mv mantine-ui/dist "$out/static/mantine-ui"
echo "$version" > "$out/version"
echo "prometheus-ui: built $version in $(( $(date +%s) - start )) s"
