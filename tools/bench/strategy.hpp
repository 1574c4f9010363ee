// The interface every measured strategy implements.
//
// Usage:
//   std::unique_ptr<Strategy> strategy = make_raw_strategy(StrategyKind::raw_mutex, token);
//   if (auto why = strategy->unsupported(Operation::hmac); why.empty())
//     CellResult cell = strategy->run(workload, 16, timing);
#pragma once

#include <string>

#include "tools/bench/cell.hpp"
#include "tools/bench/driver.hpp"
#include "tools/bench/workload.hpp"

namespace hsmactor::bench {

/// One way of getting requests to the token.
class Strategy {
 public:
  virtual ~Strategy() = default;

  virtual StrategyKind kind() const = 0;
  /// Returns why the strategy cannot run at all here (a missing engine, say),
  /// or "" when it can.
  virtual std::string unavailable() const { return {}; }
  /// Returns why `operation` cannot be measured with this strategy, or "".
  virtual std::string unsupported(Operation operation) const { return {}; }
  /// Measures `workload` with `concurrency` callers.
  virtual CellResult run(const Workload& workload, int concurrency, const Timing& timing) = 0;
};

/// Returns a cell that was not measured, with its reason.
inline CellResult unmeasured_cell(StrategyKind strategy, Operation operation, int concurrency,
                                  CellStatus status, std::string note) {
  CellResult cell;
  cell.strategy = strategy;
  cell.operation = operation;
  cell.concurrency = concurrency;
  cell.status = status;
  cell.note = std::move(note);
  return cell;
}

}  // namespace hsmactor::bench
