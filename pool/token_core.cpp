#include "pool/internal/token_core.hpp"

#include <algorithm>

namespace hsmactor::internal {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(60);

}  // namespace

// ---- TokenRegistry ----

void TokenRegistry::add(const std::shared_ptr<TokenCore>& core) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Forget tokens that are gone, so a long-lived Hsm does not grow this list.
  cores_.erase(std::remove_if(cores_.begin(), cores_.end(),
                              [](const std::weak_ptr<TokenCore>& c) { return c.expired(); }),
               cores_.end());
  cores_.push_back(core);
}

void TokenRegistry::close_started() {
  std::lock_guard<std::mutex> lock(mutex_);
  closing_++;
}

void TokenRegistry::close_finished() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_--;
  }
  idle_.notify_all();
}

bool TokenRegistry::close_all(std::chrono::milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  std::vector<std::shared_ptr<TokenCore>> open;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& weak : cores_) {
      if (auto core = weak.lock()) open.push_back(std::move(core));
    }
    cores_.clear();
  }
  // Concurrently, each on a completion thread, so that one stuck module does
  // not hold up the others and the bound below covers them all.
  for (auto& core : open) {
    if (core->claim_close()) post_to(nullptr, Task([core] { core->finish_close(); }));
  }
  open.clear();
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_until(lock, deadline, [this] { return closing_ == 0; });
}

// ---- TokenCore ----

TokenCore::TokenCore(Parts parts)
    : channel_(std::move(parts.channel)),
      trace_(std::move(parts.trace)),
      executor_(std::move(parts.executor)),
      registry_(std::move(parts.registry)),
      default_deadline_(parts.default_deadline),
      label_(std::move(parts.label)),
      module_path_(std::move(parts.module_path)),
      forks_at_open_(fork_generation()),
      slot_(parts.slot),
      logged_in_(parts.logged_in),
      runtime_(std::move(parts.runtime)),
      lease_(std::move(parts.lease)),
      pool_(std::move(parts.pool)) {}

TokenCore::~TokenCore() {
  if (!claim_close()) return;
  if (forked()) {
    // The parent's actors do not run here: leak rather than wait for them.
    shut_down(take_closing());
    return;
  }
  // No waiting here: the last copy may go on any thread. Later deliveries
  // see no sink; one in progress elsewhere may still finish.
  if (trace_) trace_->clear();
  auto registry = registry_;
  post_to(nullptr, Task([closing = take_closing(), registry]() mutable {
    shut_down(std::move(closing));
    if (registry) registry->close_finished();
  }));
}

Error TokenCore::closed_error(const char* operation) {
  return Error::make(Condition::shutting_down, "the token was closed", operation);
}

Error TokenCore::forked_error(const char* operation) {
  return Error::make(Condition::forked, "this token belongs to the parent process", operation);
}

bool TokenCore::claim_close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return false;
  // Closed before it is answered: requests from now on get shutting_down.
  if (forked()) return true;  // the queue is the parent's: never touch it
  if (channel_.queue) channel_.queue->close();
  if (registry_) registry_->close_started();
  return true;
}

void TokenCore::close() {
  if (!claim_close()) {
    std::unique_lock<std::mutex> lock(close_mutex_);
    close_done_.wait(lock, [this] { return close_finished_; });
    return;
  }
  finish_close();
}

void TokenCore::finish_close() {
  if (forked()) {
    shut_down(take_closing());
  } else {
    // No sink runs once close() has returned: what it captured may go now.
    if (trace_) trace_->close();
    shut_down(take_closing());
    if (registry_) registry_->close_finished();
  }
  {
    std::lock_guard<std::mutex> lock(close_mutex_);
    close_finished_ = true;
  }
  close_done_.notify_all();
}

TokenCore::Closing TokenCore::take_closing() {
  // In a forked child the mutex may have been copied held by a parent thread
  // that does not exist here; nothing else can touch the parts then.
  std::unique_lock<std::mutex> lock(parts_mutex_, std::defer_lock);
  if (!forked()) lock.lock();
  Closing closing;
  closing.runtime = std::move(runtime_);
  closing.lease = std::move(lease_);
  closing.pool = std::move(pool_);
  closing.slot = slot_;
  closing.logged_in = logged_in_;
  return closing;
}

std::shared_ptr<Runtime> TokenCore::runtime_if_open() const {
  std::lock_guard<std::mutex> lock(parts_mutex_);
  return runtime_;
}

pool_actor TokenCore::pool_if_open() const {
  std::lock_guard<std::mutex> lock(parts_mutex_);
  return pool_;
}

void TokenCore::shut_down(Closing closing) {
  if (!closing.runtime) return;  // never started, or taken already
  auto& runtime = closing.runtime;
  if (runtime->forked()) {
    // The parent's actors do not run here: leak rather than wait for them.
    new std::shared_ptr<LibraryLease>(std::move(closing.lease));
    new pool_actor(std::move(closing.pool));
    new std::shared_ptr<Runtime>(std::move(closing.runtime));
    return;
  }
  if (closing.pool) {
    (void)runtime->ask<bool>(closing.pool, kControlTimeout, stop_atom::value).get();
    caf::anon_send_exit(closing.pool, caf::exit_reason::user_shutdown);
  }
  if (closing.logged_in && closing.lease) {
    (void)runtime->ask<bool>(closing.lease->supervisor(), kControlTimeout, logout_atom::value,
                             std::uint64_t{closing.slot})
        .get();
  }
  closing.pool = pool_actor();
  closing.lease.reset();
}

}  // namespace hsmactor::internal
