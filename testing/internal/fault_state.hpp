// The thread-safe state behind the fault module: the loaded target, the
// installed faults, the call counters and the session table with its thread
// tracker. fault_module.cpp's forwarders consult it around every call; the
// hsmactor_fault_* control functions change it.
//
// Locking: three small mutexes (the target, the rules, the session table),
// each held for a few instructions and never across a call into the target,
// so concurrent callers stay concurrent. Counters are atomics.
//
// Sessions: every session opened through the module gets a handle of ours
// (1, 2, 3, ... never reused) mapped to the target's. A session leaves the
// table when it is closed, invalidated or lost to a token removal; its target
// session is then closed by us, unless a thread is still inside a call on it,
// in which case the last thread to leave closes it. (Closing a target session
// under a running call would free state that call is using.)
//
// Usage (from a forwarder):
//   FaultState& state = FaultState::instance();
//   state.count_call(Function::sign);
//   SessionVisit visit = state.enter_session(Function::sign, session);
//   ... forward with visit.real ...
//   state.leave_session(visit, Function::sign, /*closed=*/false);
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pkcs11/cryptoki.hpp"
#include "testing/internal/fault_names.hpp"
#include "testing/internal/fault_plan.hpp"

namespace hsmactor::fault {

/// A thread inside a call on one session.
struct Occupant {
  pid_t thread;
  Function function;
};

/// One session opened through the module. Guarded by the session table's
/// mutex; shared with the threads inside it so it outlives its table entry.
struct SessionRecord {
  CK_SESSION_HANDLE handle;  // ours
  CK_SESSION_HANDLE real;    // the target's
  CK_SLOT_ID slot;
  bool live = true;       // in the table: calls are forwarded
  bool real_open = true;  // the target's session is still open
  std::vector<Occupant> occupants;
};

/// One thread's stay inside a call on a session, from enter to leave.
struct SessionVisit {
  std::shared_ptr<SessionRecord> record;  // null: the handle is not open
  CK_SESSION_HANDLE real = CK_INVALID_HANDLE;
  pid_t thread = 0;
};

/// A reservation for a session being opened (see begin_open).
struct OpenTicket {
  CK_RV rv;                // CKR_OK, CKR_TOKEN_NOT_PRESENT or CKR_SESSION_COUNT
  unsigned long epoch = 0;  // removals and finalizations seen so far
};

class FaultState {
 public:
  /// Returns the process-wide state. The first call (made when the module is
  /// loaded) installs the plan in HSMACTOR_FAULT_PLAN.
  static FaultState& instance();

  /// Closes the target module, if it was loaded; for the module's unload.
  static void unload();

  FaultState(const FaultState&) = delete;
  FaultState& operator=(const FaultState&) = delete;

  // -- Used by the forwarders.

  /// Returns the target's function list, loading the target module
  /// (HSMACTOR_FAULT_TARGET) on first use; nullptr when that failed or the
  /// module is being unloaded.
  CK_FUNCTION_LIST* target();

  /// Returns true when the target and the environment's plan both loaded;
  /// loads the target if it was not yet.
  bool usable();

  /// Counts one call of `function`.
  void count_call(Function function);

  /// Sleeps for the latency set for `function`, if any.
  void sleep_latency(Function function) const;

  /// Returns the rv of the first rule for `function` that fires on this call;
  /// every rule for the function counts the call.
  std::optional<CK_RV> fire_rule(Function function);

  /// Returns true while the tokens are pulled.
  bool token_removed() const { return removed_.load(); }

  /// Returns the session cap, 0 for none.
  CK_ULONG max_sessions() const { return max_sessions_.load(); }

  /// Reserves room for a session on `slot` under the cap.
  OpenTicket begin_open(CK_SLOT_ID slot);

  /// Ends a reservation with the target's answer: on success registers the
  /// session and stores our handle in `*handle`; closes the target's session
  /// again and answers CKR_TOKEN_NOT_PRESENT if the tokens were pulled (or
  /// the module finalized) meanwhile.
  CK_RV finish_open(CK_SLOT_ID slot, const OpenTicket& ticket, CK_RV real_rv,
                    CK_SESSION_HANDLE real, CK_SESSION_HANDLE* handle);

  /// Records the calling thread as inside `function` on `session`, counting a
  /// violation when another thread is already inside it.
  SessionVisit enter_session(Function function, CK_SESSION_HANDLE session);

  /// Ends `visit`; `closed` says the call closed the target's session.
  void leave_session(const SessionVisit& visit, Function function,
                     bool closed);

  /// Forgets the sessions of `slot` after the target closed them all.
  void forget_slot_sessions(CK_SLOT_ID slot);

  /// Forgets every session after the target was finalized.
  void forget_all_sessions();

  // -- Used by the control API.

  void reset();
  void reset_counts();
  void apply_plan(const Plan& plan);
  void add_rule(Function function, CK_RV rv, unsigned long after,
                unsigned long times);
  void invalidate_all_sessions();
  void invalidate_session(CK_SESSION_HANDLE session);
  void remove_token();
  void insert_token();
  void set_max_sessions(CK_ULONG max) { max_sessions_.store(max); }
  void set_latency_us(std::optional<Function> function, unsigned long us);
  unsigned long call_count(Function function) const;
  unsigned long open_sessions() const;
  unsigned long violations() const { return violations_.load(); }
  std::string last_violation() const;
  unsigned long max_concurrency() const { return max_inside_.load(); }
  unsigned long threads_inside() const { return inside_.load(); }

 private:
  struct Rule {
    CK_RV rv;
    unsigned long after;
    unsigned long times;  // 0 = forever
    unsigned long seen = 0;
    unsigned long fired = 0;
  };

  FaultState();
  void load_target();
  void load_environment_plan();
  void unload_target();
  void ensure_target();

  /// Takes `record` out of the table; adds its target session to `to_close`,
  /// or to closing_ while a thread is still inside it. (By value: the table's
  /// own pointer dies on the way.)
  void drop_locked(std::shared_ptr<SessionRecord> record,
                   std::vector<CK_SESSION_HANDLE>& to_close);
  /// Drops every session in the table.
  void drop_all_locked(std::vector<CK_SESSION_HANDLE>& to_close);
  /// Closes target sessions; called without the table's mutex.
  void close_real(const std::vector<CK_SESSION_HANDLE>& sessions);

  // The target module, loaded once by load_target().
  std::once_flag target_loaded_;
  std::mutex target_mutex_;
  void* target_handle_ = nullptr;  // by target_mutex_
  std::atomic<CK_FUNCTION_LIST*> target_{nullptr};
  bool target_failed_ = false;  // written once, by load_target()
  bool plan_failed_ = false;    // written once, by the constructor

  // Faults.
  std::mutex rules_mutex_;
  std::array<std::vector<Rule>, kFunctionCount> rules_;  // by rules_mutex_
  std::array<std::atomic<bool>, kFunctionCount> has_rules_{};
  std::array<std::atomic<unsigned long>, kFunctionCount> latency_us_{};
  std::atomic<CK_ULONG> max_sessions_{0};
  std::atomic<bool> removed_{false};

  // Statistics.
  std::array<std::atomic<unsigned long>, kFunctionCount> calls_{};
  std::atomic<unsigned long> violations_{0};
  std::atomic<unsigned long> inside_{0};
  std::atomic<unsigned long> max_inside_{0};

  // The session table.
  mutable std::mutex sessions_mutex_;
  std::unordered_map<CK_SESSION_HANDLE, std::shared_ptr<SessionRecord>>
      sessions_;
  // Live sessions plus reservations, per slot; what the cap is checked on.
  std::unordered_map<CK_SLOT_ID, unsigned long> slot_sessions_;
  // Out of the table, with threads still inside; the last one out closes the
  // target's session, unless the target closed it first (C_CloseAllSessions,
  // C_Finalize), in which case its number may already belong to another.
  std::vector<std::shared_ptr<SessionRecord>> closing_;
  CK_SESSION_HANDLE next_handle_ = 1;
  unsigned long epoch_ = 0;     // bumped by every removal and finalization
  std::string last_violation_;  // by sessions_mutex_
};

}  // namespace hsmactor::fault
