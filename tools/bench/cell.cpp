#include "tools/bench/cell.hpp"

#include <algorithm>

namespace hsmactor::bench {

const char* to_string(Operation operation) {
  switch (operation) {
    case Operation::ecdsa: return "ecdsa";
    case Operation::rsa: return "rsa";
    case Operation::hmac: return "hmac";
    case Operation::random: return "random";
    case Operation::digest: return "digest";
  }
  return "?";
}

const char* to_string(StrategyKind strategy) {
  switch (strategy) {
    case StrategyKind::raw_thread: return "raw-thread";
    case StrategyKind::raw_mutex: return "raw-mutex";
    case StrategyKind::raw_per_op: return "raw-per-op";
    case StrategyKind::hsm_future: return "hsm-future";
    case StrategyKind::hsm_callback: return "hsm-callback";
    case StrategyKind::hsm_actor: return "hsm-actor";
    case StrategyKind::hsm_asio: return "hsm-asio";
    case StrategyKind::hsm_cq: return "hsm-cq";
    case StrategyKind::hsm_batch: return "hsm-batch";
    case StrategyKind::openssl_engine: return "openssl-engine";
  }
  return "?";
}

const char* to_string(CellStatus status) {
  switch (status) {
    case CellStatus::measured: return "measured";
    case CellStatus::unsupported: return "unsupported";
    case CellStatus::unavailable: return "unavailable";
    case CellStatus::failed: return "failed";
  }
  return "?";
}

std::vector<Operation> all_operations() {
  return {Operation::ecdsa, Operation::rsa, Operation::hmac, Operation::random,
          Operation::digest};
}

std::vector<StrategyKind> all_strategies() {
  return {StrategyKind::raw_thread,   StrategyKind::raw_mutex, StrategyKind::raw_per_op,
          StrategyKind::hsm_future,   StrategyKind::hsm_callback, StrategyKind::hsm_actor,
          StrategyKind::hsm_asio,     StrategyKind::hsm_cq,       StrategyKind::hsm_batch,
          StrategyKind::openssl_engine};
}

std::optional<Operation> parse_operation(std::string_view name) {
  for (Operation operation : all_operations()) {
    if (name == to_string(operation)) return operation;
  }
  return std::nullopt;
}

std::optional<StrategyKind> parse_strategy(std::string_view name) {
  for (StrategyKind strategy : all_strategies()) {
    if (name == to_string(strategy)) return strategy;
  }
  return std::nullopt;
}

CellResult median_run(std::vector<CellResult> runs) {
  std::sort(runs.begin(), runs.end(), [](const CellResult& a, const CellResult& b) {
    return a.ops_per_second() < b.ops_per_second();
  });
  CellResult median = runs[(runs.size() - 1) / 2];
  median.runs = static_cast<int>(runs.size());
  return median;
}

bool is_hsmactor(StrategyKind strategy) {
  return strategy == StrategyKind::hsm_future || strategy == StrategyKind::hsm_callback ||
         strategy == StrategyKind::hsm_actor || strategy == StrategyKind::hsm_asio ||
         strategy == StrategyKind::hsm_cq || strategy == StrategyKind::hsm_batch;
}

}  // namespace hsmactor::bench
