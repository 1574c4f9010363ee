#!/bin/sh
# Builds and runs the consumer example: a separate Bazel workspace that uses
# hsmactor through local_repository. It runs the program, then its test that
# signs through hsmactor's published fault module. It gets its own Bazel
# server (its own output base), which exits after a minute of idleness.
set -eu
cd "$(dirname "$0")"
bazel --max_idle_secs=60 run //:consumer_sign "$@"
exec bazel --max_idle_secs=60 test --test_output=errors //:consumer_fault_test "$@"
