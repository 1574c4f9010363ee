#include "pool/pool_recorder.hpp"

#include "pkcs11/rv.hpp"

#include <functional>
#include <thread>

namespace hsmactor {

std::string error_label(const Error& error) {
  if (error.rv() == CKR_OK) return to_string(error.condition());
  if (error.condition() == Condition::pkcs11_error) return error.rv_name();
  return std::string(to_string(error.condition())) + "/" + error.rv_name();
}

void TraceHub::on_call(const pkcs11::CallRecord& record) noexcept {
  if (!active()) return;
  try {
    TraceEvent event;
    event.what = "call";
    event.operation = record.function;
    event.result = pkcs11::rv_name(record.rv);
    event.session = record.session;
    event.duration_ns = static_cast<std::uint64_t>(record.duration.count());
    event.duration_us = event.duration_ns / 1000;
    emit(event);
  } catch (...) {
    // A throwing sink must not break the PKCS#11 call it watched.
  }
}

void TraceHub::set(std::function<void(const TraceEvent&)> sink) {
  replace(std::move(sink), /*closing=*/false, /*wait=*/true);
}

void TraceHub::close() { replace(nullptr, /*closing=*/true, /*wait=*/true); }

void TraceHub::clear() noexcept {
  try {
    replace(nullptr, /*closing=*/true, /*wait=*/false);
  } catch (...) {
    // Only allocation could throw here, and nothing is allocated for nullptr.
  }
}

void TraceHub::replace(std::function<void(const TraceEvent&)> sink, bool closing, bool wait) {
  std::shared_ptr<const Sink> installed;
  if (sink) installed = std::make_shared<const Sink>(std::move(sink));
  std::shared_ptr<const Sink> replaced;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // Once closed, no sink is ever installed again (a set() racing close()).
    if (closed_) installed.reset();
    if (closing) closed_ = true;
    replaced = std::move(sink_);
    sink_ = std::move(installed);
    active_.store(sink_ != nullptr);
    // After this returns the replaced sink is never called again; a sink
    // calling set() from inside would wait for itself, so it is not waited for.
    const auto self = std::this_thread::get_id();
    if (wait) call_done_.wait(lock, [&] { return !calling_ || calling_thread_ == self; });
  }
  // `replaced` (and what it captured) goes here, unlocked.
}

void TraceHub::emit(const TraceEvent& event) noexcept {
  try {
    bool start = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!sink_) return;
      if (pending_.size() >= kMaxPending) {
        ++dropped_;
        return;
      }
      pending_.push_back(event);
      start = !delivering_;
      delivering_ = true;
    }
    if (start) post_to(executor_.get(), Task([self = shared_from_this()] { self->deliver(); }));
  } catch (...) {
    // Out of memory for a trace event: the request it describes goes on.
  }
}

void TraceHub::deliver() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (pending_.empty() || !sink_) {
      pending_.clear();  // no sink: what was queued goes nowhere
      delivering_ = false;
      return;
    }
    TraceEvent event;
    if (dropped_ > 0) {
      event.what = "trace_dropped";
      event.result = std::to_string(dropped_);
      dropped_ = 0;
    } else {
      event = std::move(pending_.front());
      pending_.pop_front();
    }
    // Taken per event, so a replaced sink gets nothing after set() returns.
    std::shared_ptr<const Sink> sink = sink_;
    calling_ = true;
    calling_thread_ = std::this_thread::get_id();
    lock.unlock();
    try {
      (*sink)(event);
    } catch (...) {
      // A throwing sink loses that event, nothing else.
    }
    sink.reset();
    lock.lock();
    calling_ = false;
    call_done_.notify_all();
  }
}

std::size_t PoolRecorder::shard_of_this_thread() {
  thread_local const std::size_t shard =
      std::hash<std::thread::id>()(std::this_thread::get_id()) % kShards;
  return shard;
}

void PoolRecorder::count(std::size_t index, const char* operation, std::uint64_t micros,
                         const Error* error, std::uint32_t attempts) {
  Shard& shard = shards_[shard_of_this_thread()];
  std::lock_guard<std::mutex> lock(shard.mutex);
  shard.requests++;
  auto& op = shard.operations[index];
  shard.names[index] = operation;
  op.requests++;
  if (!op.latency) op.latency = std::make_unique<LatencyHistogram>();
  op.latency->record(micros);
  if (error) {
    shard.failed++;
    op.errors++;
    shard.errors_by_code[error_label(*error)]++;
    if (error->condition() == Condition::overloaded) shard.overloaded++;
    if (error->condition() == Condition::deadline_exceeded) shard.deadline_exceeded++;
  } else {
    shard.succeeded++;
  }
  if (attempts > 1) {
    shard.retries++;
    shard.session_restarts++;
  }
}

void PoolRecorder::finished(const QueuedJob& job, const Result<JobResult>& result) noexcept {
  auto micros = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - job.accepted)
                                               .count());
  const Error* error = result ? nullptr : &result.error();
  std::uint32_t attempts = result ? result->attempts : 1;
  const char* operation = to_string(job.job.op);
  auto index = static_cast<std::size_t>(job.job.op);
  // An op outside the table (an actor caller's bad Job) has a slot of its own.
  count(index < kOperationCount ? index : kUnknownSlot, operation, micros, error, attempts);
  if (trace_ && trace_->active()) {
    try {
      std::string outcome = error ? error_label(*error) : "CKR_OK";
      if (error && error->condition() == Condition::overloaded) {
        trace_->emit(TraceEvent{"overloaded", operation, outcome, 0, 0});
      }
      if (attempts > 1) {
        // The session went stale: the supervisor healed the token (re-login
        // when it had lost it) and the job ran again on a new session.
        trace_->emit(TraceEvent{"restart", operation, "retried on a new session", attempts, 0});
      }
      trace_->emit(TraceEvent{"request", operation, outcome, attempts, micros});
    } catch (...) {
      // A throwing sink must not take an answer down with it.
    }
  }
}

void PoolRecorder::record(const char* operation, std::chrono::steady_clock::time_point accepted,
                          const Error* error, std::uint32_t attempts) {
  auto micros = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - accepted)
                                               .count());
  count(kStreamSlot, operation, micros, error, attempts);
  if (trace_ && trace_->active()) {
    trace_->emit(TraceEvent{"request", operation, error ? error_label(*error) : "CKR_OK",
                            attempts, micros});
  }
}

void PoolRecorder::event(const char* what, const std::string& operation,
                         const std::string& result) {
  if (trace_ && trace_->active()) trace_->emit(TraceEvent{what, operation, result, 0, 0});
}

PoolMetrics PoolRecorder::snapshot() const {
  PoolMetrics metrics;
  std::map<std::string, LatencyHistogram> latency;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    metrics.requests += shard.requests;
    metrics.succeeded += shard.succeeded;
    metrics.failed += shard.failed;
    metrics.retries += shard.retries;
    metrics.overloaded += shard.overloaded;
    metrics.deadline_exceeded += shard.deadline_exceeded;
    metrics.session_restarts += shard.session_restarts;
    for (auto& [code, n] : shard.errors_by_code) metrics.errors_by_code[code] += n;
    for (std::size_t i = 0; i < kSlots; ++i) {
      const auto& op = shard.operations[i];
      if (op.requests == 0 || shard.names[i] == nullptr) continue;
      auto& total = metrics.operations[shard.names[i]];
      total.requests += op.requests;
      total.errors += op.errors;
      latency[shard.names[i]].merge(*op.latency);
    }
  }
  metrics.session_restarts += session_restarts_.load();
  for (auto& [name, histogram] : latency) {
    auto& op = metrics.operations[name];
    op.p50_us = histogram.percentile(0.50);
    op.p99_us = histogram.percentile(0.99);
    op.max_us = histogram.max();
  }
  return metrics;
}

}  // namespace hsmactor
