// TokenOptions: which token to open and how to run its pool.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/executor.hpp"
#include "actors/options.hpp"
#include "pkcs11/pin.hpp"

namespace hsmactor {

/// Whether open_token logs in: an explicit choice, so that a PIN that failed
/// to load (an empty Pin::from_env) is never taken for "no login".
enum class Login : std::uint8_t {
  /// Log in as the user with TokenOptions::pin (or the URI's pin-value); an
  /// empty PIN is refused with invalid_argument.
  user,
  /// Do not log in (public objects only, or a token another consumer in the
  /// process has logged in); TokenOptions::pin must be empty.
  none,
};

struct TokenOptions {
  /// The PKCS#11 module; may also come from the URI's module-path.
  std::string module_path;
  /// Select the token by label, by serial, or by an RFC 7512 pkcs11: URI
  /// (token=, serial=, module-path=, pin-value= are understood).
  std::string label;
  std::string serial;
  std::string uri;
  /// The user PIN (wiped when released); see `login`.
  Pin pin;
  Login login = Login::user;
  /// Sessions kept open at least / opened at most (never above the token's
  /// own limit, minus the one session that holds the login); 1 to kMaxSessions.
  std::size_t min_sessions = 1;
  std::size_t max_sessions = 4;
  /// Requests that may wait for a session; beyond it: `overloaded`.
  /// 1 to kMaxQueueLimit.
  std::size_t queue_limit = 1024;
  /// Deadline of a request that names none (see Token::with_deadline); more
  /// than 0, at most kMaxDeadline.
  std::chrono::milliseconds default_deadline{30000};
  /// How long an answer bound for an executor (a callback, a then()
  /// continuation, a CompletionQueue) may wait for others, so that one
  /// hand-over and one wake-up of that executor carry several: a session
  /// takes jobs it has measured cheaper than this several at once (at most
  /// 16) and hands their answers over together. A blocking get() is released
  /// as soon as its own job is done, whatever this is. 0 turns grouping off;
  /// at most kMaxCoalescingHold. The default suits operations of a few µs
  /// (random, digest, HMAC on a local module); jobs dearer than it (RSA) are
  /// never grouped.
  std::chrono::microseconds coalescing_hold{50};
  /// Where continuations (Future::then), callbacks and the trace sink run;
  /// null: hsmactor's completion pool (see actors/executor.hpp).
  std::shared_ptr<Executor> executor;
  /// Whether the module's last release calls C_Finalize (the open that
  /// starts the module decides; see FinalizePolicy). Default: never, since
  /// another consumer in the process may use the module through a path
  /// hsmactor cannot see (a wrapper module, p11-kit's proxy).
  FinalizePolicy finalize = FinalizePolicy::never;

  /// Bounds of the options above; open_token answers invalid_argument beyond.
  static constexpr std::size_t kMaxSessions = 1024;
  static constexpr std::size_t kMaxQueueLimit = std::size_t{1} << 20;
  static constexpr std::chrono::hours kMaxDeadline{24 * 366};
  static constexpr std::chrono::microseconds kMaxCoalescingHold{100000};
};

}  // namespace hsmactor
