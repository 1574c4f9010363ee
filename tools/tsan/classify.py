#!/usr/bin/env python3
"""Groups ThreadSanitizer reports from test logs by their racing stacks.

For tools/tsan.sh, where CAF is built with -fsanitize=thread: a CAF frame in a
report no longer marks it as a false positive, so every report counts. Each
distinct report (same kind, same top frames of the first two stacks) is printed
once with its count per log, the top frames of both stacks, and whether a frame
of our library code (actors/, pool/, pkcs11/) is in either racing stack.

Usage: tools/tsan/classify.py LOG...
Exit status: 1 if any report has a frame of our library code in its stacks.
"""
import collections
import os
import re
import sys

STACK = re.compile(r"^  (\S[^\n]*?):?\n((?:\s+#\d+[^\n]*\n)+)", re.MULTILINE)
# "    #3 func(args) path/file.cpp:12:5 (module+0x1234)"; func may hold spaces.
FRAME = re.compile(r"#\d+ (.*) (\S+) \((\S+?)\+0x[0-9a-f]+\)\s*$")
KIND = re.compile(r"^: ([^(\n]+)")


def owner(loc):
    """'ours' (actors/, pool/, pkcs11/), 'tests' or None for a source location."""
    if re.search(r"(?:^|/)tests/", loc):
        return "tests"
    if re.search(r"(?:^|/)(actors|pool|pkcs11)/[^/]", loc) and "/include/" not in loc:
        return "ours"
    return None


def frames(stack):
    """[(text, owner)] for each frame of a stack."""
    out = []
    for line in stack.splitlines():
        m = FRAME.search(line)
        if not m:
            continue
        func, loc, module = m.groups()
        if len(func) > 100:
            func = func[:100] + "..."
        loc = re.sub(r"^.*?/((?:actors|pool|pkcs11|tests|caf|bits)/)", r"\1", loc)
        out.append((f"{func}  {loc if loc != '<null>' else '(' + module + ')'}", owner(loc)))
    return out


def where_from(stack):
    """First frame of our code, else of tests/, else frame #0."""
    fs = frames(stack)
    for who in ("ours", "tests"):
        for text, o in fs:
            if o == who:
                return text
    return fs[0][0] if fs else "?"


def has(stack, who):
    return any(o == who for _, o in frames(stack))


def main(paths):
    groups = collections.OrderedDict()
    total = 0
    for path in paths:
        with open(path, errors="replace") as log:
            text = log.read()
        test = os.path.dirname(path).split("bazel-testlogs/")[-1]
        for report in text.split("WARNING: ThreadSanitizer")[1:]:
            report = report.split("SUMMARY:")[0]
            total += 1
            kind = (KIND.search(report) or re.search("(.*)", report)).group(1).strip()
            stacks = STACK.findall(report)
            racing = stacks[:2]
            key = (kind,) + tuple(frames(s)[0][0] if frames(s) else "?" for _, s in racing)
            g = groups.setdefault(key, {"kind": kind, "tests": collections.Counter(),
                                        "racing": racing, "example": report,
                                        "ours": any(has(s, "ours") for _, s in racing),
                                        "tests_code": any(has(s, "tests") for _, s in racing)})
            g["tests"][test] += 1
    ours = sum(sum(g["tests"].values()) for g in groups.values() if g["ours"])
    print(f"{total} ThreadSanitizer reports, {len(groups)} distinct; "
          f"{ours} with a frame of actors/, pool/ or pkcs11/ in a racing stack")
    for i, g in enumerate(groups.values(), 1):
        owner = ("OUR CODE" if g["ours"] else
                 "tests/ code" if g["tests_code"] else "CAF/libstdc++/other")
        counts = ", ".join(f"{t} x{n}" for t, n in g["tests"].items())
        print(f"\n[{i}] {g['kind']} -- {owner} -- {counts}")
        for title, stack in g["racing"]:
            print(f"    {title}")
            for text, _ in frames(stack)[:4]:
                print(f"        {text}")
            print(f"        first of ours/tests: {where_from(stack)}")
    return 1 if ours else 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
