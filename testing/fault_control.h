// Control API of the fault-injecting PKCS#11 module (libhsmactor_fault.so).
//
// The module forwards every C_* function to a real module (HSMACTOR_FAULT_TARGET,
// default /usr/lib/softhsm/libsofthsm2.so) and, on command, returns chosen
// errors, invalidates sessions, simulates token removal, caps the session count,
// adds latency, counts calls and records which thread is inside which session.
// Tests reach these functions with dlsym() on the module's handle (see
// FaultControl in fault_control.hpp); a plan in HSMACTOR_FAULT_PLAN, read when
// the module is first used, installs rules in subprocesses.
//
// Usage:
//   hsmactor_fault_reset();
//   hsmactor_fault_add_rule("C_Sign", CKR_DEVICE_REMOVED, 2, 1);  // third C_Sign fails
//   ... drive the code under test ...
//   assert(hsmactor_fault_violations() == 0);
//
// Plan syntax (hsmactor_fault_load_plan and HSMACTOR_FAULT_PLAN):
//   plan    := clause { ';' clause }
//   clause  := function ':' setting { setting }     (empty clauses are ignored)
//   setting := rv=<CKR_NAME|0xHEX|DECIMAL> | after=<N> | times=<N> | latency_us=<N>
//   A clause with rv= adds a rule (after defaults to 0, times to 1, 0 = forever);
//   latency_us= sets that function's latency; function '*' means every function
//   and accepts only latency_us=.
//   Example: "C_Sign: rv=CKR_DEVICE_REMOVED after=2 times=1; C_Login: rv=CKR_PIN_INCORRECT"
//
// Sessions: the module hands out its own session handles (1, 2, 3, ... never
// reused) and maps them to the target's, so an invalidated handle stays
// invalid even when the target reuses its number.
#pragma once

#include <stddef.h>

#include "pkcs11/cryptoki.hpp"

#ifdef __cplusplus
extern "C" {
#endif

/// Clears rules, latency, the session cap, the removal state, call counts,
/// violations and the concurrency high-water mark. Open sessions stay open.
void hsmactor_fault_reset(void);

/// Clears call counts, violations, the last violation and the concurrency
/// high-water mark, and keeps every fault in place.
void hsmactor_fault_reset_counts(void);

/// Adds the rules and latencies of `plan` (syntax above). Returns 0, or -1 and
/// installs nothing when any clause is malformed (the reason goes to stderr).
int hsmactor_fault_load_plan(const char* plan);

/// Makes `function` ("C_Sign") return `rv` without forwarding, on calls
/// after+1 ... after+times (times 0 = forever). Returns 0, or -1 for an
/// unknown function name.
int hsmactor_fault_add_rule(const char* function, CK_RV rv, unsigned long after,
                            unsigned long times);

/// Closes every open session in the target; their handles then answer
/// CKR_SESSION_HANDLE_INVALID (C_CloseSession included).
void hsmactor_fault_invalidate_all_sessions(void);

/// Closes `session` in the target; its handle then answers
/// CKR_SESSION_HANDLE_INVALID. Unknown handles are ignored.
void hsmactor_fault_invalidate_session(CK_SESSION_HANDLE session);

/// Pulls every token: sessions are lost (closed in the target), session
/// functions answer CKR_DEVICE_REMOVED, slot functions CKR_TOKEN_NOT_PRESENT.
void hsmactor_fault_remove_token(void);

/// Puts the tokens back: sessions opened before the removal stay invalid
/// (CKR_SESSION_HANDLE_INVALID) and the login state is gone.
void hsmactor_fault_insert_token(void);

/// Reports `max` as ulMaxSessionCount (and ulMaxRwSessionCount) and makes
/// C_OpenSession answer CKR_SESSION_COUNT while a slot has `max` sessions open
/// through this module. 0 = no cap.
void hsmactor_fault_set_max_sessions(CK_ULONG max);

/// Makes every call of `function` (NULL = of every function) sleep `us`
/// microseconds before it is answered. Returns 0, or -1 for an unknown name.
int hsmactor_fault_set_latency_us(const char* function, unsigned long us);

/// Returns how often `function` was called, faulted calls included, or
/// (unsigned long)-1 for an unknown function name.
unsigned long hsmactor_fault_call_count(const char* function);

/// Returns the number of sessions opened through the module and not yet
/// closed, invalidated or lost.
unsigned long hsmactor_fault_open_sessions(void);

/// Returns how often a thread entered a session while another thread was
/// inside a call on the same session.
unsigned long hsmactor_fault_violations(void);

/// Copies the description of the last violation into `buffer` (truncated,
/// always NUL-terminated when size > 0) and returns its full length; 0 when
/// there was none.
size_t hsmactor_fault_last_violation(char* buffer, size_t size);

/// Returns the most threads that were inside session functions at one time.
unsigned long hsmactor_fault_max_concurrency(void);

/// Returns the number of threads inside session functions right now.
unsigned long hsmactor_fault_threads_inside(void);

#ifdef __cplusplus
}  // extern "C"
#endif
