#!/bin/sh
# The main job: on a throwaway SoftHSM2 token, run a short signing pipeline
# through hsmactor-sign and a short benchmark through hsmactor-bench, and print
# the results. Installs missing Debian packages first. Leaves nothing behind
# (the token lives in a temporary directory; the Bazel server stops itself).
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh

BAZEL="bazel --max_idle_secs=60"
# Optimised: the benchmark's figures mean nothing in a debug build.
$BAZEL build -c opt --color=no --curses=no //tools/sign:hsmactor-sign //tools/bench:hsmactor-bench
bin="$($BAZEL info -c opt bazel-bin 2>/dev/null)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tokens"
cat > "$work/softhsm2.conf" <<CONF
directories.tokendir = $work/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$work/softhsm2.conf"
module=/usr/lib/softhsm/libsofthsm2.so

echo "== throwaway token"
softhsm2-util --init-token --free --label demo --so-pin 12345678 --pin 1234 >/dev/null
pkcs11-tool --module "$module" --token-label demo --login --pin 1234 \
  --keypairgen --key-type EC:prime256v1 --label ec256 --id 01 >/dev/null
pkcs11-tool --module "$module" --token-label demo --login --pin 1234 \
  --keypairgen --key-type rsa:2048 --label rsa2048 --id 02 >/dev/null
echo "token 'demo' with keys ec256 (P-256) and rsa2048"

echo "== signing pipeline: 2000 records (a few deliberately bad)"
i=0
while [ $i -lt 2000 ]; do
  case $((i % 500)) in
    7) echo "{\"id\":\"r$i\",\"key\":\"missing\",\"mechanism\":\"ecdsa\",\"data\":\"aGVsbG8=\"}" ;;
    8) echo "{\"id\":\"r$i\",\"key\":\"ec256\",\"mechanism\":\"ecdsa\",\"data\":\"not base64!\"}" ;;
    *) if [ $((i % 4)) -eq 0 ]; then
         echo "{\"id\":\"r$i\",\"key\":\"rsa2048\",\"mechanism\":\"rsa-pkcs-sha256\",\"data\":\"bWVzc2FnZQ==\"}"
       else
         echo "{\"id\":\"r$i\",\"key\":\"ec256\",\"mechanism\":\"ecdsa\",\"data\":\"bWVzc2FnZQ==\"}"
       fi ;;
  esac
  i=$((i + 1))
done > "$work/requests.jsonl"
start=$(date +%s.%N)
set +e
HSMACTOR_PIN=1234 "$bin/tools/sign/hsmactor-sign" --module="$module" --token=demo \
  --input="$work/requests.jsonl" --output="$work/results.jsonl" --max-in-flight=64
status=$?
set -e
end=$(date +%s.%N)
ok=$(grep -c '"signature"' "$work/results.jsonl" || true)
bad=$(grep -c '"error"' "$work/results.jsonl" || true)
echo "records signed: $ok, records with typed errors: $bad, exit status $status (1 = some failed)"
awk -v s="$start" -v e="$end" -v n=2000 'BEGIN { printf "pipeline throughput: %.0f records/s\n", n / (e - s) }'
echo "example error line:"
grep -m1 '"error"' "$work/results.jsonl" || true

echo "== benchmark (quick): raw PKCS#11 strategies vs hsmactor"
"$bin/tools/bench/hsmactor-bench" --quick
$BAZEL shutdown
