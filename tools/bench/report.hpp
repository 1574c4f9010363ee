// Reports of a run: an aligned table, CSV, an SVG plot of throughput against
// concurrency, the memory measurement, and the targets the README reports.
//
// Everything here is pure: cells in, text out.
//
// Usage:
//   std::cout << format_table(cells);
//   write_file("bench.csv", format_csv(cells));
//   write_file("bench.svg", render_svg(cells));
//   std::cout << format_targets(check_targets(cells, memory));
//   std::cout << format_targets(check_network_targets(cells, ideal_ops_per_second));
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tools/bench/cell.hpp"
#include "tools/bench/memory.hpp"

namespace hsmactor::bench {

/// What the table's ratio column divides by.
struct Reference {
  /// Above 0: every cell's ops/s is divided by this (the network scenario's
  /// ideal, sessions / latency); otherwise by raw-thread's at the same
  /// operation and concurrency.
  double ideal_ops_per_second = 0;
};

/// Returns `cell`'s throughput divided by raw-thread's for the same operation
/// and concurrency, when both were measured.
std::optional<double> ratio_to_raw_thread(const std::vector<CellResult>& cells,
                                          const CellResult& cell);

/// Returns `cell`'s throughput divided by `ideal_ops_per_second`, when the
/// cell was measured and the ideal is above 0.
std::optional<double> ratio_to_ideal(const CellResult& cell, double ideal_ops_per_second);

/// Sorts `cells` into report order: by operation, concurrency, then strategy,
/// each in the order all_operations() / all_strategies() give (stable).
void sort_for_report(std::vector<CellResult>& cells);

/// Returns the measured cell of `strategy`, `operation`, `concurrency`, if any.
const CellResult* find_cell(const std::vector<CellResult>& cells, StrategyKind strategy,
                            Operation operation, int concurrency);

/// Returns the cells as an aligned table, grouped by operation and concurrency;
/// the ratio column compares with `reference`.
std::string format_table(const std::vector<CellResult>& cells, const Reference& reference = {});

/// Returns the cells as CSV with a header line; ratio_to_ideal is empty unless
/// `reference` names an ideal.
std::string format_csv(const std::vector<CellResult>& cells, const Reference& reference = {});

/// Returns an SVG document: one chart per operation, throughput against
/// concurrency (log2 axis), one line per strategy.
std::string render_svg(const std::vector<CellResult>& cells);

/// Returns, for hsmactor cells with a pool-side latency (--breakdown), how
/// their median splits: caller to pool and back (bridge, future or callback),
/// inside the pool beyond the PKCS#11 call (queue, session actor hop), and the
/// call itself (raw-thread's median at the same concurrency). Empty when no
/// cell has one.
std::string format_breakdown(const std::vector<CellResult>& cells);

/// Returns one line per measured cell whose in-flight requests took longer
/// than kStallSeconds to come back after the window closed (a request that
/// hangs until its deadline shows here); empty when there are none.
std::string format_stalls(const std::vector<CellResult>& cells);

/// The memory measurements of a run.
struct MemoryReport {
  /// Plain PKCS#11 sessions: the module's own cost per session.
  MemoryMeasurement raw_sessions;
  /// hsmactor session actors spawned, before they open a PKCS#11 session.
  MemoryMeasurement actors_only;
  /// hsmactor session actors each holding an open PKCS#11 session.
  MemoryMeasurement actors_with_sessions;
};

/// Returns the memory section of the report.
std::string format_memory(const MemoryReport& memory);

/// One target from the issue, checked against what was measured.
struct TargetCheck {
  std::string target;
  std::string measured;
  /// Empty when the cells needed were not measured.
  std::optional<bool> met;
};

/// Checks the current targets (issue 12). The ceiling of an operation is
/// raw-thread's best ops/s over all concurrencies of the run. Pipelined: the
/// best hsm-cq / hsm-asio cell (and hsm-batch for random and digest) over all
/// concurrencies >= 0.97 of the ceiling for ecdsa and rsa, 0.90 for hmac, 0.80
/// for random and digest; hsm-future >= openssl-engine (ecdsa, rsa) and >= 0.90
/// of raw-thread (ecdsa, rsa) at every concurrency; added median latency
/// <= 2 µs on random at 1 caller; hsm-actor >= 0.90 of hsm-future at every
/// concurrency, per operation; <= 64 KiB per session actor.
std::vector<TargetCheck> check_targets(const std::vector<CellResult>& cells,
                                       const MemoryReport& memory);

/// The callers at which the network scenario's target is checked.
inline constexpr int kNetworkTargetCallers = 256;

/// Checks the network scenario's target, per signing operation in `cells`
/// (ecdsa when none): the best hsmactor strategy at kNetworkTargetCallers
/// >= 0.95 of `ideal_ops_per_second`, with that cell's p99.
std::vector<TargetCheck> check_network_targets(const std::vector<CellResult>& cells,
                                               double ideal_ops_per_second);

/// Returns the targets as an aligned list.
std::string format_targets(const std::vector<TargetCheck>& checks);

/// Returns the smallest of 1, 2, 5 x 10^k that is >= `value` (1 for value <= 0).
double nice_ceiling(double value);

/// Returns `field` quoted for CSV when it needs to be.
std::string csv_field(const std::string& field);

}  // namespace hsmactor::bench
