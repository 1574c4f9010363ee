// How a token pool sizes itself: one login for every caller, never more
// sessions than it (or the token) allows, fewer when the token runs out, and
// more again, after a back-off, when the token has room again.
#include "pool/token_pool.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "hsmactor.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

constexpr std::size_t kCallers = 8;
constexpr std::size_t kSignsPerCaller = 50;

struct LoadOutcome {
  std::size_t verified = 0;
  std::vector<std::string> failures;
};

// Has `callers` threads each send `per_caller` ECDSA signs at once, then wait
// for every answer and verify each signature with OpenSSL.
LoadOutcome sign_from_threads(const Token& token, std::size_t callers, std::size_t per_caller) {
  const auto& public_key = pool_test_token().ec256_public;
  std::vector<LoadOutcome> outcomes(callers);
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      Key key = token.private_key(testing::TestKeyLabels::ec256);
      std::vector<Bytes> digests;
      std::vector<Future<Bytes>> signatures;
      for (std::size_t i = 0; i < per_caller; ++i) {
        digests.push_back(testing::openssl::sha256(
            bytes_of("caller " + std::to_string(c) + " request " + std::to_string(i))));
        signatures.push_back(token.sign(key, Mechanism::ecdsa(), digests.back()));
      }
      for (std::size_t i = 0; i < per_caller; ++i) {
        auto signature = signatures[i].get(60s);
        if (!signature) {
          outcomes[c].failures.push_back(signature.error().message());
        } else if (testing::openssl::verify_ecdsa(public_key, digests[i], *signature)) {
          outcomes[c].verified++;
        } else {
          outcomes[c].failures.push_back("signature does not verify");
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  LoadOutcome total;
  for (auto& outcome : outcomes) {
    total.verified += outcome.verified;
    total.failures.insert(total.failures.end(), outcome.failures.begin(), outcome.failures.end());
  }
  return total;
}

// Samples the module's open sessions and the pool's own count while a load runs.
class SessionSampler {
 public:
  explicit SessionSampler(const Token& token)
      : thread_([this, token] {
          while (running_) {
            most_in_module_ = std::max<unsigned long>(most_in_module_, faults().open_sessions());
            if (auto metrics = token.metrics()) {
              most_in_pool_ = std::max<std::uint64_t>(most_in_pool_, metrics->sessions_open);
            }
            samples_++;
            std::this_thread::sleep_for(1ms);
          }
        }) {}
  ~SessionSampler() { stop(); }

  void stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  unsigned long most_in_module() const { return most_in_module_; }
  std::uint64_t most_in_pool() const { return most_in_pool_; }
  std::size_t samples() const { return samples_; }

 private:
  std::atomic<bool> running_{true};
  std::atomic<unsigned long> most_in_module_{0};
  std::atomic<std::uint64_t> most_in_pool_{0};
  std::atomic<std::size_t> samples_{0};
  std::thread thread_;
};

std::string first_failure(const LoadOutcome& outcome) {
  return outcome.failures.empty() ? std::string("none") : outcome.failures.front();
}

TEST_CASE("eight callers signing fifty times each log the token in exactly once") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 3;
  const auto logins_before = faults().call_count("C_Login");

  Token token = testing::open_or_throw(hsm, options);
  SessionSampler sampler(token);
  LoadOutcome outcome = sign_from_threads(token, kCallers, kSignsPerCaller);
  sampler.stop();

  INFO("first failure: " << first_failure(outcome));
  CHECK(outcome.verified == kCallers * kSignsPerCaller);
  CHECK(faults().call_count("C_Login") - logins_before == 1);
  // The pool's sessions plus the one that holds the login.
  REQUIRE(sampler.samples() > 0);
  CHECK(sampler.most_in_module() <= options.max_sessions + 1);
  CHECK(sampler.most_in_pool() <= options.max_sessions);
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->sessions_open <= options.max_sessions);
  CHECK(metrics->succeeded == kCallers * kSignsPerCaller);
  CHECK(metrics->failed == 0);
  testing::check_no_session_shared();
}

TEST_CASE("a token that allows three sessions still serves every request") {
  const auto& test_token = pool_test_token();
  faults().reset();
  // ulMaxSessionCount = 3 and C_OpenSession answers CKR_SESSION_COUNT beyond it.
  faults().set_max_sessions(3);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 8;

  Token token = testing::open_or_throw(hsm, options);
  SessionSampler sampler(token);
  LoadOutcome outcome = sign_from_threads(token, kCallers, kSignsPerCaller);
  sampler.stop();

  INFO("first failure: " << first_failure(outcome));
  CHECK(outcome.verified == kCallers * kSignsPerCaller);
  CHECK(sampler.most_in_module() <= 3);
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  // One of the three sessions holds the login.
  CHECK(metrics->sessions_max <= 2);
  CHECK(metrics->failed == 0);
  CHECK(metrics->errors_by_code.empty());
  testing::check_no_session_shared();
}

TEST_CASE("CKR_SESSION_COUNT in the middle of a run shrinks the pool and loses no request") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.min_sessions = 1;
  options.max_sessions = 4;
  Token token = testing::open_or_throw(hsm, options);
  std::atomic<int> session_count_events{0};
  token.set_trace_sink([&](const TraceEvent& event) {
    if (event.what == "session_count") session_count_events++;
  });

  // One caller at a time needs only one session.
  for (int i = 0; i < 5; ++i) REQUIRE(token.random(16).get(30s).ok());
  auto before = token.metrics();
  REQUIRE(before.ok());
  REQUIRE(before->sessions_open < options.max_sessions);

  // The token now has room for no session beyond those already open.
  const auto open_now = faults().open_sessions();
  faults().set_max_sessions(open_now);
  LoadOutcome outcome = sign_from_threads(token, kCallers, kSignsPerCaller);

  INFO("first failure: " << first_failure(outcome));
  CHECK(outcome.verified == kCallers * kSignsPerCaller);
  CHECK(faults().open_sessions() <= open_now);
  // Trace events reach the sink on the executor, shortly after the fact.
  CHECK(testing::eventually([&] { return session_count_events.load() >= 1; }));
  auto after = token.metrics();
  REQUIRE(after.ok());
  CHECK(after->sessions_max < options.max_sessions);
  CHECK(after->sessions_open <= after->sessions_max);
  CHECK(after->failed == 0);
  token.set_trace_sink(nullptr);
  testing::check_no_session_shared();
}

TEST_CASE("after CKR_SESSION_COUNT the pool opens more sessions again once the token has room") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.min_sessions = 1;
  options.max_sessions = 4;
  Token token = testing::open_or_throw(hsm, options);
  for (int i = 0; i < 5; ++i) REQUIRE(token.random(16).get(30s).ok());

  // Another application takes the token's remaining room for a while.
  faults().set_max_sessions(faults().open_sessions());
  LoadOutcome capped = sign_from_threads(token, kCallers, kSignsPerCaller);
  INFO("first failure while capped: " << first_failure(capped));
  REQUIRE(capped.verified == kCallers * kSignsPerCaller);
  auto lowered = token.metrics();
  REQUIRE(lowered.ok());
  REQUIRE(lowered->sessions_max < options.max_sessions);
  const auto open_when_lowered = lowered->sessions_open;

  // It closes them again. After a back-off, the next loads may use them.
  faults().set_max_sessions(0);
  SessionSampler sampler(token);
  bool rose = false;
  for (auto give_up_at = std::chrono::steady_clock::now() + 15s;
       !rose && std::chrono::steady_clock::now() < give_up_at;) {
    std::this_thread::sleep_for(300ms);
    LoadOutcome freed = sign_from_threads(token, kCallers, kSignsPerCaller);
    INFO("first failure after the cap was lifted: " << first_failure(freed));
    REQUIRE(freed.verified == kCallers * kSignsPerCaller);
    auto metrics = token.metrics();
    REQUIRE(metrics.ok());
    rose = metrics->sessions_max > lowered->sessions_max &&
           sampler.most_in_pool() > open_when_lowered;
  }
  sampler.stop();
  CHECK(rose);
  auto after = token.metrics();
  REQUIRE(after.ok());
  CHECK(after->sessions_max <= options.max_sessions);
  CHECK(after->failed == 0);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
