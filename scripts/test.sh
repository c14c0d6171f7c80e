#!/bin/bash
# The one test command: installs dependencies, configures, builds and runs every test.
#   sudo ./scripts/test.sh [extra ctest args, e.g. -L unit or -R 'integration/.*restart']
# Environment: BUILD_DIR (default: build), HV_TEST_JOBS (ctest -j, default 2).
# The private libvirtd (scripts/private-libvirtd.sh) and the tiny test guest
# (scripts/build-test-guest.sh) are CTest fixtures, so `ctest --test-dir build` alone works too.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${HV_TEST_JOBS:-2}

./scripts/install-deps.sh
cmake -G Ninja -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j "$(nproc)"
# Integration tests share one libvirtd and hold a RESOURCE_LOCK, so -j only parallelises
# the unit tests next to them. Every test has its own TIMEOUT (tests/CMakeLists.txt).
exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300 "$@"
