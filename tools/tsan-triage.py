#!/usr/bin/env python3
"""Sorts ThreadSanitizer reports from test logs into CAF hand-offs and the rest.

Debian's libcaf_core is not built with -fsanitize=thread, so TSAN cannot see
the synchronisation inside CAF's mailboxes: every object handed from one
thread to another in a message (or as a spawn argument) is reported as a race,
with a CAF frame in one of the two racing stacks. A report in which neither
racing stack has a CAF frame is synchronised (or not) by our own code alone,
which TSAN sees completely: those are the ones that matter.

Usage:
  bazel test --config=tsan //tests/pool:stress_test
  tools/tsan-triage.py bazel-testlogs/tests/pool/stress_test/test.log
Exit status: 1 if any report has no CAF frame in its racing stacks.
"""
import re
import sys

ACCESS = re.compile(r"^  (?:Read|Write|Atomic \w+|Previous \w+)[^\n]*\n((?:\s+#\d+[^\n]*\n)+)",
                    re.MULTILINE)


def racing_stacks(report):
    return ACCESS.findall(report)[:2]


def involves_caf(stack):
    return "caf::" in stack or "libcaf_" in stack


def main(paths):
    total = 0
    ours = []
    for path in paths:
        with open(path, errors="replace") as log:
            text = log.read()
        for report in text.split("WARNING: ThreadSanitizer")[1:]:
            report = report.split("SUMMARY:")[0]
            total += 1
            stacks = racing_stacks(report)
            if stacks and not any(involves_caf(stack) for stack in stacks):
                ours.append((path, report))
    print(f"{total} ThreadSanitizer reports; {total - len(ours)} involve a CAF hand-off "
          f"(uninstrumented libcaf_core); {len(ours)} do not")
    for path, report in ours[:10]:
        print(f"--- {path}\n{report[:4000]}")
    return 1 if ours else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
