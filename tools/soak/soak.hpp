// The soak run: caller threads send mixed requests through one pool while a
// saboteur injects stale sessions, pulls and reinserts the token and kills
// session actors; every answer is counted per request id and checked.
//
// Requests: ECDSA P-256 (over a SHA-256 digest), RSA-2048 PKCS#1 v1.5
// SHA-256, HMAC-SHA256, 32 random bytes, SHA-256 digests, and multi-part
// streams (digest, HMAC sign) of three chunks. A request goes by Future::get,
// Future::then, the callback API, then() on a completion queue that an
// event-loop thread drains, a batch (sign_many, digest_many, random_many: one
// request id per item), or an actor's hsmactor::request(), chosen per
// request from the seed.
//
// An error is allowed only when the faults plausibly caused it (see
// allowed_error); anything else, a wrong answer, a second answer, an answer
// missing hang_limit after the end, or a session entered by two threads at
// once fails the run.
//
// Usage:
//   Soak soak(options, token, faults, checker, &actor_system(hsm));
//   Report report = soak.run();
//   report.print(std::cout);
//   return report.passed() ? 0 : 1;
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "pkcs11/error.hpp"
#include "hsmactor.hpp"
#include "testing/fault_control.hpp"
#include "tools/soak/options.hpp"
#include "tools/soak/soak_token.hpp"

namespace caf {
class actor_system;
}

namespace hsmactor::soak {

/// What the faults had going on around a failed request.
struct FaultContext {
  /// Stale sessions are being injected at all.
  bool stale_injection = false;
  /// The request overlapped a token pull (until a probe signed again).
  bool pull_window = false;
  /// A session actor was killed while the request was in flight.
  bool in_flight_at_kill = false;
};

/// Returns true if `error` is one the injected faults plausibly cause:
/// - stale_session_retry_failed (retry category) while stale sessions are injected,
///   or around a pull or a kill;
/// - in a pull window, a stale-session or token-absent CKR_* code as
///   pkcs11_error, stale_session_retry_failed or stream_interrupted;
/// - in flight at a kill, broken_promise, stream_interrupted, or a stale code.
/// Everything else (internal_error, deadline_exceeded, overloaded, ...) is not.
bool allowed_error(const Error& error, const FaultContext& context);

/// What a run saw.
struct Report {
  std::size_t requests = 0;
  std::size_t callers = 0;
  std::size_t answered_once = 0;
  std::size_t duplicates = 0;        ///< answers beyond the first
  std::size_t hangs = 0;             ///< unanswered hang_limit after the end
  std::size_t not_sent = 0;          ///< a caller stalled before sending them
  std::size_t ok = 0;                ///< right answers
  std::size_t verified = 0;          ///< of which checked with OpenSSL
  std::size_t wrong = 0;             ///< answers that did not check out
  std::size_t allowed_errors = 0;
  std::size_t failed_errors = 0;     ///< errors the faults do not explain
  /// With --tolerate-stream-key-bug: CKR_OBJECT_HANDLE_INVALID from a stream's
  /// C_SignInit in a pull window (the library does not look the key up again).
  std::size_t known_bug_errors = 0;
  std::map<std::string, std::size_t> known_by_code;
  std::map<std::string, std::size_t> allowed_by_code;  ///< "condition/CKR_*"
  std::map<std::string, std::size_t> failed_by_code;
  std::vector<std::string> first_failures;
  std::vector<std::string> hung;         ///< the first hung requests
  std::vector<std::string> fault_times;  ///< pulls and kills, ms after the start
  std::size_t by_future_get = 0, by_then = 0, by_callback = 0, streams = 0;
  std::size_t by_completion = 0;  ///< then() on a completion queue an event loop drains
  std::size_t by_actor = 0;       ///< hsmactor::request() from an actor
  std::size_t batches = 0, batch_items = 0;
  // Faults.
  std::size_t stale_injected = 0;
  std::size_t pulls_asked = 0, pulls = 0, pulls_recovered = 0;
  std::vector<long> recovery_ms;
  std::size_t kills_asked = 0, kills_sent = 0;
  unsigned long violations = 0;
  std::string last_violation;
  unsigned long max_threads_inside = 0;
  // The pool's own counts.
  std::uint64_t pool_retries = 0, pool_session_restarts = 0, pool_requests = 0,
                pool_failed = 0;
  // Cost.
  double seconds = 0;
  double per_second = 0;
  long peak_rss_kib = 0;

  /// Returns true when nothing failed and every fault asked for happened.
  bool passed() const;
  void print(std::ostream& out) const;
};

/// One soak run over an open token (reached through the fault module).
class Soak {
 public:
  /// `actors`: the system the token's Hsm runs on, for the actor mode (null:
  /// those requests go by then() instead).
  Soak(const SoakOptions& options, const Token& token, const fault::FaultControl& faults,
       const SoakToken& keys, caf::actor_system* actors);
  ~Soak();
  Soak(const Soak&) = delete;
  Soak& operator=(const Soak&) = delete;

  /// Runs the whole soak; blocks. Call once.
  Report run();

  // After a hang, answers may still arrive and need this object: leave the
  // process without destroying it (std::_Exit).

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace hsmactor::soak
