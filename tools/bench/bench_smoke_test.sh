#!/usr/bin/env bash
# hsmactor-bench runs end to end in both scenarios and every strategy it adds
# answers: the table is printed, no cell failed, the network run used the
# fault module with its cap, and no session was entered by two threads.
# Cells are 50 ms: nothing here looks at a speed figure.
set -euo pipefail
bench="$1"
export TMPDIR="${TEST_TMPDIR:-/tmp}"
module="${HSMACTOR_SOFTHSM2:-/usr/lib/softhsm/libsofthsm2.so}"
short=(--seconds=0.05 --warmup=0.02 --module="$module")

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Prints the table rows (operation in the first column) whose status is failed.
failed_rows() {
  grep -E '^(ecdsa|rsa|hmac|random|digest) ' "$1" | grep -E ' failed' || true
}

out="$TEST_TMPDIR/softhsm.out"
"$bench" "${short[@]}" --ops=ecdsa,random --concurrency=2 --memory-sessions=0 \
  --strategies=raw-thread,hsm-future,hsm-asio,hsm-cq,hsm-batch --batch=4 --cq-threads=2 \
  --asio-threads=2 >"$out" 2>"$TEST_TMPDIR/softhsm.err" ||
  { cat "$TEST_TMPDIR/softhsm.err" >&2; fail "softhsm scenario exited non-zero"; }
grep -q 'vs raw-thread' "$out" || fail "softhsm: no table"
for strategy in hsm-asio hsm-cq hsm-batch; do
  [ "$(grep -cE "^(ecdsa|random) +2 +$strategy " "$out")" = 2 ] || fail "softhsm: no $strategy rows"
done
[ -z "$(failed_rows "$out")" ] || { cat "$out" >&2; fail "softhsm: failed cells"; }

out="$TEST_TMPDIR/network.out"
csv="$TEST_TMPDIR/network.csv"
"$bench" "${short[@]}" --scenario=network-hsm --network-max-sessions=8 \
  --network-latency-us=500 --concurrency=2,16 --csv="$csv" \
  >"$out" 2>"$TEST_TMPDIR/network.err" ||
  { cat "$TEST_TMPDIR/network.err" >&2; fail "network scenario exited non-zero"; }
grep -q 'vs ideal' "$out" || fail "network: no ratio to the ideal"
grep -q 'ideal 16000 signatures/s' "$out" || fail "network: wrong ideal (8 sessions / 0.5 ms)"
grep -q 'capped at 7 threads' "$out" || fail "network: raw-thread not capped at the sessions left"
grep -q 'hsmactor pool: asked for 7 sessions' "$out" || fail "network: pool not sized to the cap"
grep -q 'fault module: 0 times a thread entered a session another was inside' "$out" ||
  fail "network: a session was entered by two threads"
[ -z "$(failed_rows "$out")" ] || { cat "$out" >&2; fail "network: failed cells"; }
head -1 "$csv" | grep -q ',ratio_to_ideal,' || fail "network: csv lacks ratio_to_ideal"
echo "PASS"
