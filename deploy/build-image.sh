#!/bin/sh
# Builds the release binary and installs it with the built-in profiles under /usr/local (below
# $DESTDIR when set). The Dockerfile's build stage runs this script, and CI runs the same script
# (tests/chart/test_image.py) to check what the image would hold, since Docker does not run on
# the build machines.
#   deploy/build-image.sh SOURCE_DIR BUILD_DIR
set -eu
src="${1:?usage: build-image.sh SOURCE_DIR BUILD_DIR}"
build="${2:?usage: build-image.sh SOURCE_DIR BUILD_DIR}"
# Tests need emulators and Python; they run in CI, not in the image build.
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr/local \
    -DCG_TESTS=OFF
ninja -C "$build" cloudgrant
cmake --install "$build" --strip
"${DESTDIR:-}/usr/local/bin/cloudgrant" version
