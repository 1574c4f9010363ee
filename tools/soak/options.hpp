// hsmactor-soak's command line: what to send, how hard to hit it, where the
// fault module and the token are.
//
// Usage:
//   auto options = soak::parse_options(argc, argv);   // Result<SoakOptions>
//   if (!options) { std::cerr << options.error().message(); return 2; }
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "pkcs11/error.hpp"

namespace hsmactor::soak {

/// One soak run.
struct SoakOptions {
  /// Requests sent in all (streams count as one request each).
  std::size_t requests = 100000;
  /// Plain caller threads.
  std::size_t callers = 16;
  /// Outstanding requests per caller.
  std::size_t window = 8;
  /// Fraction of requests that meet an injected CKR_SESSION_HANDLE_INVALID.
  double stale_rate = 0.01;
  /// Token pulls (each followed by a reinsertion), spread over the run.
  std::size_t pulls = 1;
  /// Session actors killed, spread over the run.
  std::size_t kills = 2;
  std::uint64_t seed = 1;
  /// The fault module; empty: from the runfiles (or $HSMACTOR_FAULT_MODULE).
  std::string module;
  /// Where the SoftHSM2 token is created (kept); empty: a throwaway directory.
  std::string token_dir;
  /// Check every Nth answer outside the HSM with OpenSSL (1 = every one).
  std::size_t verify_every = 1;
  /// The pool's max_sessions.
  std::size_t sessions = 4;
  /// Percent of requests that are multi-part streams (each pins a session).
  std::size_t stream_percent = 4;
  /// A request still unanswered this long after the end of sending hangs.
  std::chrono::seconds hang_limit{30};
  /// Counts CKR_OBJECT_HANDLE_INVALID from a stream's start in a pull window
  /// apart instead of failing (a known library bug, see RESULTS.md).
  bool tolerate_stream_key_bug = false;
  bool help = false;
};

/// Returns the usage text.
std::string usage();

/// Parses `--name value` and `--name=value` flags; invalid_argument for an
/// unknown flag, a missing or malformed value, or a value out of range.
Result<SoakOptions> parse_options(int argc, const char* const* argv);

}  // namespace hsmactor::soak
