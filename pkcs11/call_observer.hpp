// A hook told of every PKCS#11 call a Session (or Module::open_session) makes,
// for tracing and metrics in a higher layer.
//
// A CallRecord holds the C_* function name, the session handle, the slot, how
// long the call took and the CKR_* it returned: never an argument, a PIN or a
// byte of payload, so an observer cannot leak a secret however it logs.
// Records are delivered synchronously, on the calling thread, right after the
// call returns; keep on_call() short and never call back into the session.
//
// Usage:
//   struct Tracer : CallObserver {
//     void on_call(const CallRecord& r) noexcept override { log(r.function, r.rv, r.duration); }
//   } tracer;
//   auto session = module->open_session(slot, SessionMode::read_write, &tracer);
//   session->sign(mechanism, key, digest);  // tracer sees C_SignInit, then C_Sign
#pragma once

#include <chrono>

#include "pkcs11/cryptoki.hpp"

namespace hsmactor::pkcs11 {

/// One PKCS#11 call, as an observer sees it.
struct CallRecord {
  /// The C_* function, e.g. "C_Sign": a static string, valid for the whole process.
  const char* function = "";
  /// The session the call was made on; for C_OpenSession the new session, or 0
  /// when it failed.
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  /// The slot of that session.
  CK_SLOT_ID slot = 0;
  /// Wall time inside the C_* call alone (std::chrono::steady_clock).
  std::chrono::nanoseconds duration{0};
  /// What the module returned, before any wrapper decides it counts as success.
  CK_RV rv = CKR_OK;
};

/// Receives a CallRecord for each PKCS#11 call; not owned by what it observes.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  /// Called once per C_* invocation, on the thread that made it.
  virtual void on_call(const CallRecord& record) noexcept = 0;
};

}  // namespace hsmactor::pkcs11
