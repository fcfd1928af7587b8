#!/usr/bin/env bash
# The benchmark in one command: installs what is missing (scripts/setup.sh), builds cloudgrant
# in Release into build-bench/, and runs bench/run.py with its defaults (every provider and
# built-in profile at 50 ms per cloud call, three repeats, the awscli reference, `version`
# start-up and a 30-cycle `watch` soak). Arguments go to bench/run.py (--help lists them),
# e.g. bench/run.sh --delay-ms 100 or bench/run.sh --watch-cycles 10000.
# Results: a table on stdout and bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${CG_SKIP_SETUP:-}" = 1 ] || scripts/setup.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build-bench cloudgrant >/dev/null
# Debian's interpreter: the emulators' helpers (botocore for moto's proxy) live there
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" bench/run.py --bin build-bench/agent/cloudgrant "$@"
