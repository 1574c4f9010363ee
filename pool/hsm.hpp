// Hsm: hsmactor's entry point. It owns (or borrows) the actor system hsmactor
// runs on and opens tokens.
//
// Usage:
//   hsmactor::Hsm hsm;
//   hsmactor::TokenOptions options;
//   options.uri = "pkcs11:token=signer?module-path=/usr/lib/softhsm/libsofthsm2.so";
//   options.pin = hsmactor::Pin::from_env("HSM_PIN");
//   hsmactor::Result<hsmactor::Token> token = hsm.open_token(options);
//   if (!token) return fail(token.error());            // CKR_PIN_INCORRECT, ...
#pragma once

#include <memory>

#include "actors/options.hpp"
#include "pkcs11/error.hpp"
#include "pool/token.hpp"
#include "pool/token_options.hpp"

namespace caf {
class actor_system;
}

namespace hsmactor {

class Runtime;

namespace internal {
class TokenRegistry;
struct HsmAccess;
}  // namespace internal

class Hsm {
 public:
  /// Runs on an actor system of its own.
  explicit Hsm(const RuntimeOptions& options = {});
  /// Runs on the application's actor system (see hsmactor_caf.hpp), which
  /// must outlive this Hsm.
  explicit Hsm(caf::actor_system& system);
  /// Closes every token this Hsm opened (their copies answer shutting_down
  /// from then on) and stops its actors, waiting at most
  /// RuntimeOptions::shutdown_timeout for that: past it (a PKCS#11 call that
  /// never returns), it returns and leaves the stuck actors running.
  ~Hsm();
  Hsm(const Hsm&) = delete;
  Hsm& operator=(const Hsm&) = delete;

  /// Opens a token: loads and initialises the module (once per process), finds
  /// the token, logs in (once per token per process; CKR_PIN_INCORRECT on a
  /// wrong PIN) and starts its pool. Blocks; call it from a plain thread.
  Result<Token> open_token(const TokenOptions& options);

 private:
  friend struct internal::HsmAccess;
  std::shared_ptr<Runtime> runtime_;
  std::shared_ptr<internal::TokenRegistry> tokens_;
  std::chrono::milliseconds shutdown_timeout_;
};

}  // namespace hsmactor
