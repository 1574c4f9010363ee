#!/usr/bin/env bash
# The CI soak: 100,000 mixed requests from 32 callers through the fault
# module with 1% stale sessions, one token pull and two killed session
# actors. hsmactor-soak exits non-zero on any duplicate, hang, tracker
# violation, wrong answer or unexplained error.
set -euo pipefail
soak="$1"
exec "$soak" --requests 100000 --callers 32 --stale-rate 0.01 --pulls 1 --kills 2 --seed 1
