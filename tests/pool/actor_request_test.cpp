// hsmactor::request(): an actor's Job queued straight on the token, answered
// exactly once in the actor's own mailbox: results that verify, overload,
// deadlines, CAF timeouts, closing, requesters that quit, handlers that block,
// and many actors at once with no session entered by two threads.
#include "hsmactor_caf.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;
using testing::TestKeyLabels;

Bytes digest_of(const std::string& text) { return testing::openssl::sha256(bytes_of(text)); }

Job sign_job(const Mechanism& mechanism, Bytes data) {
  Job job;
  job.op = Op::sign;
  job.mechanism = mechanism;
  job.data = std::move(data);
  return job;
}

Job random_job(std::uint64_t length) {
  Job job;
  job.op = Op::random;
  job.length = length;
  return job;
}

/// What the handlers of `count` requests saw: how often each ran, and the
/// first answer of each.
class Outcomes {
 public:
  explicit Outcomes(std::size_t count) : calls_(count, 0), answers_(count), arrivals_(count) {}

  /// Records request `index`'s answer (from any actor's thread).
  void record(std::size_t index, Result<JobResult> answer) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (calls_.at(index)++ == 0) answers_[index] = std::move(answer);
    }
    arrivals_.arrive();
  }
  /// Returns the handlers of `index` that ran for request `index`, as
  /// `.then()` arguments.
  auto handlers(std::size_t index) {
    return std::make_pair(
        [this, index](JobResult& result) { record(index, std::move(result)); },
        [this, index](caf::error& failure) { record(index, from_caf_error(failure)); });
  }

  bool wait_for(std::chrono::milliseconds limit) { return arrivals_.wait_for(limit); }
  int calls(std::size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_.at(index);
  }
  Result<JobResult> answer(std::size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    REQUIRE(answers_.at(index).has_value());
    return *answers_[index];
  }
  std::size_t size() const { return calls_.size(); }

 private:
  std::mutex mutex_;
  std::vector<int> calls_;
  std::vector<std::optional<Result<JobResult>>> answers_;
  testing::Countdown arrivals_;
};

/// Installs `outcomes`' handlers for request `index` on `handle`.
void expect(job_response_handle handle, Outcomes& outcomes, std::size_t index) {
  auto [on_result, on_error] = outcomes.handlers(index);
  handle.then(on_result, on_error);
}

using ActorBody = std::function<void(caf::event_based_actor*)>;

/// Spawns an event-based actor that runs `body` first. The body is a spawn
/// argument: CAF 0.17 binds a null reference for a spawn without any. With no
/// behaviour of its own, the actor lives until its last answer is handled.
caf::actor spawn_actor(Hsm& hsm, ActorBody body) {
  return actor_system(hsm).spawn(
      [](caf::event_based_actor* self, ActorBody body) { body(self); }, std::move(body));
}

std::string describe(const Result<JobResult>& answer) {
  return answer.ok() ? "ok" : answer.error().message();
}

TEST_CASE("an actor's requests are answered in its mailbox with results that verify") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Key ec = token.private_key(TestKeyLabels::ec256);
  Key rsa = token.private_key(TestKeyLabels::rsa2048);
  Key mac = token.secret_key(TestKeyLabels::hmac);
  const Bytes digest = digest_of("ecdsa from an actor");
  const Bytes message = bytes_of("rsa and hmac from an actor");
  REQUIRE(key_ref(ec).handle == 0);  // nothing looked it up yet

  Outcomes outcomes(4);
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    expect(request(self, token, ec, sign_job(Mechanism::ecdsa(), digest)), outcomes, 0);
    expect(request(self, token, rsa, sign_job(Mechanism::rsa_pkcs_sha256(), message)), outcomes,
           1);
    Job hmac = sign_job(Mechanism::hmac_sha256(), message);
    hmac.key = key_ref(mac);
    expect(request(self, token, std::move(hmac)), outcomes, 2);
    expect(request(self, token, random_job(32)), outcomes, 3);
  });
  REQUIRE(outcomes.wait_for(60s));

  auto ecdsa = outcomes.answer(0);
  auto rsa_signature = outcomes.answer(1);
  auto hmac = outcomes.answer(2);
  auto random = outcomes.answer(3);
  INFO("ecdsa: " << describe(ecdsa) << "; rsa: " << describe(rsa_signature)
                 << "; hmac: " << describe(hmac) << "; random: " << describe(random));
  REQUIRE(ecdsa.ok());
  REQUIRE(rsa_signature.ok());
  REQUIRE(hmac.ok());
  REQUIRE(random.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, ecdsa->bytes));
  CHECK(testing::openssl::verify_rsa_pkcs1_sha256(test_token.rsa2048_public, message,
                                                  rsa_signature->bytes));
  CHECK(hmac->bytes == testing::openssl::hmac_sha256(test_token.keys.hmac_value, message));
  CHECK(random->bytes.size() == 32);
  // The Key overload keeps the key's cache, as Token's own requests do.
  CHECK(key_ref(ec).handle == ecdsa->key_handle);
  CHECK(key_ref(rsa).handle != 0);

  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->requests == 4);
  CHECK(metrics->succeeded == 4);
  for (std::size_t i = 0; i < outcomes.size(); ++i) CHECK(outcomes.calls(i) == 1);
  testing::check_no_session_shared();
}

TEST_CASE("a full queue answers an actor overloaded, never inside request()") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 100ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;
  options.queue_limit = 2;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(TestKeyLabels::ec256);
  const Bytes digest = digest_of("overload from an actor");

  constexpr std::size_t kRequests = 10;
  Outcomes outcomes(kRequests);
  std::atomic<int> ran_inside{0};
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    auto inside = std::make_shared<bool>(true);
    for (std::size_t i = 0; i < kRequests; ++i) {
      auto [on_result, on_error] = outcomes.handlers(i);
      request(self, token, ec, sign_job(Mechanism::ecdsa(), digest))
          .then(
              [&ran_inside, inside, on_result](JobResult& result) mutable {
                if (*inside) ran_inside++;
                on_result(result);
              },
              [&ran_inside, inside, on_error](caf::error& failure) mutable {
                if (*inside) ran_inside++;
                on_error(failure);
              });
    }
    *inside = false;
  });
  REQUIRE(outcomes.wait_for(60s));
  CHECK(ran_inside.load() == 0);

  std::size_t signed_ok = 0;
  std::size_t overloaded = 0;
  for (std::size_t i = 0; i < kRequests; ++i) {
    auto answer = outcomes.answer(i);
    INFO("request " << i << ": " << describe(answer));
    CHECK(outcomes.calls(i) == 1);
    if (answer.ok()) {
      CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, answer->bytes));
      signed_ok++;
    } else {
      CHECK(answer.error().condition() == Condition::overloaded);
      CHECK(answer.error().operation() == "sign");
      overloaded++;
    }
  }
  // One session and two places in the queue: at most three of ten fit.
  CHECK(signed_ok >= options.queue_limit);
  CHECK(signed_ok <= options.queue_limit + 1);
  CHECK(signed_ok + overloaded == kRequests);
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->overloaded == overloaded);
  testing::check_no_session_shared();
}

TEST_CASE("a queued actor request past its deadline, or its CAF timeout, is answered once") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 300ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(TestKeyLabels::ec256);
  const Bytes digest = digest_of("deadlines from an actor");
  Token hasty = token.with_deadline(50ms);

  // 0 holds the one session; 1 (its own deadline) and 2 (the handle's) wait
  // past their deadlines; 3 waits past its CAF timeout, then still runs, and
  // 4, sent when 3 timed out, runs after it on the same session, so by 4's
  // answer 3's late answer has reached the mailbox (and was dropped).
  Outcomes outcomes(5);
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    expect(request(self, token, ec, sign_job(Mechanism::ecdsa(), digest)), outcomes, 0);
    Job own = sign_job(Mechanism::ecdsa(), digest);
    own.deadline_ns = deadline_after(50ms);
    expect(request(self, token, ec, std::move(own)), outcomes, 1);
    expect(request(self, hasty, ec, sign_job(Mechanism::ecdsa(), digest)), outcomes, 2);
    auto [on_result, on_error] = outcomes.handlers(3);
    request(self, token, ec, sign_job(Mechanism::ecdsa(), digest), caf::duration{100ms})
        .then(on_result, [&, self, on_error](caf::error& failure) mutable {
          on_error(failure);
          expect(request(self, token, ec, sign_job(Mechanism::ecdsa(), digest)), outcomes, 4);
        });
  });
  REQUIRE(outcomes.wait_for(60s));

  auto first = outcomes.answer(0);
  INFO("first: " << describe(first));
  REQUIRE(first.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, first->bytes));
  for (std::size_t i : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    auto late = outcomes.answer(i);
    INFO("request " << i << ": " << describe(late));
    REQUIRE_FALSE(late.ok());
    CHECK(late.error().condition() == Condition::deadline_exceeded);
  }
  auto last = outcomes.answer(4);
  INFO("last: " << describe(last));
  CHECK(last.ok());
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    INFO("request " << i);
    CHECK(outcomes.calls(i) == 1);
  }
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->deadline_exceeded == 2);
  // Request 3 ran although nobody waited for it any more (a CAF timeout
  // withdraws nothing): three signatures in all.
  CHECK(metrics->succeeded == 3);
  testing::check_no_session_shared();
}

TEST_CASE("closing a token answers each actor request in flight exactly once") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 20ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 2;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(TestKeyLabels::ec256);
  const Bytes digest = digest_of("closing under actors");

  constexpr std::size_t kActors = 4;
  constexpr std::size_t kPerActor = 25;
  Outcomes outcomes(kActors * kPerActor);
  testing::Countdown issued(kActors);
  for (std::size_t a = 0; a < kActors; ++a) {
    spawn_actor(hsm, [&, a](caf::event_based_actor* self) {
      for (std::size_t i = 0; i < kPerActor; ++i) {
        expect(request(self, token, ec, sign_job(Mechanism::ecdsa(), digest)), outcomes,
               a * kPerActor + i);
      }
      issued.arrive();
    });
  }
  REQUIRE(issued.wait_for(30s));
  token.close();  // 100 signs of 20 ms on two sessions: most are still queued
  REQUIRE(outcomes.wait_for(60s));

  std::size_t signed_ok = 0;
  std::size_t shut_down = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    auto answer = outcomes.answer(i);
    INFO("request " << i << ": " << describe(answer));
    CHECK(outcomes.calls(i) == 1);
    if (answer.ok()) {
      CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, answer->bytes));
      signed_ok++;
    } else {
      CHECK(answer.error().condition() == Condition::shutting_down);
      shut_down++;
    }
  }
  CHECK(signed_ok + shut_down == outcomes.size());
  CHECK(shut_down >= 1);

  // A request after the close, and one on an empty Token, are answered too,
  // and neither inside request().
  Outcomes after(2);
  std::atomic<int> answered_inside{-1};
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    expect(request(self, token, ec, sign_job(Mechanism::ecdsa(), digest)), after, 0);
    expect(request(self, Token(), random_job(8)), after, 1);
    answered_inside = after.calls(0) + after.calls(1);
  });
  REQUIRE(after.wait_for(30s));
  CHECK(answered_inside.load() == 0);
  auto closed = after.answer(0);
  auto empty = after.answer(1);
  REQUIRE_FALSE(closed.ok());
  REQUIRE_FALSE(empty.ok());
  CHECK(closed.error().condition() == Condition::shutting_down);
  CHECK(empty.error().condition() == Condition::invalid_argument);
  CHECK(empty.error().operation() == "random");
  testing::check_no_session_shared();
}

TEST_CASE("an actor that quits before its answers arrive leaves the pool serving") {
  const auto& test_token = pool_test_token();
  faults().reset();
  faults().set_latency("C_Sign", 200ms);
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(TestKeyLabels::ec256);
  const Bytes digest = digest_of("nobody waits for this");

  // One request runs and one waits when the requester goes.
  std::atomic<int> handled{0};
  testing::Countdown exited(1);
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    self->attach_functor([&exited](const caf::error&) { exited.arrive(); });
    for (int i = 0; i < 2; ++i) {
      request(self, token, ec, sign_job(Mechanism::ecdsa(), digest))
          .then([&handled](JobResult&) { handled++; }, [&handled](caf::error&) { handled++; });
    }
    self->quit();
  });
  REQUIRE(exited.wait_for(30s));
  // Both jobs still run (nobody withdrew them); their answers find a closed
  // mailbox and are dropped.
  REQUIRE(testing::eventually([&] {
    auto metrics = token.metrics();
    return metrics.ok() && metrics->succeeded == 2;
  }));
  CHECK(handled.load() == 0);
  auto still_served = token.sign(ec, Mechanism::ecdsa(), digest).get(30s);
  INFO("after the requester quit: "
       << (still_served.ok() ? "ok" : still_served.error().message()));
  REQUIRE(still_served.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, *still_served));
  testing::check_no_session_shared();
}

TEST_CASE("an actor's handler that blocks holds up no session") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);

  testing::Countdown handler_started(1);
  testing::Countdown handler_done(1);
  std::atomic<bool> release{false};
  spawn_actor(hsm, [&](caf::event_based_actor* self) {
    request(self, token, random_job(8))
        .then(
            [&](JobResult&) {
              handler_started.arrive();
              // Were this the session's thread, the token's only session
              // would serve nobody until it returns.
              while (!release) std::this_thread::sleep_for(1ms);
              handler_done.arrive();
            },
            [&](caf::error&) {
              handler_started.arrive();
              handler_done.arrive();
            });
  });
  REQUIRE(handler_started.wait_for(30s));
  auto meanwhile = token.random(8).get(10s);
  release = true;
  REQUIRE(handler_done.wait_for(30s));
  INFO("while the handler blocked: " << (meanwhile.ok() ? "ok" : meanwhile.error().message()));
  CHECK(meanwhile.ok());
  testing::check_no_session_shared();
}

// A typed actor and a stateful one, as callers write them.
using pinger_actor = caf::typed_actor<caf::reacts_to<std::string>>;

struct counter_state {
  int answers = 0;
  const char* name = "counter";
};

TEST_CASE("typed and stateful actors call request() through their own pointers") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Outcomes outcomes(2);

  auto typed = [](pinger_actor::pointer self, Token token,
                  Outcomes* outcomes) -> pinger_actor::behavior_type {
    expect(request(self, token, random_job(16)), *outcomes, 0);
    return {[](const std::string&) {}};
  };
  auto stateful = [](caf::stateful_actor<counter_state>* self, Token token, Outcomes* outcomes) {
    request(self, token, random_job(16))
        .then(
            [self, outcomes](JobResult& result) {
              self->state.answers++;
              outcomes->record(1, std::move(result));
            },
            [outcomes](caf::error& failure) { outcomes->record(1, from_caf_error(failure)); });
  };
  auto typed_handle = actor_system(hsm).spawn(typed, token, &outcomes);
  actor_system(hsm).spawn(stateful, token, &outcomes);
  REQUIRE(outcomes.wait_for(30s));
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    auto answer = outcomes.answer(i);
    INFO("request " << i << ": " << describe(answer));
    REQUIRE(answer.ok());
    CHECK(answer->bytes.size() == 16);
    CHECK(outcomes.calls(i) == 1);
  }
  caf::anon_send_exit(typed_handle, caf::exit_reason::user_shutdown);
  testing::check_no_session_shared();
}

TEST_CASE("many actors with many requests each: every answer once, none wrong, no session shared") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 4;
  options.queue_limit = 4096;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(TestKeyLabels::ec256);
  Key mac = token.secret_key(TestKeyLabels::hmac);

  constexpr std::size_t kActors = 24;
  constexpr std::size_t kPerActor = 200;
  constexpr std::size_t kWindow = 4;
  const std::size_t total = kActors * kPerActor;
  std::vector<Bytes> inputs;
  inputs.reserve(total);
  for (std::size_t i = 0; i < total; ++i) inputs.push_back(digest_of("many " + std::to_string(i)));
  Outcomes outcomes(total);

  // Request i: ECDSA, HMAC or random by i % 3. Each actor keeps kWindow in
  // flight and sends its next one from the handler of an answer.
  struct Caller {
    std::size_t first = 0;
    std::size_t next = 0;
  };
  std::function<void(caf::event_based_actor*, std::shared_ptr<Caller>)> send_next;
  send_next = [&](caf::event_based_actor* self, std::shared_ptr<Caller> caller) {
    if (caller->next == caller->first + kPerActor) return;
    std::size_t i = caller->next++;
    Job job;
    switch (i % 3) {
      case 0: job = sign_job(Mechanism::ecdsa(), inputs[i]); break;
      case 1: job = sign_job(Mechanism::hmac_sha256(), inputs[i]); break;
      default: job = random_job(16 + i % 17); break;
    }
    const Key& key = i % 3 == 0 ? ec : i % 3 == 1 ? mac : Key();
    auto [on_result, on_error] = outcomes.handlers(i);
    request(self, token, key, std::move(job))
        .then(
            [&send_next, self, caller, on_result](JobResult& result) mutable {
              on_result(result);
              send_next(self, caller);
            },
            [&send_next, self, caller, on_error](caf::error& failure) mutable {
              on_error(failure);
              send_next(self, caller);
            });
  };
  for (std::size_t a = 0; a < kActors; ++a) {
    spawn_actor(hsm, [&, a](caf::event_based_actor* self) {
      auto caller = std::make_shared<Caller>();
      caller->first = caller->next = a * kPerActor;
      for (std::size_t w = 0; w < kWindow; ++w) send_next(self, caller);
    });
  }
  REQUIRE(outcomes.wait_for(120s));

  std::vector<std::string> wrong;
  for (std::size_t i = 0; i < total; ++i) {
    if (outcomes.calls(i) != 1) {
      wrong.push_back("request " + std::to_string(i) + " answered " +
                      std::to_string(outcomes.calls(i)) + " times");
      continue;
    }
    auto answer = outcomes.answer(i);
    if (!answer.ok()) {
      wrong.push_back("request " + std::to_string(i) + ": " + answer.error().message());
      continue;
    }
    bool right = false;
    switch (i % 3) {
      case 0:
        right = testing::openssl::verify_ecdsa(test_token.ec256_public, inputs[i], answer->bytes);
        break;
      case 1:
        right = answer->bytes ==
                testing::openssl::hmac_sha256(test_token.keys.hmac_value, inputs[i]);
        break;
      default: right = answer->bytes.size() == 16 + i % 17; break;
    }
    if (!right) wrong.push_back("request " + std::to_string(i) + ": wrong answer");
  }
  INFO(wrong.size() << " wrong; first: " << (wrong.empty() ? "none" : wrong.front()));
  CHECK(wrong.empty());
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->requests == total);
  CHECK(metrics->succeeded == total);
  CHECK(faults().violations() == 0);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
