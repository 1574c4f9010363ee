#!/bin/bash
# ThreadSanitizer run that sees everything: builds CAF's libcaf_core with
# -fsanitize=thread once (into a cache directory), then runs
# `bazel test --config=tsan` with @caf swapped for that build through
# --override_repository (the WORKSPACE is unchanged), and counts the reports.
#
# Usage: tools/tsan.sh [--build-only] [bazel test targets...]
#   default targets: //tests/actors/... //tests/pool/... //asio/... (stress test
#   included) and //tools/soak:soak_ci_test (100,000 requests by every delivery path)
# Environment:
#   HSMACTOR_TSAN_CACHE  cache dir (default ~/.cache/hsmactor/caf-tsan-<version>)
#   HSMACTOR_TSAN_JOBS   make -j for the CAF build (default 2; the build is niced)
#   HSMACTOR_TSAN_MIRROR Debian archive for deb-src (default: the archive
#                        apt-cache policy libcaf-dev names)
# Timings (2 shared cores, 2026-12-02): CAF fetch ~20 s; CAF build 18.5 min
# wall (6.7 min CPU, niced, once per cache); first bazel test 13 min (compile
# + tests), later runs 2.5-4 min.
# Exit status: 0 if no ThreadSanitizer report touches our code (actors/, pool/,
# pkcs11/) and every test passed; 1 otherwise; 2 on setup errors.
set -euo pipefail
cd "$(dirname "$0")/.."
WS=$PWD

BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(//tests/actors/... //tests/pool/... //asio/... //tools/soak:soak_ci_test)
# fork_test cannot run under TSAN: its child starts threads after forking a
# multi-threaded parent. TSAN refuses that ("starting new threads after
# multi-threaded fork is not supported", exit 66), and with die_after_fork=0
# its thread registry breaks ("dup thread with used id", exit 66). It tests
# fork handling, not races, and runs in the normal suite and under ASan.
EXCLUDE=(//tests/actors:fork_test)

log() { echo "tsan.sh: $*" >&2; }
die() { log "$*"; exit 2; }
now() { date +%s; }
T0=$(now)

# --- 0. Which CAF: the version of the installed libcaf-dev -------------------
BIN_VERSION=$(dpkg-query -W -f='${Version}' libcaf-dev 2>/dev/null) ||
  die "libcaf-dev is not installed (tools/install-deps.sh)"
SRC_VERSION=${BIN_VERSION%+b*}          # 0.17.6-2.1+b1 -> 0.17.6-2.1 (binNMU)
UPSTREAM=${SRC_VERSION%-*}              # 0.17.6
UPSTREAM=${UPSTREAM#*:}
CACHE=${HSMACTOR_TSAN_CACHE:-$HOME/.cache/hsmactor/caf-tsan-$UPSTREAM}
JOBS=${HSMACTOR_TSAN_JOBS:-2}
PREFIX=$CACHE/prefix
SONAME=libcaf_core.so.$UPSTREAM
mkdir -p "$CACHE"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- 1. Source: apt-get source with a private apt directory -----------------
fetch_source() {
  local src=$CACHE/src/actor-framework-$UPSTREAM
  [ -f "$src/CMakeLists.txt" ] && return 0
  local mirror=${HSMACTOR_TSAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    # The line after "***" in the version table: "500 http://... bookworm/main ..."
    read -r mirror suite < <(apt-cache policy libcaf-dev |
      awk '/\*\*\*/ {getline; print $2, $3; exit}')
    suite=${suite%%/*}
  fi
  [ -n "$mirror" ] || die "cannot tell which Debian archive libcaf-dev came from"
  : "${suite:=$(. /etc/os-release && echo "$VERSION_CODENAME")}"
  local apt=$CACHE/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$CACHE/src"
  echo "deb-src $mirror $suite main" > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
              -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt/lists"
              -o "Dir::Cache=$apt/cache")
  [ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
  log "fetching actor-framework $SRC_VERSION from $mirror $suite (private apt dir $apt)"
  apt-get "${opts[@]}" update >/dev/null
  # The Debian patch tarball may be missing from the archive; the .dsc and the
  # upstream .orig.tar.gz are what we need, so apt-get's status is not decisive.
  (cd "$CACHE/src" &&
   apt-get "${opts[@]}" source --download-only "actor-framework=$SRC_VERSION") || true
  local orig=$CACHE/src/actor-framework_$UPSTREAM.orig.tar.gz
  local dsc=$CACHE/src/actor-framework_$SRC_VERSION.dsc
  [ -f "$orig" ] && [ -f "$dsc" ] || die "apt-get source did not fetch $orig and $dsc"
  local want
  want=$(awk '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0}
              s && $3 ~ /orig\.tar/ {print $1}' "$dsc")
  echo "$want  $orig" | sha256sum -c --quiet - || die "$orig does not match $dsc"
  # Upstream source: Debian's patches touch packaging and libcaf_io only (its
  # libcaf_core headers are identical to upstream's), and we build libcaf_core.
  rm -rf "$src"
  tar xzf "$orig" -C "$CACHE/src"
  [ -f "$src/CMakeLists.txt" ] || die "$orig did not unpack into $src"
}

# --- 2. Build libcaf_core with TSAN, once ------------------------------------
build_caf() {
  if [ -f "$PREFIX/lib/$SONAME" ] && [ -f "$PREFIX/.built" ]; then
    log "instrumented CAF cached in $PREFIX ($(cat "$PREFIX/.built"))"
    return 0
  fi
  local need=()
  command -v cmake >/dev/null || need+=(cmake)
  command -v g++ >/dev/null || need+=(g++)
  command -v make >/dev/null || need+=(make)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing build dependencies: ${need[*]}"
    as_root apt-get install -y --no-install-recommends "${need[@]}"
  fi
  local src=$CACHE/src/actor-framework-$UPSTREAM build=$CACHE/build
  rm -rf "$build" "$PREFIX"
  mkdir -p "$build"
  local start
  start=$(now)
  log "building libcaf_core $UPSTREAM with -fsanitize=thread (nice -n 15, -j$JOBS; ~25 min on 2 cores)"
  # CMAKE_BUILD_TYPE=None: no -O2/-O3 from CAF's defaults on top of ours.
  # CAF_NO_IO: @caf links libcaf_core only (third_party/caf.BUILD).
  nice -n 15 cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_CXX_FLAGS="-std=c++11 -fsanitize=thread -O1 -g -fno-omit-frame-pointer" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
    -DCAF_NO_IO=yes -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes -DCAF_NO_PYTHON=yes \
    -DCAF_NO_TOOLS=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes \
    -DCAF_NO_COMPILER_CHECK=yes -DCAF_NO_SUMMARY=yes \
    > "$CACHE/cmake.log" 2>&1 || { tail -30 "$CACHE/cmake.log"; die "cmake failed"; }
  nice -n 15 make -C "$build" -j"$JOBS" libcaf_core_shared > "$CACHE/build.log" 2>&1 ||
    { tail -30 "$CACHE/build.log"; die "CAF build failed (log: $CACHE/build.log)"; }
  nice -n 15 cmake --install "$build" > "$CACHE/install.log" 2>&1 ||
    { tail -30 "$CACHE/install.log"; die "cmake --install failed"; }
  [ -f "$PREFIX/lib/$SONAME" ] || die "no $PREFIX/lib/$SONAME after the build"
  [ -f "$PREFIX/include/caf/detail/build_config.hpp" ] || die "no generated build_config.hpp"
  nm -D "$PREFIX/lib/$SONAME" | grep __tsan_func_entry >/dev/null ||
    die "$SONAME has no TSAN instrumentation"
  local secs=$(( $(now) - start ))
  echo "built $(date -u +%FT%TZ) in ${secs}s with -j$JOBS" > "$PREFIX/.built"
  log "CAF build took ${secs}s"
}

fetch_source
T_FETCH=$(now)
build_caf
T_BUILD=$(now)
[ $BUILD_ONLY = 1 ] && exit 0

# --- 3. A repository for --override_repository=caf=... -----------------------
REPO=$CACHE/bazel_caf
make_repo() {
  rm -rf "$REPO"
  mkdir -p "$REPO"
  ln -s "$PREFIX/include" "$REPO/include"
  ln -s "$PREFIX/lib" "$REPO/lib"
  echo 'workspace(name = "caf")' > "$REPO/WORKSPACE"
  sed -e "s|@VERSION@|$UPSTREAM|g" -e "s|@SONAME@|$SONAME|g" \
      -e "s|@LIBDIR@|$PREFIX/lib|g" "$WS/third_party/caf_tsan/BUILD.tpl" > "$REPO/BUILD.bazel"
}
make_repo

# --- 4. bazel test --config=tsan against it ----------------------------------
SUPP=$WS/tools/tsan/suppressions.txt
BAZEL=(nice -n 15 bazel --max_idle_secs=300)
BAZEL_FLAGS=(
  --config=tsan
  --override_repository=caf="$REPO"
  --test_env=LD_LIBRARY_PATH="$PREFIX/lib"
  # The same as .bazelrc's tsan config, plus our suppressions file.
  --test_env=TSAN_OPTIONS="halt_on_error=0:report_signal_unsafe=0:second_deadlock_stack=1:suppressions=$SUPP"
  # Every run is a new sample of the interleavings: no cached test results.
  --nocache_test_results
  # TSAN makes everything 5-15 times slower; the stress test is size "large".
  --test_timeout=600,1200,3600,3600
  --keep_going
  --test_output=summary
  --color=no --curses=no
)
log "bazel test ${TARGETS[*]} except ${EXCLUDE[*]} (--config=tsan, @caf -> $REPO)"
set +e
"${BAZEL[@]}" test "${BAZEL_FLAGS[@]}" -- "${TARGETS[@]}" "${EXCLUDE[@]/#/-}"
BAZEL_RC=$?
set -e
T_TEST=$(now)

# --- 5. Did the tests load the instrumented CAF? -----------------------------
TESTS=$("${BAZEL[@]}" query --override_repository=caf="$REPO" \
        "tests(set(${TARGETS[*]})) except set(${EXCLUDE[*]})" 2>/dev/null | sort)
CHECKED=0
for t in $TESTS; do
  rel=${t#//}; rel=${rel/://}
  bin=$WS/bazel-bin/$rel
  [ -x "$bin" ] || continue
  # A script test (soak_ci_test) has no libraries of its own: ldd fails on it.
  [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  # Without LD_LIBRARY_PATH: the rpath alone must find the instrumented copy.
  lib=$(ldd "$bin" | awk '/libcaf_core/ {print $3}')
  [ -n "$lib" ] || continue
  case $(readlink -f "$lib") in
    /usr/*) die "$t loads Debian's uninstrumented $lib" ;;
  esac
  nm -D "$lib" | grep __tsan_func_entry >/dev/null || die "$t loads $lib, which has no TSAN symbols"
  CHECKED=$((CHECKED + 1))
  [ $CHECKED = 1 ] && log "$t loads $lib (TSAN-instrumented)"
done
[ $CHECKED -gt 0 ] || die "found no test binary linked with libcaf_core to check"
log "$CHECKED CAF-linked test binaries load the instrumented libcaf_core"

# --- 6. Reports ----------------------------------------------------------------
LOGS=()
echo
echo "ThreadSanitizer reports per test:"
for t in $TESTS; do
  rel=${t#//}; rel=${rel/://}
  f=$WS/bazel-testlogs/$rel/test.log
  if [ -f "$f" ]; then
    LOGS+=("$f")
    printf '  %-55s %5d\n' "$t" "$(grep -c 'WARNING: ThreadSanitizer' "$f" || true)"
  else
    printf '  %-55s %5s\n' "$t" "no log"
  fi
done
echo
echo "tools/tsan-triage.py (written for the uninstrumented CAF: with the"
echo "instrumented one a CAF frame no longer means a false positive):"
python3 "$WS/tools/tsan-triage.py" "${LOGS[@]}" | head -1 || true
echo
set +e
python3 "$WS/tools/tsan/classify.py" "${LOGS[@]}"
CLASSIFY_RC=$?
set -e
T_END=$(now)
echo
echo "timings: fetch $((T_FETCH - T0))s, CAF build $((T_BUILD - T_FETCH))s," \
     "bazel test $((T_TEST - T_BUILD))s, total $((T_END - T0))s; bazel test exit $BAZEL_RC"
[ -f "$PREFIX/.built" ] && echo "CAF cache: $(cat "$PREFIX/.built")"
if [ $CLASSIFY_RC != 0 ] || [ $BAZEL_RC != 0 ]; then exit 1; fi
exit 0
