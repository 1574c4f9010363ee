#!/usr/bin/env python3
"""Turns hsmactor-bench's CSV into the Markdown table the README shows.

Usage: tools/bench/csv_to_markdown.py bench.csv > table.md

One row per operation and caller count: raw per-thread ops/s and p50, then
every other strategy as a ratio to it (its p50 in brackets), so a reader sees
at a glance how far each strategy is from the limit.
"""
import csv
import sys

STRATEGIES = ["raw-mutex", "raw-per-op", "hsm-future", "hsm-callback", "hsm-actor", "openssl-engine"]
OPERATIONS = ["ecdsa", "rsa", "hmac", "random", "digest"]


def p50(value):
    number = float(value)
    return f"{number:.0f}" if number >= 100 else f"{number:.1f}"


def main(path):
    cells = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            cells[(row["operation"], int(row["concurrency"]), row["strategy"])] = row
    callers = sorted({key[1] for key in cells})
    print("| op | callers | raw per-thread ops/s (p50 µs) | "
          + " | ".join(STRATEGIES) + " |")
    print("|---|---|---|" + "---|" * len(STRATEGIES))
    for operation in OPERATIONS:
        for count in callers:
            raw = cells.get((operation, count, "raw-thread"))
            if raw is None or raw["status"] != "measured":
                continue
            line = [operation, str(count),
                    f"{float(raw['ops_per_second']):.0f} ({p50(raw['p50_us'])})"]
            for strategy in STRATEGIES:
                cell = cells.get((operation, count, strategy))
                if cell is None:
                    line.append("–")
                elif cell["status"] != "measured":
                    line.append(cell["status"])
                else:
                    line.append(f"{float(cell['ratio_to_raw_thread']):.2f} ({p50(cell['p50_us'])})")
            print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
