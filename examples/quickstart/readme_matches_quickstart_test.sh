#!/bin/sh
# Checks that README.md contains examples/quickstart/quickstart.cpp verbatim.
set -eu
root="${TEST_SRCDIR:-.}/hsmactor"
readme="$root/README.md"
example="$root/examples/quickstart/quickstart.cpp"
# The example's lines must appear in the README, in order, as one block.
python3 - "$readme" "$example" <<'PY'
import sys
readme = open(sys.argv[1]).read()
example = open(sys.argv[2]).read()
if example not in readme:
    sys.exit("README.md does not quote examples/quickstart/quickstart.cpp verbatim")
PY
