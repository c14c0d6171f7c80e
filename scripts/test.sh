#!/bin/bash
# The one test command: installs dependencies, builds the Debian package (which compiles hv and
# its tests once, into the build directory) and runs every test there, the package tests last.
#   ./scripts/test.sh (as root) [extra ctest args, e.g. -L unit or -R 'integration/.*restart']
# Environment: BUILD_DIR (default: build, relative to the source), HV_TEST_JOBS (ctest -j,
# default 2).
# The private libvirtd (scripts/private-libvirtd.sh) and the tiny test guest
# (scripts/build-test-guest.sh) are CTest fixtures, so `ctest --test-dir build` alone works too.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${HV_TEST_JOBS:-2}

./scripts/install-deps.sh

# dpkg-buildpackage runs debian/rules: dh + CMake/Ninja in $BUILD_DIR with BUILD_TESTING=ON
# (debian/rules), so the .deb and the test binaries come from one compilation. nocheck: the
# tests run below, all of them; noddebs: no -dbgsym package (compressing it takes minutes).
# --no-pre-clean and the removed build stamp keep rebuilds
# incremental (and keep the cached test guest in $BUILD_DIR/testenv).
cmake_args=""
if command -v ccache >/dev/null; then cmake_args="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
# debian/files would keep the previous build's list (e.g. a -dbgsym package built without noddebs).
rm -f debian/debhelper-build-stamp debian/files
# DEB_CXXFLAGS_STRIP=-g: no debug information in this build (no -dbgsym package is made of it,
# and generating it is a quarter of the compile time: 53.6 s -> 40.3 s for two heavy files); `dpkg-buildpackage` alone keeps Debian's -g.
HV_BUILD_DIR="$BUILD_DIR" HV_CMAKE_ARGS="$cmake_args" \
  DEB_CXXFLAGS_STRIP="-g ${DEB_CXXFLAGS_STRIP:-}" \
  DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -us -uc -b --no-pre-clean

# dpkg-buildpackage writes next to the source directory; keep the results with this build
# ($BUILD_DIR/debs, where tests/package/deb_smoke.sh installs the .deb from).
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
rm -rf "$BUILD_DIR/debs"
mkdir -p "$BUILD_DIR/debs"
for f in "hv_${version}_${arch}.deb" "hv-dbgsym_${version}_${arch}.deb" "hv_${version}_${arch}.buildinfo" \
         "hv_${version}_${arch}.changes"; do
  if [ -e "../$f" ]; then mv "../$f" "$BUILD_DIR/debs/"; fi
done
ls -l "$BUILD_DIR/debs"

# The sanitizer build (docs/fuzzing.md): clang with ASan + UBSan, the libFuzzer targets, and
# hvd, hvctl and the test binaries again, in $BUILD_DIR/sanitize. Its tests run in the one ctest
# run below (labels fuzz and sanitize, registered by the main build); HV_REQUIRE_SANITIZE=1
# makes a missing sanitizer build a failure there, not a skip.
san_args=(-DCMAKE_CXX_COMPILER=clang++ -DHV_SANITIZE=ON -DBUILD_TESTING=ON)
if command -v ccache >/dev/null; then san_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
san_start=$(date +%s)
cmake -G Ninja -S . -B "$BUILD_DIR/sanitize" "${san_args[@]}" >/dev/null
ninja -C "$BUILD_DIR/sanitize" -j "$(nproc)"
echo "test.sh: sanitizer build took $(( $(date +%s) - san_start )) s"
export HV_REQUIRE_SANITIZE=1

# The package test (label package, tests/package/deb_smoke.sh) installs that .deb, runs the
# installed hvd and hvctl and removes it; here a missing .deb is a failure, not a skip.
export HV_REQUIRE_DEB=1
# Integration tests share one libvirtd and hold a RESOURCE_LOCK, so -j only parallelises
# the unit tests next to them. Every test has its own TIMEOUT (tests/CMakeLists.txt).
exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300 "$@"
