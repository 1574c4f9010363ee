// The fork gate: fork() waits until no thread of ours is inside a PKCS#11
// call, and no call starts until fork() returns.
//
// Why: after fork() the child has one thread and a copy of the module's
// memory. A module lock some parent thread held at that instant stays held in
// the child forever. SoftHSM2 2.6.1, for one, answers a child's C_Initialize
// with CKR_CRYPTOKI_ALREADY_INITIALIZED and keeps the parent's state, so the
// child's first C_GetTokenInfo blocked on a token mutex a signing parent
// thread held at the fork (seen in gdb). With every call from this layer
// inside the gate, the child inherits the module between calls, its locks
// free. Calls by other code in the process (not through pkcs11::) are not
// gated. A fork waits for the longest call in flight (a key generation, say).
//
// Usage (inside pkcs11/ only):
//   ForkGateScope gate;   // held across exactly one C_* call
//   rv = functions->C_Sign(...);
#pragma once

namespace hsmactor::pkcs11 {

/// Holds fork() off while it lives; waits first if a fork is under way.
/// Costs two atomic operations when no fork is.
class ForkGateScope {
 public:
  ForkGateScope();
  ~ForkGateScope();
  ForkGateScope(const ForkGateScope&) = delete;
  ForkGateScope& operator=(const ForkGateScope&) = delete;
};

}  // namespace hsmactor::pkcs11
