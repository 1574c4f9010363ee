// Raw PKCS#11 strategies: the limit (a session per caller thread) and the two
// shortcuts people take instead of a pool (one shared session behind a mutex,
// and a session per operation).
//
// Usage:
//   auto strategy = make_raw_strategy(StrategyKind::raw_thread, token);
//   CellResult cell = strategy->run(make_workload(Operation::ecdsa, token.keys()), 4, timing);
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "pkcs11/session.hpp"
#include "tools/bench/strategy.hpp"
#include "tools/bench/token_setup.hpp"

namespace hsmactor::bench {

/// Performs `workload` once on `session`: true, or false with `error` set.
bool perform(pkcs11::Session& session, const Workload& workload, std::string& error);

/// Returns the raw strategy `kind` (raw_thread, raw_mutex or raw_per_op) on
/// `token`, which must outlive it. `session_budget` above 0 is how many
/// sessions a capped token leaves the callers: raw_thread then runs at most
/// that many threads (a session each) and says so in the cell's caveat, since
/// more would only be refused CKR_SESSION_COUNT.
std::unique_ptr<Strategy> make_raw_strategy(StrategyKind kind, BenchToken& token,
                                            std::size_t session_budget = 0);

}  // namespace hsmactor::bench
