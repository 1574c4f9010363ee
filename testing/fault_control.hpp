// C++ handle on the fault module's control API, for tests.
//
// FaultControl dlopen()s the fault module by path. The dynamic loader hands
// back the instance the code under test already loaded (same file, same
// handle), so the faults set here are the faults that code sees. Misuse (a
// missing module or symbol, an unknown function name, a bad plan) throws, so a
// test cannot pass without the fault it meant to inject.
//
// Bazel: data = ["@hsmactor//testing:fault_module"],
//        deps = ["@hsmactor//testing:fault_control"].
//
// Usage:
//   FaultControl faults(fault_module_path());
//   faults.reset();
//   faults.add_rule("C_Sign", CKR_DEVICE_REMOVED, /*after=*/2, /*times=*/1);
//   ... exercise the code under test with fault_module_path() as its module ...
//   REQUIRE(faults.violations() == 0);
#pragma once

#include <chrono>
#include <string>

#include "pkcs11/cryptoki.hpp"
#include "testing/fault_control.h"

namespace hsmactor::fault {

/// Returns the path of libhsmactor_fault.so: $HSMACTOR_FAULT_MODULE if set,
/// else from the Bazel runfiles ($TEST_SRCDIR, $RUNFILES_DIR, then
/// <executable>.runfiles), under whatever name the building workspace gave
/// this repository. Throws std::runtime_error listing the places tried.
std::string fault_module_path();

class FaultControl {
 public:
  /// Loads the module at `path` and resolves every control function; throws
  /// std::runtime_error naming what is missing.
  explicit FaultControl(const std::string& path);
  ~FaultControl();

  FaultControl(const FaultControl&) = delete;
  FaultControl& operator=(const FaultControl&) = delete;

  /// Returns the dlopen() handle of the module.
  void* handle() const { return handle_; }

  /// Clears every fault and statistic; sessions stay open.
  void reset() const;
  /// Clears call counts, violations and the concurrency high-water mark.
  void reset_counts() const;
  /// Adds the rules and latencies of `plan`; throws std::invalid_argument if
  /// it does not parse (and then installs nothing).
  void load_plan(const std::string& plan) const;
  /// Makes `function` return `rv` on calls after+1 ... after+times
  /// (times 0 = forever), without forwarding them (a failed single-part
  /// C_Sign/C_Verify/C_Encrypt/C_Decrypt/C_Digest still ends the real
  /// module's operation, as a compliant module's failure does, except for
  /// CKR_BUFFER_TOO_SMALL, which leaves it active for the retry).
  void add_rule(const std::string& function, CK_RV rv, unsigned long after = 0,
                unsigned long times = 1) const;
  /// Closes every session in the target; its handles become invalid.
  void invalidate_all_sessions() const;
  /// Closes `session` in the target; its handle becomes invalid.
  void invalidate_session(CK_SESSION_HANDLE session) const;
  /// Pulls the tokens (sessions lost, CKR_DEVICE_REMOVED/TOKEN_NOT_PRESENT).
  void remove_token() const;
  /// Puts the tokens back; earlier sessions stay invalid, login is gone.
  void insert_token() const;
  /// Caps sessions per slot (and reports the cap); 0 removes the cap.
  void set_max_sessions(CK_ULONG max) const;
  /// Sets the latency of `function`.
  void set_latency(const std::string& function,
                   std::chrono::microseconds latency) const;
  /// Sets the latency of every function.
  void set_latency_all(std::chrono::microseconds latency) const;
  /// Returns the calls of `function` ("C_Sign") so far, faulted ones included.
  unsigned long call_count(const std::string& function) const;
  /// Returns the sessions open through the module.
  unsigned long open_sessions() const;
  /// Returns how often two threads were inside one session at once.
  unsigned long violations() const;
  /// Returns the description of the last violation; empty if none.
  std::string last_violation() const;
  /// Returns the most threads inside session functions at one time.
  unsigned long max_concurrency() const;
  /// Returns the threads inside session functions right now.
  unsigned long threads_inside() const;

 private:
  void* handle_ = nullptr;
  decltype(&hsmactor_fault_reset) reset_ = nullptr;
  decltype(&hsmactor_fault_reset_counts) reset_counts_ = nullptr;
  decltype(&hsmactor_fault_load_plan) load_plan_ = nullptr;
  decltype(&hsmactor_fault_add_rule) add_rule_ = nullptr;
  decltype(&hsmactor_fault_invalidate_all_sessions) invalidate_all_ = nullptr;
  decltype(&hsmactor_fault_invalidate_session) invalidate_session_ = nullptr;
  decltype(&hsmactor_fault_remove_token) remove_token_ = nullptr;
  decltype(&hsmactor_fault_insert_token) insert_token_ = nullptr;
  decltype(&hsmactor_fault_set_max_sessions) set_max_sessions_ = nullptr;
  decltype(&hsmactor_fault_set_latency_us) set_latency_us_ = nullptr;
  decltype(&hsmactor_fault_call_count) call_count_ = nullptr;
  decltype(&hsmactor_fault_open_sessions) open_sessions_ = nullptr;
  decltype(&hsmactor_fault_violations) violations_ = nullptr;
  decltype(&hsmactor_fault_last_violation) last_violation_ = nullptr;
  decltype(&hsmactor_fault_max_concurrency) max_concurrency_ = nullptr;
  decltype(&hsmactor_fault_threads_inside) threads_inside_ = nullptr;
};

}  // namespace hsmactor::fault
