#!/usr/bin/env python3
"""Turns hsmactor-bench's CSV into the Markdown table the README shows.

Usage: tools/bench/csv_to_markdown.py bench.csv > table.md

One row per operation and caller count: raw per-thread ops/s and p50, then
every other strategy as a ratio to it (its p50 in brackets), so a reader sees
at a glance how far each strategy is from the limit.

A CSV of --scenario=network-hsm (its ratio_to_ideal column is filled) gives
one column per strategy, raw-thread included: ops/s, the ratio to the ideal
(sessions / latency) and p50 / p99 in milliseconds, since there the ideal,
not raw-thread, is the limit.
"""
import csv
import sys

STRATEGIES = ["raw-mutex", "raw-per-op", "hsm-future", "hsm-callback", "hsm-actor", "hsm-asio",
              "hsm-cq", "hsm-batch", "openssl-engine"]
OPERATIONS = ["ecdsa", "rsa", "hmac", "random", "digest"]
# Strategies added after the first tables: shown only when the CSV has them,
# so older CSVs give the table they always gave.
NEWER = {"hsm-asio", "hsm-cq", "hsm-batch"}


def p50(value):
    number = float(value)
    return f"{number:.0f}" if number >= 100 else f"{number:.1f}"


def ms(value):
    return f"{float(value) / 1000:.1f}"


def network_table(cells, callers):
    present = [s for s in ["raw-thread"] + STRATEGIES if any(key[2] == s for key in cells)]
    print("| op | callers | " + " | ".join(present) + " |")
    print("|---|---|" + "---|" * len(present))
    print("| | | " + " | ".join("ops/s, vs ideal (p50 / p99 ms)" for _ in present) + " |")
    for operation in OPERATIONS:
        for count in callers:
            row = [cells.get((operation, count, s)) for s in present]
            if all(cell is None for cell in row):
                continue
            line = [operation, str(count)]
            for cell in row:
                if cell is None:
                    line.append("–")
                elif cell["status"] != "measured":
                    line.append(cell["status"])
                else:
                    line.append(f"{float(cell['ops_per_second']):.0f}, "
                                f"{float(cell['ratio_to_ideal']):.2f} "
                                f"({ms(cell['p50_us'])} / {ms(cell['p99_us'])})")
            print("| " + " | ".join(line) + " |")


def main(path):
    cells = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            cells[(row["operation"], int(row["concurrency"]), row["strategy"])] = row
    callers = sorted({key[1] for key in cells})
    if any(row.get("ratio_to_ideal") for row in cells.values()):
        network_table(cells, callers)
        return
    strategies = [s for s in STRATEGIES
                  if s not in NEWER or any(key[2] == s for key in cells)]
    print("| op | callers | raw per-thread ops/s (p50 µs) | "
          + " | ".join(strategies) + " |")
    print("|---|---|---|" + "---|" * len(strategies))
    for operation in OPERATIONS:
        for count in callers:
            raw = cells.get((operation, count, "raw-thread"))
            if raw is None or raw["status"] != "measured":
                continue
            line = [operation, str(count),
                    f"{float(raw['ops_per_second']):.0f} ({p50(raw['p50_us'])})"]
            for strategy in strategies:
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
