// Raw PKCS#11 strategies: the limit (a session per caller thread) and the two
// shortcuts people take instead of a pool (one shared session behind a mutex,
// and a session per operation).
//
// Usage:
//   auto strategy = make_raw_strategy(StrategyKind::raw_thread, token);
//   CellResult cell = strategy->run(make_workload(Operation::ecdsa, token.keys()), 4, timing);
#pragma once

#include <memory>
#include <string>

#include "pkcs11/session.hpp"
#include "tools/bench/strategy.hpp"
#include "tools/bench/token_setup.hpp"

namespace hsmactor::bench {

/// Performs `workload` once on `session`: true, or false with `error` set.
bool perform(pkcs11::Session& session, const Workload& workload, std::string& error);

/// Returns the raw strategy `kind` (raw_thread, raw_mutex or raw_per_op) on
/// `token`, which must outlive it.
std::unique_ptr<Strategy> make_raw_strategy(StrategyKind kind, BenchToken& token);

}  // namespace hsmactor::bench
