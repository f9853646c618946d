#!/usr/bin/env bash
# Builds Traefik, the sandbox's Gateway API data plane, from its Go module (hack/traefik: go.mod and go.sum pinned)
# and caches it per version outside the checkout: $MODELOPS_CACHE/traefik/<version>/traefik.
# Skipped when the binary exists. Prints its path on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/hack/traefik
version=$(awk '$1 == "require" && $2 == "github.com/traefik/traefik/v3" {print $3}' "$src/go.mod")
[[ -n $version ]] || { echo "build-traefik: hack/traefik/go.mod does not require github.com/traefik/traefik/v3" >&2; exit 1; }
cache=${MODELOPS_CACHE:-$HOME/.cache/modelops}
out=$cache/traefik/$version
stamp=$(cat "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
if [[ -x $out/traefik && "$(cat "$out/.inputs" 2>/dev/null)" == "$stamp" ]]; then
  echo "$out/traefik"
  exit 0
fi
command -v go >/dev/null || { echo "build-traefik: Go is needed (go 1.26 or newer on PATH)" >&2; exit 1; }
mkdir -p "$out"
start=$SECONDS
cd "$src"
echo "build-traefik: building Traefik $version -> $out/traefik (a cold build takes about 10 minutes on 2 cores)" >&2
go mod download
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
  -o "$out/traefik.tmp" github.com/traefik/traefik/v3/cmd/traefik
mv "$out/traefik.tmp" "$out/traefik"
echo "$stamp" > "$out/.inputs"
echo "build-traefik: done in $((SECONDS - start)) s" >&2
echo "$out/traefik"
