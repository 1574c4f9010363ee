#!/bin/bash
# Builds hsmactor's libFuzzer targets (tests/fuzz/*_fuzz.cpp) with clang and
# runs each for a while on its seed corpus.
#
# Usage:
#   tools/fuzz.sh [seconds] [target...]   # default 30 s each, every target
#   tools/fuzz.sh 0                        # only replay the committed corpora
#   tools/fuzz.sh 600 token_uri            # ten minutes of one target
#
# Bazel builds with gcc, so the fuzzers are compiled here, straight from the
# sources, with clang++ -fsanitize=fuzzer,address,undefined into
# ${HSMACTOR_FUZZ_DIR:-/tmp/hsmactor-fuzz} (outside the repository). New inputs
# go to $HSMACTOR_FUZZ_DIR/corpus/<target>/; the committed seeds in
# tests/fuzz/corpus/<target>/ are only read. To keep a find, minimise it into
# the committed corpus (only if it stays small):
#   $HSMACTOR_FUZZ_DIR/<target>_fuzz -merge=1 tests/fuzz/corpus/<target> \
#       $HSMACTOR_FUZZ_DIR/corpus/<target>
# Installs clang and its libFuzzer runtime with apt-get if they are missing.
# Exits non-zero if any fuzzer finds a crash, leak, timeout or broken property,
# after naming the target and its reproducer.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${HSMACTOR_FUZZ_DIR:-/tmp/hsmactor-fuzz}"
seconds="${1:-30}"
shift $(( $# > 0 ? 1 : 0 ))
case "$seconds" in (*[!0-9]*|'') echo "fuzz.sh: seconds must be a number, not '$seconds'" >&2; exit 2;; esac

all_targets="json_lines sign_request token_uri fault_plan rv_error"
targets="${*:-$all_targets}"

# The sources each target needs besides tests/fuzz/<target>_fuzz.cpp.
sources_of() {
  case "$1" in
    json_lines) echo "tools/sign/json_lines.cpp pkcs11/error.cpp pkcs11/rv.cpp" ;;
    sign_request) echo "tools/sign/sign_request.cpp tools/sign/json_lines.cpp tools/sign/base64.cpp pkcs11/bytes.cpp \
pkcs11/error.cpp pkcs11/rv.cpp pkcs11/mechanism.cpp" ;;
    token_uri) echo "pool/token_uri.cpp pkcs11/error.cpp pkcs11/rv.cpp pkcs11/pin.cpp" ;;
    fault_plan) echo "testing/internal/fault_plan.cpp testing/internal/fault_names.cpp" ;;
    rv_error) echo "pkcs11/error.cpp pkcs11/rv.cpp testing/internal/fault_names.cpp" ;;
    *) echo "fuzz.sh: unknown target '$1' (known: $all_targets)" >&2; return 1 ;;
  esac
}
libs_of() {
  case "$1" in
    sign_request) echo "-lcrypto" ;;
    token_uri) echo "-lp11-kit" ;;
    *) echo "" ;;
  esac
}

mkdir -p "$out"

# clang with libFuzzer: a trivial fuzzer must link.
have_libfuzzer() {
  command -v clang++ >/dev/null 2>&1 || return 1
  printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
    > "$out/probe.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$out/probe.cpp" -o "$out/probe" >/dev/null 2>&1
}
if ! have_libfuzzer; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "fuzz.sh: installing clang and its libFuzzer runtime"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang >/dev/null
  major="$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "libclang-rt-$major-dev" >/dev/null
  have_libfuzzer || { echo "fuzz.sh: clang++ still cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -I"$repo" -I/usr/include/p11-kit-1
       -Wall -Wextra -Wno-unused-parameter)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

failed=""
for target in $targets; do
  sources="$(sources_of "$target")"
  binary="$out/${target}_fuzz"
  echo "fuzz.sh: building $target"
  # shellcheck disable=SC2086
  (cd "$repo" && clang++ "${flags[@]}" "tests/fuzz/${target}_fuzz.cpp" $sources \
     -o "$binary" $(libs_of "$target"))

  seeds="$repo/tests/fuzz/corpus/$target"
  work="$out/corpus/$target"
  artifacts="$out/artifacts/$target"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  [ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 1; }
  log="$out/$target.log"
  options=(-timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1
           -artifact_prefix="$artifacts/")
  if [ "$seconds" -eq 0 ]; then
    echo "fuzz.sh: replaying $seeds"
    run=("$binary" "${options[@]}" -runs=0 "$seeds")
  else
    echo "fuzz.sh: fuzzing $target for ${seconds}s (log: $log)"
    run=("$binary" "${options[@]}" -max_total_time="$seconds" "$work" "$seeds")
  fi
  status=0
  "${run[@]}" >"$log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" \
    | sed "s/^/fuzz.sh: $target /" || true
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
    echo "fuzz.sh: $target FAILED (exit $status); reproducers:" >&2
    ls -1 "$artifacts"/* 2>/dev/null | sed 's/^/  /' >&2 || true
    grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|property violated|exception escaped' \
      "$log" | head -n 60 >&2 || true
    echo "  full log: $log; rerun one input with: $binary <reproducer>" >&2
    failed="$failed $target"
  fi
done

if [ -n "$failed" ]; then
  echo "fuzz.sh: failures in:$failed" >&2
  exit 1
fi
echo "fuzz.sh: all targets passed ($targets)"
