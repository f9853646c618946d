#!/usr/bin/env bash
# Prints the paths of the CRD manifests of the routers' APIs, read from the Go modules pinned in hack/crds/go.mod (downloaded
# into the module cache on first use): the Gateway API standard channel, then Istio's generated CRDs.
set -euo pipefail
cd "$(dirname "$0")/../hack/crds"
dir() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'; }
gateway=$(dir sigs.k8s.io/gateway-api)
istio=$(dir istio.io/api)
ls "$gateway"/config/crd/standard/*.yaml
echo "$istio/kubernetes/customresourcedefinitions.gen.yaml"
