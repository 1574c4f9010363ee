#include "tools/bench/strategies_raw.hpp"

#include <mutex>

namespace hsmactor::bench {
namespace {

/// A session per caller thread, opened before the clock starts and closed on
/// that thread afterwards: no sharing, no locking, the most the module allows.
class RawPerThread final : public Strategy {
 public:
  RawPerThread(BenchToken& token, std::size_t session_budget)
      : token_(token), session_budget_(session_budget) {}

  StrategyKind kind() const override { return StrategyKind::raw_thread; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    int threads = concurrency;
    if (session_budget_ > 0 && static_cast<std::size_t>(concurrency) > session_budget_) {
      threads = static_cast<int>(session_budget_);
    }
    CellResult cell = run_closed_loop(
        kind(), workload.operation, threads, timing,
        [this, &workload](int, std::string& error) -> RequestFn {
          auto session = token_.module().open_session(token_.slot());
          if (!session) {
            error = session.error().message();
            return {};
          }
          auto owned = std::make_shared<pkcs11::Session>(std::move(*session));
          return [owned, &workload](std::string& error) {
            return perform(*owned, workload, error);
          };
        });
    if (threads != concurrency) {
      cell.concurrency = concurrency;
      cell.caveat = "capped at " + std::to_string(threads) +
                    " threads, the sessions the token leaves beside the login";
    }
    return cell;
  }

 private:
  BenchToken& token_;
  std::size_t session_budget_;
};

/// One session shared by every caller, one request at a time.
class RawSharedMutex final : public Strategy {
 public:
  explicit RawSharedMutex(BenchToken& token) : token_(token) {}

  StrategyKind kind() const override { return StrategyKind::raw_mutex; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    auto session = token_.module().open_session(token_.slot());
    if (!session) {
      return unmeasured_cell(kind(), workload.operation, concurrency, CellStatus::failed,
                             session.error().message());
    }
    std::mutex mutex;
    return run_closed_loop(kind(), workload.operation, concurrency, timing,
                           [&](int, std::string&) -> RequestFn {
                             return [&](std::string& error) {
                               std::lock_guard<std::mutex> lock(mutex);
                               return perform(*session, workload, error);
                             };
                           });
  }

 private:
  BenchToken& token_;
};

/// C_OpenSession, the request, C_CloseSession, every time. The login survives
/// because BenchToken keeps a session of its own open.
class RawSessionPerOp final : public Strategy {
 public:
  explicit RawSessionPerOp(BenchToken& token) : token_(token) {}

  StrategyKind kind() const override { return StrategyKind::raw_per_op; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    return run_closed_loop(kind(), workload.operation, concurrency, timing,
                           [&](int, std::string&) -> RequestFn {
                             return [&](std::string& error) {
                               auto session = token_.module().open_session(token_.slot());
                               if (!session) {
                                 error = session.error().message();
                                 return false;
                               }
                               bool ok = perform(*session, workload, error);
                               if (auto closed = session->close(); !closed && ok) {
                                 error = closed.error().message();
                                 ok = false;
                               }
                               return ok;
                             };
                           });
  }

 private:
  BenchToken& token_;
};

}  // namespace

bool perform(pkcs11::Session& session, const Workload& workload, std::string& error) {
  Result<Bytes> output = Bytes();
  switch (workload.operation) {
    case Operation::ecdsa:
    case Operation::rsa:
    case Operation::hmac:
      output = session.sign(workload.mechanism, workload.key, workload.data);
      break;
    case Operation::random:
      output = session.random(workload.random_length);
      break;
    case Operation::digest:
      output = session.digest(workload.mechanism, workload.data);
      break;
  }
  if (!output) {
    error = output.error().message();
    return false;
  }
  return true;
}

std::unique_ptr<Strategy> make_raw_strategy(StrategyKind kind, BenchToken& token,
                                            std::size_t session_budget) {
  switch (kind) {
    case StrategyKind::raw_thread: return std::make_unique<RawPerThread>(token, session_budget);
    case StrategyKind::raw_mutex: return std::make_unique<RawSharedMutex>(token);
    case StrategyKind::raw_per_op: return std::make_unique<RawSessionPerOp>(token);
    default: return nullptr;
  }
}

}  // namespace hsmactor::bench
