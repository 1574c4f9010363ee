// What a token pool does when callers outrun the token: a bounded queue,
// typed `overloaded` refusals, deadlines that are kept, and exactly one answer
// for every request.
#include "pool/token_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hsmactor.hpp"
#include "pool/internal/key_access.hpp"
#include "pool/testing_hooks.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

Bytes digest_of(const std::string& text) { return testing::openssl::sha256(bytes_of(text)); }

TEST_CASE("a hundred requests against two slow sessions end in signatures or overloaded, each once") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 20ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 2;
  options.queue_limit = 10;
  Token token = testing::open_or_throw(hsm, options);

  constexpr std::size_t kRequests = 100;
  constexpr std::size_t kSenders = 4;
  std::vector<std::atomic<int>> calls(kRequests);
  std::vector<std::optional<Result<Bytes>>> answers(kRequests);
  std::mutex answers_mutex;
  testing::Countdown all_answered(kRequests);
  std::vector<Bytes> digests;
  for (std::size_t i = 0; i < kRequests; ++i) digests.push_back(digest_of("overload " + std::to_string(i)));

  std::atomic<bool> go{false};
  std::vector<std::thread> senders;
  for (std::size_t s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      Key key = token.private_key(testing::TestKeyLabels::ec256);
      while (!go) std::this_thread::yield();
      for (std::size_t i = s; i < kRequests; i += kSenders) {
        token.sign(key, Mechanism::ecdsa(), digests[i], [&, i](Result<Bytes> answer) {
          if (calls[i]++ == 0) {
            std::lock_guard<std::mutex> lock(answers_mutex);
            answers[i] = std::move(answer);
          }
          all_answered.arrive();
        });
      }
    });
  }
  go = true;
  for (auto& sender : senders) sender.join();
  REQUIRE(all_answered.wait_for(60s));

  std::size_t signed_ok = 0;
  std::size_t overloaded = 0;
  std::vector<std::string> unexpected;
  {
    std::lock_guard<std::mutex> lock(answers_mutex);
    for (std::size_t i = 0; i < kRequests; ++i) {
      REQUIRE(answers[i].has_value());
      const auto& answer = *answers[i];
      if (answer.ok()) {
        if (testing::openssl::verify_ecdsa(test_token.ec256_public, digests[i], *answer)) {
          signed_ok++;
        } else {
          unexpected.push_back("request " + std::to_string(i) + ": signature does not verify");
        }
      } else if (answer.error().condition() == Condition::overloaded) {
        CHECK(answer.error().category() == Category::retry);
        CHECK(answer.error().operation() == "sign");
        overloaded++;
      } else {
        unexpected.push_back("request " + std::to_string(i) + ": " + answer.error().message());
      }
    }
  }
  INFO("first unexpected answer: " << (unexpected.empty() ? "none" : unexpected.front()));
  CHECK(unexpected.empty());
  CHECK(signed_ok + overloaded == kRequests);
  // The first queue_limit requests always find room; 100 requests against
  // 20 ms signs on two sessions cannot all.
  CHECK(signed_ok >= options.queue_limit);
  CHECK(overloaded >= 1);

  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->requests == kRequests);
  CHECK(metrics->succeeded + metrics->failed == metrics->requests);
  CHECK(metrics->succeeded == signed_ok);
  CHECK(metrics->overloaded == overloaded);
  CHECK(metrics->failed == overloaded);
  CHECK(metrics->errors_by_code["overloaded"] == overloaded);
  CHECK(metrics->queue_depth == 0);

  // One more round trip through the pool and the bridge: no callback ran twice.
  REQUIRE(token.random(8).get(30s).ok());
  for (std::size_t i = 0; i < kRequests; ++i) {
    INFO("request " << i);
    CHECK(calls[i].load() == 1);
  }
  testing::check_no_session_shared();
}

TEST_CASE("with every session pinned, the queue takes exactly its bound and refuses the rest") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 2;
  options.queue_limit = 10;
  Token token = testing::open_or_throw(hsm, options);

  // Two digest streams hold both sessions until they are aborted.
  auto first = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(30s);
  auto second = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(30s);
  REQUIRE(first.ok());
  REQUIRE(second.ok());

  constexpr std::size_t kRequests = 25;
  std::vector<Future<Bytes>> randoms;
  for (std::size_t i = 0; i < kRequests; ++i) randoms.push_back(token.random(16));
  // Requests reach the pool in the order they were sent: the first ten wait,
  // the others are refused at once.
  for (std::size_t i = options.queue_limit; i < kRequests; ++i) {
    auto refused = randoms[i].get(30s);
    INFO("request " << i);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().condition() == Condition::overloaded);
  }
  auto waiting = token.metrics();
  REQUIRE(waiting.ok());
  CHECK(waiting->queue_depth == options.queue_limit);
  CHECK(waiting->sessions_busy == 2);

  first->abort();
  second->abort();
  for (std::size_t i = 0; i < options.queue_limit; ++i) {
    auto served = randoms[i].get(30s);
    INFO("request " << i << ": " << (served.ok() ? "ok" : served.error().message()));
    REQUIRE(served.ok());
    CHECK(served->size() == 16);
  }
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->overloaded == kRequests - options.queue_limit);
  CHECK(metrics->requests == kRequests + 2);  // the two streams count as requests
  CHECK(metrics->succeeded + metrics->failed == metrics->requests);
  testing::check_no_session_shared();
}

TEST_CASE("a request whose deadline passes in the queue is answered deadline_exceeded by the pool") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 100ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.min_sessions = 1;
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  Key key = token.private_key(testing::TestKeyLabels::ec256);

  // Five slow signs occupy the only session and the head of the queue.
  std::vector<Bytes> digests;
  std::vector<Future<Bytes>> slow;
  for (int i = 0; i < 5; ++i) {
    digests.push_back(digest_of("slow " + std::to_string(i)));
    slow.push_back(token.sign(key, Mechanism::ecdsa(), digests.back()));
  }
  Job hasty;
  hasty.op = Op::sign;
  hasty.key = internal::KeyAccess::ref(key);
  hasty.mechanism = Mechanism::ecdsa();
  hasty.data = digest_of("hasty");
  hasty.deadline_ns = deadline_after(5ms);
  auto late = testing_hooks::submit(token, std::move(hasty)).get(30s);

  REQUIRE_FALSE(late.ok());
  CHECK(late.error().condition() == Condition::deadline_exceeded);
  CHECK(late.error().category() == Category::retry);
  // The pool answered it (not the bridge's backstop timeout a little later),
  // while the requests ahead of it were still waiting.
  CHECK(late.error().detail() == "the deadline passed while waiting for a session");
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->deadline_exceeded == 1);

  for (std::size_t i = 0; i < slow.size(); ++i) {
    auto signature = slow[i].get(30s);
    REQUIRE(signature.ok());
    CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digests[i], *signature));
  }
  auto final_metrics = token.metrics();
  REQUIRE(final_metrics.ok());
  CHECK(final_metrics->requests == 6);
  CHECK(final_metrics->succeeded == 5);
  CHECK(final_metrics->failed == 1);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
