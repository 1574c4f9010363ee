#!/bin/sh
# Runs every test: installs packages if needed, then `bazel test //...` and the
# consumer example (a separate workspace using hsmactor as a dependency).
# The Bazel server stops itself a minute after the last command.
set -u
cd "$(dirname "$0")/.."
./tools/install-deps.sh
BAZEL="bazel --max_idle_secs=60"
$BAZEL test --color=no --curses=no //... "$@"
status=$?
# Only the targets listed in tools/public_targets.txt are public.
expected=$(grep -v '^#' tools/public_targets.txt | sort)
actual=$($BAZEL query --color=no 'attr(visibility, "//visibility:public", //...)' 2>/dev/null | sort)
if [ -n "$actual" ] && [ "$expected" = "$actual" ]; then
  echo "//tools:public_targets_check                                             PASSED"
else
  echo "//tools:public_targets_check                                             FAILED"
  printf 'expected:\n%s\nactual:\n%s\n' "$expected" "$actual"
  status=1
fi
if [ -x examples/consumer/run.sh ]; then
  if ./examples/consumer/run.sh; then
    echo "//examples/consumer (consumer_sign, consumer_fault_test)                 PASSED"
  else
    echo "//examples/consumer (consumer_sign, consumer_fault_test)                 FAILED"
    status=1
  fi
fi
$BAZEL shutdown
exit $status
