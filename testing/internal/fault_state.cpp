#include "testing/internal/fault_state.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace hsmactor::fault {
namespace {

constexpr const char* kDefaultTarget = "/usr/lib/softhsm/libsofthsm2.so";

std::once_flag g_created;
FaultState* g_state = nullptr;  // never deleted: see instance()

void report(const std::string& message) {
  std::fprintf(stderr, "hsmactor_fault: %s\n", message.c_str());
}

}  // namespace

FaultState& FaultState::instance() {
  // Leaked on purpose: a caller's static destructor may still call C_Finalize
  // after ours would have run.
  std::call_once(g_created, [] { g_state = new FaultState(); });
  return *g_state;
}

void FaultState::unload() {
  if (g_state != nullptr) g_state->unload_target();
}

FaultState::FaultState() { load_environment_plan(); }

CK_FUNCTION_LIST* FaultState::target() {
  if (CK_FUNCTION_LIST* list = target_.load()) return list;
  ensure_target();
  return target_.load();
}

bool FaultState::usable() {
  ensure_target();
  return !target_failed_ && !plan_failed_;
}

void FaultState::ensure_target() {
  std::call_once(target_loaded_, [this] { load_target(); });
}

void FaultState::load_target() {
  const char* path = std::getenv("HSMACTOR_FAULT_TARGET");
  if (path == nullptr || *path == '\0') path = kDefaultTarget;
  std::lock_guard<std::mutex> lock(target_mutex_);
  target_handle_ = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (target_handle_ == nullptr) {
    target_failed_ = true;
    report(std::string("cannot load target ") + path + ": " + dlerror());
    return;
  }
  auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(target_handle_, "C_GetFunctionList"));
  CK_FUNCTION_LIST* list = nullptr;
  const CK_RV rv = get_function_list == nullptr ? CKR_GENERAL_ERROR
                                                : get_function_list(&list);
  if (rv != CKR_OK || list == nullptr) {
    target_failed_ = true;
    report(std::string("target ") + path + " has no usable C_GetFunctionList");
    dlclose(target_handle_);
    target_handle_ = nullptr;
    return;
  }
  target_.store(list);
}

void FaultState::load_environment_plan() {
  const char* text = std::getenv("HSMACTOR_FAULT_PLAN");
  if (text == nullptr) return;
  const PlanParse parsed = parse_plan(text);
  if (!parsed.ok()) {
    // A subprocess with a typo in its plan must not pass as if unfaulted.
    plan_failed_ = true;
    report("bad HSMACTOR_FAULT_PLAN " + parsed.error);
    return;
  }
  apply_plan(parsed.plan);
}

void FaultState::unload_target() {
  std::lock_guard<std::mutex> lock(target_mutex_);
  target_.store(nullptr);
  if (target_handle_ != nullptr) dlclose(target_handle_);
  target_handle_ = nullptr;
}

// ---------------------------------------------------------------------------
// Per-call hooks.

void FaultState::count_call(Function function) {
  calls_[index_of(function)].fetch_add(1);
}

void FaultState::sleep_latency(Function function) const {
  const unsigned long us = latency_us_[index_of(function)].load();
  if (us != 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

std::optional<CK_RV> FaultState::fire_rule(Function function) {
  const std::size_t i = index_of(function);
  if (!has_rules_[i].load()) return std::nullopt;
  std::lock_guard<std::mutex> lock(rules_mutex_);
  std::optional<CK_RV> fired;
  for (Rule& rule : rules_[i]) {
    ++rule.seen;
    const bool due = rule.seen > rule.after &&
                     (rule.times == 0 || rule.fired < rule.times);
    if (!fired && due) {
      ++rule.fired;
      fired = rule.rv;
    }
  }
  return fired;
}

// ---------------------------------------------------------------------------
// The session table.

OpenTicket FaultState::begin_open(CK_SLOT_ID slot) {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  if (removed_.load()) return OpenTicket{CKR_TOKEN_NOT_PRESENT, epoch_};
  const CK_ULONG max = max_sessions_.load();
  unsigned long& count = slot_sessions_[slot];
  if (max != 0 && count >= max) return OpenTicket{CKR_SESSION_COUNT, epoch_};
  ++count;
  return OpenTicket{CKR_OK, epoch_};
}

CK_RV FaultState::finish_open(CK_SLOT_ID slot, const OpenTicket& ticket,
                              CK_RV real_rv, CK_SESSION_HANDLE real,
                              CK_SESSION_HANDLE* handle) {
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    if (real_rv == CKR_OK && ticket.epoch == epoch_ && !removed_.load()) {
      auto record = std::make_shared<SessionRecord>();
      record->handle = next_handle_++;
      record->real = real;
      record->slot = slot;
      sessions_.emplace(record->handle, record);
      *handle = record->handle;
      return CKR_OK;
    }
    --slot_sessions_[slot];
    if (real_rv != CKR_OK) return real_rv;
  }
  // The token was pulled while the target opened this session.
  close_real({real});
  return CKR_TOKEN_NOT_PRESENT;
}

SessionVisit FaultState::enter_session(Function function,
                                       CK_SESSION_HANDLE session) {
  const unsigned long inside = inside_.fetch_add(1) + 1;
  unsigned long max = max_inside_.load();
  while (inside > max && !max_inside_.compare_exchange_weak(max, inside)) {
  }

  SessionVisit visit;
  visit.thread = gettid();
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  const auto found = sessions_.find(session);
  if (found == sessions_.end()) return visit;
  visit.record = found->second;
  visit.real = visit.record->real;
  for (const Occupant& occupant : visit.record->occupants) {
    if (occupant.thread == visit.thread) continue;
    violations_.fetch_add(1);
    last_violation_ = std::string(function_name(function)) + " on session " +
                      std::to_string(session) + " entered by thread " +
                      std::to_string(visit.thread) + " while thread " +
                      std::to_string(occupant.thread) + " is inside " +
                      function_name(occupant.function);
    break;
  }
  visit.record->occupants.push_back(Occupant{visit.thread, function});
  return visit;
}

void FaultState::leave_session(const SessionVisit& visit, Function function,
                               bool closed) {
  std::vector<CK_SESSION_HANDLE> to_close;
  if (visit.record != nullptr) {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    SessionRecord& record = *visit.record;
    const auto me = std::find_if(
        record.occupants.begin(), record.occupants.end(),
        [&](const Occupant& o) {
          return o.thread == visit.thread && o.function == function;
        });
    if (me != record.occupants.end()) record.occupants.erase(me);
    if (closed) {
      record.real_open = false;
      if (record.live) drop_locked(visit.record, to_close);
    } else if (!record.live && record.real_open && record.occupants.empty()) {
      // Invalidated or lost while we were inside: ours to close now.
      record.real_open = false;
      to_close.push_back(record.real);
    }
    if (!record.real_open || record.occupants.empty()) {
      closing_.erase(std::remove(closing_.begin(), closing_.end(), visit.record),
                     closing_.end());
    }
  }
  inside_.fetch_sub(1);
  close_real(to_close);
}

void FaultState::drop_locked(std::shared_ptr<SessionRecord> record,
                             std::vector<CK_SESSION_HANDLE>& to_close) {
  record->live = false;
  sessions_.erase(record->handle);
  --slot_sessions_[record->slot];
  if (!record->real_open) return;
  if (record->occupants.empty()) {
    record->real_open = false;
    to_close.push_back(record->real);
  } else {
    closing_.push_back(record);
  }
}

void FaultState::drop_all_locked(std::vector<CK_SESSION_HANDLE>& to_close) {
  // drop_locked erases from the table, so walk a copy.
  std::vector<std::shared_ptr<SessionRecord>> records;
  records.reserve(sessions_.size());
  for (const auto& entry : sessions_) records.push_back(entry.second);
  for (const auto& record : records) drop_locked(record, to_close);
}

void FaultState::close_real(
    const std::vector<CK_SESSION_HANDLE>& sessions) {
  if (sessions.empty()) return;
  CK_FUNCTION_LIST* list = target();
  if (list == nullptr) return;
  for (CK_SESSION_HANDLE session : sessions) list->C_CloseSession(session);
}

void FaultState::forget_slot_sessions(CK_SLOT_ID slot) {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  std::vector<std::shared_ptr<SessionRecord>> records;
  for (const auto& entry : sessions_) {
    if (entry.second->slot == slot) records.push_back(entry.second);
  }
  for (const auto& record : closing_) {
    if (record->slot == slot) records.push_back(record);
  }
  std::vector<CK_SESSION_HANDLE> already_closed;
  for (const auto& record : records) {
    record->real_open = false;
    if (record->live) drop_locked(record, already_closed);
  }
  closing_.erase(std::remove_if(closing_.begin(), closing_.end(),
                                [](const auto& r) { return !r->real_open; }),
                 closing_.end());
}

void FaultState::forget_all_sessions() {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  ++epoch_;
  for (const auto& entry : sessions_) entry.second->real_open = false;
  for (const auto& record : closing_) record->real_open = false;
  closing_.clear();
  std::vector<CK_SESSION_HANDLE> already_closed;
  drop_all_locked(already_closed);
}

// ---------------------------------------------------------------------------
// Control.

void FaultState::reset() {
  {
    std::lock_guard<std::mutex> lock(rules_mutex_);
    for (std::size_t i = 0; i < kFunctionCount; ++i) {
      rules_[i].clear();
      has_rules_[i].store(false);
    }
  }
  for (auto& latency : latency_us_) latency.store(0);
  max_sessions_.store(0);
  removed_.store(false);
  reset_counts();
}

void FaultState::reset_counts() {
  for (auto& calls : calls_) calls.store(0);
  violations_.store(0);
  max_inside_.store(inside_.load());
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  last_violation_.clear();
}

void FaultState::apply_plan(const Plan& plan) {
  for (const PlanRule& rule : plan.rules) {
    add_rule(rule.function, rule.rv, rule.after, rule.times);
  }
  for (const PlanLatency& latency : plan.latencies) {
    set_latency_us(latency.function, latency.us);
  }
}

void FaultState::add_rule(Function function, CK_RV rv, unsigned long after,
                          unsigned long times) {
  std::lock_guard<std::mutex> lock(rules_mutex_);
  rules_[index_of(function)].push_back(Rule{rv, after, times});
  has_rules_[index_of(function)].store(true);
}

void FaultState::invalidate_all_sessions() {
  std::vector<CK_SESSION_HANDLE> to_close;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    drop_all_locked(to_close);
  }
  close_real(to_close);
}

void FaultState::invalidate_session(CK_SESSION_HANDLE session) {
  std::vector<CK_SESSION_HANDLE> to_close;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    const auto found = sessions_.find(session);
    if (found == sessions_.end()) return;
    drop_locked(found->second, to_close);
  }
  close_real(to_close);
}

void FaultState::remove_token() {
  std::vector<CK_SESSION_HANDLE> to_close;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    removed_.store(true);
    ++epoch_;
    drop_all_locked(to_close);
  }
  // Closing the target's sessions ends its login state, as a real reset does
  // (SoftHSM2 logs out when a token's last session closes).
  close_real(to_close);
}

void FaultState::insert_token() { removed_.store(false); }

void FaultState::set_latency_us(std::optional<Function> function,
                                unsigned long us) {
  if (function) {
    latency_us_[index_of(*function)].store(us);
    return;
  }
  for (auto& latency : latency_us_) latency.store(us);
}

unsigned long FaultState::call_count(Function function) const {
  return calls_[index_of(function)].load();
}

unsigned long FaultState::open_sessions() const {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  return static_cast<unsigned long>(sessions_.size());
}

std::string FaultState::last_violation() const {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  return last_violation_;
}

}  // namespace hsmactor::fault
