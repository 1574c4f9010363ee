#!/bin/bash
# Loads the signing server with wrk in every mode, in one run, and prints a
# Markdown table (requests/s, p50, p99). RESULTS.md was made with it.
#
#   examples/sign_server/bench.sh                  # 5 s per cell, 16/64/256 connections
#   DURATION=10 CONNECTIONS="16 256" ROUNDS=2 examples/sign_server/bench.sh
#
# Everything stays on this machine: a throwaway SoftHSM2 token in a temporary
# directory, the server on 127.0.0.1, wrk against it for DURATION seconds per
# cell; each server also stops by itself after --max-seconds.
set -euo pipefail

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-"16 64 256"}
ROUNDS=${ROUNDS:-1}
WRK_THREADS=${WRK_THREADS:-2}
SESSIONS=${SESSIONS:-2}
# name:flags; cells are interleaved by mode within each connection count.
MODES=${MODES:-"hsmactor:--mode=hsmactor hsmactor-pool:--mode=hsmactor,--completion=pool \
sync-loop:--mode=sync-loop sync-loop-2:--mode=sync-loop,--threads=2 raw-pool:--mode=raw-pool"}
MODULE=${HSMACTOR_SOFTHSM2:-/usr/lib/softhsm/libsofthsm2.so}

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
for tool in wrk softhsm2-util pkcs11-tool; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (tools/install-deps.sh)" >&2; exit 2; }
done

bazel --max_idle_secs=300 build -c opt //examples/sign_server:sign_server >&2
SERVER="$ROOT/bazel-bin/examples/sign_server/sign_server"
LUA="$ROOT/examples/sign_server/post.lua"

WORK="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/tokens"
cat > "$WORK/softhsm2.conf" <<CONF
directories.tokendir = $WORK/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
export HSMACTOR_PIN=1234
softhsm2-util --init-token --free --label bench --so-pin 12345678 --pin "$HSMACTOR_PIN" >/dev/null
pkcs11-tool --module "$MODULE" --token-label bench --login --pin "$HSMACTOR_PIN" \
  --keypairgen --key-type EC:prime256v1 --label ec256 --id 01 >/dev/null

# Runs one cell: prints "requests/s p50_ms p99_ms errors".
run_cell() {
  local flags="$1" connections="$2"
  rm -f "$WORK/port"
  # shellcheck disable=SC2086
  "$SERVER" ${flags//,/ } --token=bench --key=ec256 --module="$MODULE" --sessions="$SESSIONS" \
    --port=0 --port-file="$WORK/port" --max-seconds=$((DURATION * 4 + 30)) >"$WORK/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 500); do [ -s "$WORK/port" ] && break; sleep 0.02; done
  [ -s "$WORK/port" ] || { echo "bench: server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  local url="http://127.0.0.1:$(cat "$WORK/port")/sign"
  # Warm-up: sessions opened, key looked up, caches hot.
  wrk -t1 -c4 -d1s -s "$LUA" "$url" >/dev/null
  local out
  out="$(wrk -t"$WRK_THREADS" -c"$connections" -d"${DURATION}s" -s "$LUA" "$url")"
  kill "$server_pid"; wait "$server_pid" || true; server_pid=""
  grep -o 'loop executor: .*' "$WORK/server.log" >&2 || true
  echo "$out" | awk '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%.0f %.2f %.2f %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000, v["socket_errors"] + v["non2xx"]
    }'
}

echo "sign_server benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$WRK_THREADS -d${DURATION}s, sessions=$SESSIONS, rounds=$ROUNDS"
echo
echo "| connections | mode | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for connections in $CONNECTIONS; do
    for entry in $MODES; do
      name="${entry%%:*}"; flags="${entry#*:}"
      read -r rps p50 p99 errors < <(run_cell "$flags" "$connections")
      echo "| $connections | $name | $rps | $p50 | $p99 | $errors |"
    done
  done
done
