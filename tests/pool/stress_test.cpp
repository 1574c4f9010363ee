// The pool under sustained load and faults: 16 callers send 5,000 mixed
// requests each (ECDSA P-256, RSA-2048 PKCS#1 v1.5, HMAC-SHA256, random,
// SHA-256) through the fault module while about one request in a hundred hits
// a stale session and the token is pulled and put back once in the middle.
// One future in ten is answered through a then() continuation that sleeps
// 50 ms; a trace sink re-installs itself as it goes; a streamer on a second
// pool of the same token abandons streams mid-way and lets updates time out.
//
// Every request gets exactly one answer; every signature, MAC and digest is
// checked outside the HSM; no session is ever entered by two threads at once;
// the pool's metrics add up to what was sent. Errors are allowed only while
// the token is out (until a probe signs again), and only retryable ones.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pkcs11/rv.hpp"
#include "pool/internal/key_access.hpp"
#include "pool/testing_hooks.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::faults;
using testing::pool_test_token;

constexpr std::size_t kCallers = 16;
constexpr std::size_t kRequestsPerCaller = 5000;
constexpr std::size_t kWindow = 32;              // outstanding requests per caller
constexpr std::size_t kRequestsPerFault = 100;   // about 1% stale sessions
constexpr auto kAnswerLimit = 120s;              // a future still open after this hangs
constexpr std::size_t kSlowContinuationEvery = 10;  // 10% answered by a sleeping then()

enum class Kind { ecdsa, rsa, hmac, random, digest };

struct Request {
  Kind kind = Kind::random;
  Bytes data;
  Clock::time_point sent;
};

// The keys and the answers outside the HSM.
struct Checker {
  const testing::PoolTestToken& token;

  Request make(std::size_t caller, std::size_t index) const {
    Request request;
    request.kind = static_cast<Kind>(index % 5);
    Bytes message = bytes_of("caller " + std::to_string(caller) + " request " +
                             std::to_string(index));
    request.data = request.kind == Kind::ecdsa ? testing::openssl::sha256(message) : message;
    return request;
  }

  Job job(const Request& request) const {
    Job job;
    job.data = request.data;
    switch (request.kind) {
      case Kind::ecdsa:
        job.op = Op::sign;
        job.key = internal::KeyAccess::ref(Key::private_key(testing::TestKeyLabels::ec256));
        job.mechanism = Mechanism::ecdsa();
        break;
      case Kind::rsa:
        job.op = Op::sign;
        job.key = internal::KeyAccess::ref(Key::private_key(testing::TestKeyLabels::rsa2048));
        job.mechanism = Mechanism::rsa_pkcs_sha256();
        break;
      case Kind::hmac:
        job.op = Op::sign;
        job.key = internal::KeyAccess::ref(Key::secret_key(testing::TestKeyLabels::hmac));
        job.mechanism = Mechanism::hmac_sha256();
        break;
      case Kind::random:
        job.op = Op::random;
        job.length = 32;
        break;
      case Kind::digest:
        job.op = Op::digest;
        job.mechanism = Mechanism::sha256();
        break;
    }
    return job;
  }

  bool valid(const Request& request, const Bytes& answer) const {
    switch (request.kind) {
      case Kind::ecdsa:
        return testing::openssl::verify_ecdsa(token.ec256_public, request.data, answer);
      case Kind::rsa:
        return testing::openssl::verify_rsa_pkcs1_sha256(token.rsa2048_public, request.data,
                                                         answer);
      case Kind::hmac:
        return answer == testing::openssl::hmac_sha256(token.keys.hmac_value, request.data);
      case Kind::random:
        return answer.size() == 32;
      case Kind::digest:
        return answer == testing::openssl::sha256(request.data);
    }
    return false;
  }
};

// When the token was out: from just before remove_token() until a probe signs
// again after insert_token().
struct RemovalWindow {
  std::atomic<std::int64_t> start_ns{INT64_MAX};
  std::atomic<std::int64_t> end_ns{INT64_MAX};

  static std::int64_t ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  /// Returns true if a request sent at `sent` and answered at `answered` overlaps it.
  bool overlaps(Clock::time_point sent, Clock::time_point answered) const {
    return ns(sent) <= end_ns.load() && ns(answered) >= start_ns.load();
  }
};

// An error that a token reset may cause and a caller may retry.
bool retryable_reset_error(const Error& error) {
  bool code_fits = pkcs11::is_stale_session_rv(error.rv()) || pkcs11::is_token_absent_rv(error.rv());
  bool condition_fits = error.condition() == Condition::pkcs11_error ||
                        error.condition() == Condition::stale_session_retry_failed;
  bool category_fits =
      error.category() == Category::retry || error.category() == Category::reauthenticate;
  return code_fits && condition_fits && category_fits;
}

// What all callers found, merged under a lock.
struct Tally {
  std::mutex mutex;
  std::size_t verified = 0;
  std::size_t allowed_errors = 0;
  std::map<std::string, std::size_t> allowed_by_code;
  std::vector<std::string> failures;  // each one fails the test

  void merge(std::size_t ok, std::size_t allowed, std::map<std::string, std::size_t> by_code,
             std::vector<std::string> failed) {
    std::lock_guard<std::mutex> lock(mutex);
    verified += ok;
    allowed_errors += allowed;
    for (auto& [code, count] : by_code) allowed_by_code[code] += count;
    failures.insert(failures.end(), failed.begin(), failed.end());
  }
};

// One caller's bookkeeping of its answers.
struct CallerTally {
  std::size_t verified = 0;
  std::size_t allowed = 0;
  std::map<std::string, std::size_t> allowed_by_code;
  std::vector<std::string> failures;

  void judge(const Checker& checker, const RemovalWindow& window, std::size_t caller,
             std::size_t index, const Request& request, const Result<Bytes>& answer,
             Clock::time_point answered) {
    if (answer.ok()) {
      if (checker.valid(request, *answer)) {
        verified++;
      } else {
        fail(caller, index, "answer does not check out");
      }
      return;
    }
    const Error& error = answer.error();
    if (window.overlaps(request.sent, answered) && retryable_reset_error(error)) {
      allowed++;
      allowed_by_code[std::string(to_string(error.condition())) + "/" + error.rv_name()]++;
      return;
    }
    fail(caller, index, error.message());
  }

  void fail(std::size_t caller, std::size_t index, const std::string& why) {
    if (failures.size() < 20) {
      failures.push_back("caller " + std::to_string(caller) + " request " +
                         std::to_string(index) + ": " + why);
    } else {
      failures.push_back("...");
    }
  }
};

// Sends through the Future API, at most kWindow outstanding.
void future_caller(const Token& token, const Checker& checker, const RemovalWindow& window,
                   std::size_t caller, std::atomic<std::size_t>& completed, Tally& tally) {
  struct Pending {
    std::size_t index;
    Request request;
    Future<Bytes> answer;
  };
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  Key rsa = token.private_key(testing::TestKeyLabels::rsa2048);
  Key hmac = Key::secret_key(testing::TestKeyLabels::hmac);
  CallerTally mine;
  std::deque<Pending> pending;
  auto settle = [&] {
    Pending& oldest = pending.front();
    auto answer = oldest.answer.get(kAnswerLimit);
    if (oldest.answer.valid()) {
      mine.fail(caller, oldest.index, "no answer within the limit (hang)");
    } else {
      mine.judge(checker, window, caller, oldest.index, oldest.request, answer, Clock::now());
    }
    completed++;
    pending.pop_front();
  };
  for (std::size_t i = 0; i < kRequestsPerCaller; ++i) {
    if (pending.size() == kWindow) settle();
    Request request = checker.make(caller, i);
    request.sent = Clock::now();
    Future<Bytes> answer;
    switch (request.kind) {
      case Kind::ecdsa: answer = token.sign(ec, Mechanism::ecdsa(), request.data); break;
      case Kind::rsa: answer = token.sign(rsa, Mechanism::rsa_pkcs_sha256(), request.data); break;
      case Kind::hmac: answer = token.sign(hmac, Mechanism::hmac_sha256(), request.data); break;
      case Kind::random: answer = token.random(32); break;
      case Kind::digest: answer = token.digest(Mechanism::sha256(), request.data); break;
    }
    if (i % kSlowContinuationEvery == 3) {
      // A continuation that sleeps must hold up only its own executor thread.
      auto [relay, relayed] = make_promise<Bytes>();
      answer.then([relay = std::move(relay)](Result<Bytes> result) mutable {
        std::this_thread::sleep_for(50ms);
        relay.set_result(std::move(result));
      });
      answer = std::move(relayed);
    }
    pending.push_back(Pending{i, std::move(request), std::move(answer)});
  }
  while (!pending.empty()) settle();
  tally.merge(mine.verified, mine.allowed, mine.allowed_by_code, mine.failures);
}

// Sends Jobs with callbacks, at most kWindow outstanding; counts every call of
// every callback.
class CallbackCaller {
 public:
  explicit CallbackCaller(std::size_t caller) : caller_(caller), slots_(kRequestsPerCaller) {}

  void run(const Token& token, const Checker& checker, const RemovalWindow& window,
           std::atomic<std::size_t>& completed, Tally& tally) {
    CallerTally mine;
    std::deque<std::pair<std::size_t, Request>> pending;
    auto settle = [&] {
      auto& [index, request] = pending.front();
      Slot& slot = slots_[index];
      std::optional<Result<JobResult>> answer;
      Clock::time_point answered;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (answered_.wait_for(lock, kAnswerLimit, [&] { return slot.answer.has_value(); })) {
          answer = std::move(slot.answer);
          slot.answer.reset();  // keep memory flat
          answered = slot.answered;
        }
      }
      // Checked outside the lock: deliver() runs on a CAF thread and must not
      // wait for OpenSSL.
      if (!answer) {
        mine.fail(caller_, index, "callback not called within the limit (hang)");
      } else {
        Result<Bytes> bytes = answer->ok() ? Result<Bytes>(std::move((*answer)->bytes))
                                           : Result<Bytes>(answer->error());
        mine.judge(checker, window, caller_, index, request, bytes, answered);
      }
      completed++;
      pending.pop_front();
    };
    for (std::size_t i = 0; i < kRequestsPerCaller; ++i) {
      if (pending.size() == kWindow) settle();
      Request request = checker.make(caller_, i);
      request.sent = Clock::now();
      testing_hooks::submit(token, checker.job(request))
          .then([this, i](Result<JobResult> answer) { deliver(i, std::move(answer)); });
      pending.emplace_back(i, std::move(request));
    }
    while (!pending.empty()) settle();
    tally.merge(mine.verified, mine.allowed, mine.allowed_by_code, mine.failures);
  }

  /// Returns how many callbacks ran other than exactly once.
  std::size_t not_called_once() const {
    std::size_t wrong = 0;
    for (const auto& slot : slots_) wrong += slot.calls.load() != 1;
    return wrong;
  }

 private:
  struct Slot {
    std::atomic<int> calls{0};
    std::optional<Result<JobResult>> answer;  // by mutex_
    Clock::time_point answered;               // by mutex_
  };

  void deliver(std::size_t index, Result<JobResult> answer) {
    Slot& slot = slots_[index];
    if (slot.calls++ != 0) return;  // counted; a second answer is never used
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.answered = Clock::now();
      slot.answer = std::move(answer);
    }
    answered_.notify_all();
  }

  std::size_t caller_;
  std::vector<Slot> slots_;
  std::mutex mutex_;
  std::condition_variable answered_;
};

// Injects one stale-session fault at a time, about once per kRequestsPerFault
// answers, and pulls the token once half the requests are answered.
class Saboteur {
 public:
  Saboteur(const Token& token, RemovalWindow& window, const std::atomic<std::size_t>& completed,
           std::size_t total)
      : token_(token), window_(window), completed_(completed), total_(total),
        thread_([this] { run(); }) {}
  ~Saboteur() { stop(); }

  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::size_t faults_injected() const { return injected_; }
  std::size_t faults_retried() const { return retried_; }
  std::size_t probes() const { return probes_; }
  std::size_t probe_failures() const { return probe_failures_; }
  bool removed() const { return removed_; }
  bool recovered() const { return recovered_; }
  std::chrono::milliseconds recovery_time() const { return recovery_time_; }

 private:
  struct Fault {
    const char* function;
    CK_RV rv;
  };

  bool finished() const { return done_ || completed_.load() >= total_; }

  std::uint64_t retries() const {
    auto metrics = token_.metrics();
    return metrics ? metrics->retries : 0;
  }

  // Waits for `condition`, giving up when the load is over.
  bool wait_for(const std::function<bool()>& condition) {
    while (!condition()) {
      if (finished()) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  void inject(const Fault& fault) {
    const auto calls_before = faults().call_count(fault.function);
    const auto retries_before = retries();
    faults().add_rule(fault.function, fault.rv, 0, 1);
    injected_++;
    // One fault at a time: it fires, its job is retried on a new session, and
    // only then may the next one come (two on one job would fail it).
    if (!wait_for([&] { return faults().call_count(fault.function) > calls_before; })) return;
    if (wait_for([&] { return retries() > retries_before; })) retried_++;
  }

  void pull_and_reinsert() {
    window_.start_ns = RemovalWindow::ns(Clock::now());
    faults().remove_token();
    std::this_thread::sleep_for(200ms);
    faults().insert_token();
    auto reinserted = Clock::now();
    removed_ = true;
    Bytes digest = testing::openssl::sha256(bytes_of("probe"));
    Key key = token_.private_key(testing::TestKeyLabels::ec256);
    while (Clock::now() - reinserted < 30s) {
      probes_++;
      auto signature = token_.sign(key, Mechanism::ecdsa(), digest).get(kAnswerLimit);
      if (signature.ok()) {
        recovered_ = true;
        break;
      }
      probe_failures_++;
      std::this_thread::sleep_for(10ms);
    }
    recovery_time_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - reinserted);
    window_.end_ns = RemovalWindow::ns(Clock::now());
  }

  void run() {
    const Fault plan[] = {
        {"C_Sign", CKR_SESSION_HANDLE_INVALID},
        {"C_Digest", CKR_SESSION_CLOSED},
        {"C_GenerateRandom", CKR_SESSION_HANDLE_INVALID},
        {"C_Sign", CKR_SESSION_CLOSED},
    };
    std::size_t next = 0;
    std::size_t last_fault_at = 0;
    while (!finished()) {
      const std::size_t now = completed_.load();
      if (!removed_ && now >= total_ / 2) {
        pull_and_reinsert();
        last_fault_at = completed_.load();
      } else if (now - last_fault_at >= kRequestsPerFault) {
        inject(plan[next++ % (sizeof plan / sizeof plan[0])]);
        last_fault_at = now;
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
  }

  const Token& token_;
  RemovalWindow& window_;
  const std::atomic<std::size_t>& completed_;
  const std::size_t total_;
  std::atomic<bool> done_{false};
  std::atomic<std::size_t> injected_{0};
  std::atomic<std::size_t> retried_{0};
  std::atomic<std::size_t> probes_{0};
  std::atomic<std::size_t> probe_failures_{0};
  std::atomic<bool> removed_{false};
  std::atomic<bool> recovered_{false};
  std::chrono::milliseconds recovery_time_{0};
  std::thread thread_;  // last: starts once everything above is set
};

// Opens digest streams on its own pool until told to stop: a third are
// finished and checked, a third abandoned mid-way, a third see an update time
// out (the fault module slows C_DigestUpdate past the pool's deadline).
class Streamer {
 public:
  explicit Streamer(const Token& token) : token_(token), thread_([this] { run(); }) {}
  ~Streamer() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::size_t finished() const { return finished_; }
  std::size_t abandoned() const { return abandoned_; }
  std::size_t timed_out() const { return timed_out_; }
  std::size_t wrong() const { return wrong_; }

 private:
  void run() {
    for (std::size_t round = 0; !done_; ++round) {
      auto stream = token_.open_stream(StreamKind::digest, Mechanism::sha256()).get(kAnswerLimit);
      if (!stream) {
        std::this_thread::sleep_for(5ms);  // every session pinned or the token out: try again
        continue;
      }
      const Bytes part = bytes_of("stream part " + std::to_string(round));
      switch (round % 3) {
        case 0: {
          auto fed = stream->update(part).get(kAnswerLimit);
          auto digest = stream->finish().get(kAnswerLimit);
          if (fed && digest) {
            finished_++;
            if (*digest != testing::openssl::sha256(part)) wrong_++;
          }
          break;
        }
        case 1:
          (void)stream->update(part).get(kAnswerLimit);
          abandoned_++;  // dropped here, unfinished
          break;
        case 2: {
          faults().set_latency("C_DigestUpdate", 150ms);
          auto late = stream->update(part).get(kAnswerLimit);
          faults().set_latency("C_DigestUpdate", 0ms);
          if (!late && late.error().condition() == Condition::deadline_exceeded) timed_out_++;
          break;
        }
      }
    }
  }

  const Token& token_;
  std::atomic<bool> done_{false};
  std::atomic<std::size_t> finished_{0};
  std::atomic<std::size_t> abandoned_{0};
  std::atomic<std::size_t> timed_out_{0};
  std::atomic<std::size_t> wrong_{0};
  std::thread thread_;  // last: starts once everything above is set
};

TEST_CASE("16 callers x 5000 mixed requests through stale sessions and a token reset") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 4;
  options.queue_limit = 1024;  // above 16 callers x 32 outstanding: nothing is refused
  options.default_deadline = 60s;
  Token token = testing::open_or_throw(hsm, options);
  TokenOptions stream_options = testing::options_for(test_token);
  stream_options.max_sessions = 2;
  stream_options.default_deadline = 100ms;
  Token stream_token = testing::open_or_throw(hsm, stream_options);
  const Checker checker{test_token};
  const std::size_t total = kCallers * kRequestsPerCaller;

  // A trace sink that installs itself again every 500 events, from inside.
  auto trace_events = std::make_shared<std::atomic<std::size_t>>(0);
  auto sink = std::make_shared<TraceSink>();
  *sink = [&token, trace_events, weak = std::weak_ptr<TraceSink>(sink)](const TraceEvent&) {
    if (trace_events->fetch_add(1) % 500 == 0) {
      if (auto again = weak.lock()) token.set_trace_sink(*again);
    }
  };
  token.set_trace_sink(*sink);

  const auto started = Clock::now();
  RemovalWindow window;
  std::atomic<std::size_t> completed{0};
  Tally tally;
  std::vector<std::unique_ptr<CallbackCaller>> callback_callers;
  for (std::size_t c = 0; c < kCallers; c += 2) {
    callback_callers.push_back(std::make_unique<CallbackCaller>(c + 1));
  }
  Saboteur saboteur(token, window, completed, total);
  Streamer streamer(stream_token);
  std::vector<std::thread> callers;
  for (std::size_t c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      if (c % 2 == 0) {
        future_caller(token, checker, window, c, completed, tally);
      } else {
        callback_callers[c / 2]->run(token, checker, window, completed, tally);
      }
    });
  }
  for (auto& caller : callers) caller.join();
  saboteur.stop();
  streamer.stop();
  token.set_trace_sink(nullptr);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);

  // One more round trip through the bridge and the pool before counting calls.
  auto last = token.random(8).get(kAnswerLimit);
  INFO("last request: " << (last.ok() ? "ok" : last.error().message()));
  REQUIRE(last.ok());
  auto metrics = token.metrics();
  INFO("metrics: " << (metrics.ok() ? "ok" : metrics.error().message()));
  REQUIRE(metrics.ok());

  std::string allowed_codes;
  for (const auto& [code, count] : tally.allowed_by_code) {
    allowed_codes += " " + code + "=" + std::to_string(count);
  }
  WARN("stress: " << total << " requests in " << elapsed.count() << " ms; "
                  << saboteur.faults_injected() << " stale-session faults ("
                  << saboteur.faults_retried() << " seen retried); token back after "
                  << saboteur.recovery_time().count() << " ms and " << saboteur.probes()
                  << " probes; errors in the removal window:" << allowed_codes
                  << "; pool retries " << metrics->retries << ", session restarts "
                  << metrics->session_restarts << ", max threads inside sessions "
                  << faults().max_concurrency());

  INFO("first failures: " << (tally.failures.empty() ? "none" : tally.failures.front()));
  CHECK(tally.failures.empty());
  CHECK(tally.verified + tally.allowed_errors == total);
  for (const auto& caller : callback_callers) CHECK(caller->not_called_once() == 0);

  // The faults really happened and were healed.
  CHECK(saboteur.removed());
  CHECK(saboteur.recovered());
  CHECK(saboteur.faults_injected() >= total / kRequestsPerFault / 2);
  CHECK(metrics->retries >= saboteur.faults_retried());

  // The metrics add up to what was sent (the final random and the probes too).
  const std::size_t sent = total + saboteur.probes() + 1;
  CHECK(metrics->requests == sent);
  CHECK(metrics->succeeded + metrics->failed == metrics->requests);
  CHECK(metrics->failed == tally.allowed_errors + saboteur.probe_failures());
  CHECK(metrics->overloaded == 0);
  CHECK(metrics->queue_depth == 0);

  // Streams: each kind happened, digests checked, and no session was lost to
  // an abandoned or timed-out stream: none stays pinned, the module holds no
  // session beyond the pools' and the login's, and the stream pool can still
  // pin every one of its sessions at once.
  CHECK(streamer.finished() > 0);
  CHECK(streamer.abandoned() > 0);
  CHECK(streamer.timed_out() > 0);
  CHECK(streamer.wrong() == 0);
  CHECK(*trace_events > total);
  std::size_t pooled = 0;
  CHECK(testing::eventually([&] {
    auto a = token.metrics();
    auto b = stream_token.metrics();
    if (!a || !b) return false;
    pooled = a->sessions_open + b->sessions_open;
    return a->sessions_busy == 0 && b->sessions_busy == 0;
  }));
  INFO("pooled sessions " << pooled << ", module sessions " << faults().open_sessions());
  CHECK(faults().open_sessions() <= pooled + 1);
  {
    auto first = stream_token.open_stream(StreamKind::digest, Mechanism::sha256());
    auto second = stream_token.open_stream(StreamKind::digest, Mechanism::sha256());
    auto one = first.get(kAnswerLimit);
    auto two = second.get(kAnswerLimit);
    CHECK(one.ok());
    CHECK(two.ok());
  }
  WARN("streams: " << streamer.finished() << " finished, " << streamer.abandoned()
                   << " abandoned, " << streamer.timed_out() << " timed out; trace events "
                   << trace_events->load());

  // Sessions were shared between threads over time, never at the same time.
  CHECK(faults().max_concurrency() >= 2);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
