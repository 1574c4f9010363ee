// What a token pool has done: counts, errors by CKR_* name, latency.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace hsmactor {

/// Latency and counts of one operation.
struct OperationMetrics {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::uint64_t p50_us = 0;
  std::uint64_t p99_us = 0;
  std::uint64_t max_us = 0;
};

/// A snapshot of one token pool.
struct PoolMetrics {
  std::uint64_t requests = 0;        ///< accepted or refused, each counted once
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;          ///< succeeded + failed == requests once all answered
  std::uint64_t retries = 0;         ///< jobs retried once on a new session
  std::uint64_t overloaded = 0;      ///< refused because the queue was full
  std::uint64_t deadline_exceeded = 0;
  std::uint64_t session_restarts = 0;  ///< sessions replaced after a stale code (supervisor heals)
  std::uint64_t sessions_open = 0;
  std::uint64_t sessions_busy = 0;
  std::uint64_t sessions_max = 0;    ///< the current ceiling (lowered on CKR_SESSION_COUNT)
  std::uint64_t queue_depth = 0;
  std::uint64_t queue_limit = 0;
  /// Errors by CKR_* name, or by condition for errors without a code.
  std::map<std::string, std::uint64_t> errors_by_code;
  /// By operation name ("sign", "random", ...).
  std::map<std::string, OperationMetrics> operations;
};

/// One line of the optional trace; never contains PINs or payload data.
///
/// `what` says which kind:
///   "call"     one PKCS#11 call: operation = the C_* function, session = its
///              handle, result = its CKR_* name, duration_us = time inside it;
///   "request"  one request answered: operation = "sign", ..., result = the
///              CKR_* name or condition, attempts, duration_us = accept to answer;
///   pool events: "overloaded", "session_lost", "session_count", "stream".
struct TraceEvent {
  std::string what;
  std::string operation;
  std::string result;
  std::uint64_t attempts = 0;
  std::uint64_t duration_us = 0;
  /// "call": the session handle (0 when a C_OpenSession failed).
  std::uint64_t session = 0;
  /// "call": the duration in nanoseconds (calls are often under a microsecond).
  std::uint64_t duration_ns = 0;
};

}  // namespace hsmactor
