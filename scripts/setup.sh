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
    python3 python3-venv openssl curl ca-certificates
    unzip
    # one end-to-end pass with the agent under memcheck (tests/e2e/valgrind.cmake)
    valgrind
    # AWS references: botocore's signer and service models, awscli 2 as a second client
    awscli python3-botocore python3-regex
    # the central endpoint emulator validates every report against docs/report.schema.json
    python3-jsonschema
    # an independent JOSE implementation opens the sealed credentials in the tests
    python3-jwcrypto
    # Azure references: azure-mgmt-authorization/-resource models and msal, real clients of the Azure emulator
    python3-azure python3-msal
)
# kubectl is the oracle for kubeconfig resolution and the second client of the Kubernetes
# emulator. Debian ships it as kubernetes-client; keep a newer kubectl when one is present.
command -v kubectl >/dev/null || packages+=(kubernetes-client)
# The Helm chart tests get helm and the Kubernetes schemas from the npm registry. Keep a
# Node.js that is already there (a distribution other than Debian's may bundle npm).
command -v npm >/dev/null || packages+=(nodejs npm)

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
# moto (a stateful IAM/STS emulator) is not packaged by Debian. Use one on the PATH or in a
# pyenv, else install it into a virtualenv inside the checkout (needs PyPI).
find_moto() {
    command -v moto_server 2>/dev/null && return 0
    ls /root/.pyenv/versions/*/bin/moto_server "$HOME"/.pyenv/versions/*/bin/moto_server \
        .venv-moto/bin/moto_server 2>/dev/null | head -1 | grep . && return 0
    return 1
}
if ! find_moto >/dev/null; then
    echo "setup: installing moto into .venv-moto (pip install 'moto[server]')"
    if ! { python3 -m venv .venv-moto && .venv-moto/bin/pip install -q 'moto[server]'; }; then
        echo "setup: could not install moto; the AWS tests need it:" >&2
        echo "       pip install 'moto[server]'  (or put moto_server on the PATH)" >&2
        rm -rf .venv-moto
    fi
fi
echo "setup: dependencies ready"
