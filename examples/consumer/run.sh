#!/bin/sh
# Builds and runs the consumer example: a separate Bazel workspace that uses
# hsmactor through local_repository. It gets its own Bazel server (its own
# output base), which exits after a minute of idleness.
set -eu
cd "$(dirname "$0")"
exec bazel --max_idle_secs=60 run //:consumer_sign "$@"
