#!/usr/bin/env bash
# Installs everything cloudgrant needs to build and test, from Debian 12's packages.
# Both README commands start here. Safe to run again: apt-get skips what is installed.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

packages=(
    build-essential cmake ninja-build pkg-config clang-format
    libcurl4-openssl-dev libssl-dev libyaml-dev libuv1-dev libjansson-dev libxml2-dev
    libcmocka-dev clang-14 libclang-rt-14-dev
    python3 openssl curl ca-certificates
)
# kubectl is the oracle for kubeconfig resolution and the second client of the Kubernetes
# emulator. Debian ships it as kubernetes-client; keep a newer kubectl when one is present.
command -v kubectl >/dev/null || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
echo "setup: dependencies ready"
