// Batches (sign_many, verify_many, digest_many, random_many) and the
// CompletionQueue, against SoftHSM2 through the fault module: per-item
// errors, a stale session inside a batch, overload, deadlines and shutdown
// with batches in flight; every item answered exactly once.
#include <catch2/catch.hpp>

#include <atomic>
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

std::vector<Bytes> digests(std::size_t count) {
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(testing::openssl::sha256(bytes_of("item " + std::to_string(i))));
  }
  return out;
}

TEST_CASE("sign_many signs every item with the right key in order") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  auto inputs = digests(40);
  auto answer = token.sign_many(token.private_key(testing::TestKeyLabels::ec256),
                                Mechanism::ecdsa(), inputs)
                    .get(30s);
  REQUIRE(answer.ok());
  REQUIRE(answer->size() == inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE((*answer)[i].ok());
    CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, inputs[i],
                                         *(*answer)[i]));
  }
  CHECK(faults().call_count("C_Sign") == inputs.size());
  testing::check_no_session_shared();
}

TEST_CASE("an item the module refuses carries its own code and the others succeed") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  auto inputs = digests(8);
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  REQUIRE(token.find_key(key).get(30s).ok());
  faults().add_rule("C_Sign", CKR_DATA_LEN_RANGE, /*after=*/3, /*times=*/1);
  auto answer = token.sign_many(key, Mechanism::ecdsa(), inputs).get(30s);
  REQUIRE(answer.ok());
  REQUIRE(answer->size() == 8);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (i == 3) {
      REQUIRE_FALSE((*answer)[i].ok());
      CHECK((*answer)[i].error().rv() == CKR_DATA_LEN_RANGE);
      CHECK(testing::contains((*answer)[i].error().message(), "CKR_DATA_LEN_RANGE"));
      CHECK(testing::contains((*answer)[i].error().message(), "sign_many"));
    } else {
      INFO("item " << i << ": "
                   << ((*answer)[i].ok() ? std::string("ok") : (*answer)[i].error().message()));
      REQUIRE((*answer)[i].ok());
      CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, inputs[i],
                                           *(*answer)[i]));
    }
  }
}

TEST_CASE("a session that goes stale inside a batch is replaced and the batch runs once more") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  REQUIRE(token.find_key(key).get(30s).ok());
  auto inputs = digests(20);
  faults().add_rule("C_Sign", CKR_SESSION_HANDLE_INVALID, /*after=*/5, /*times=*/1);
  auto answer = token.sign_many(key, Mechanism::ecdsa(), inputs).get(30s);
  REQUIRE(answer.ok());
  REQUIRE(answer->size() == inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE((*answer)[i].ok());
    CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, inputs[i],
                                         *(*answer)[i]));
  }
  // Five signed, one refused, then all twenty again on the new session.
  CHECK(faults().call_count("C_Sign") == 26);
  testing::check_no_session_shared();
}

TEST_CASE("verify_many gives a verdict per item; HMAC and digest batches match OpenSSL") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  auto inputs = digests(6);
  auto signatures = token.sign_many(ec, Mechanism::ecdsa(), inputs).get(30s);
  REQUIRE(signatures.ok());
  std::vector<Bytes> raw;
  for (auto& s : *signatures) raw.push_back(s.take());
  raw[2][0] ^= 0x01;  // tampered
  auto verdicts = token.verify_many(token.public_key(testing::TestKeyLabels::ec256),
                                    Mechanism::ecdsa(), inputs, raw)
                      .get(30s);
  REQUIRE(verdicts.ok());
  REQUIRE(verdicts->size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    INFO("item " << i);
    // A tampered ECDSA signature is either rejected as invalid or refused
    // as malformed; it never verifies.
    if (i == 2) {
      CHECK(!((*verdicts)[i].ok() && *(*verdicts)[i]));
    } else {
      REQUIRE((*verdicts)[i].ok());
      CHECK(*(*verdicts)[i]);
    }
  }

  std::vector<Bytes> messages = {bytes_of("a"), bytes_of("bb"), bytes_of("")};
  messages.back() = Bytes(3000, 0x5a);
  auto macs = token.sign_many(token.secret_key(testing::TestKeyLabels::hmac),
                              Mechanism::hmac_sha256(), messages)
                  .get(30s);
  auto sums = token.digest_many(Mechanism::sha256(), messages).get(30s);
  REQUIRE(macs.ok());
  REQUIRE(sums.ok());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    REQUIRE((*macs)[i].ok());
    REQUIRE((*sums)[i].ok());
    CHECK(*(*macs)[i] == testing::openssl::hmac_sha256(pool_test_token().keys.hmac_value,
                                                       messages[i]));
    CHECK(*(*sums)[i] == testing::openssl::sha256(messages[i]));
  }

  auto blocks = token.random_many(48, 10).get(30s);
  REQUIRE(blocks.ok());
  REQUIRE(blocks->size() == 10);
  for (auto& block : *blocks) {
    REQUIRE(block.ok());
    CHECK(block->size() == 48);
  }
  CHECK((*blocks)[0].value() != (*blocks)[1].value());
}

TEST_CASE("batches outside the limits are refused before anything is queued") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  // Success would show as internal_error, which no refusal here answers.
  auto condition_of = [](auto future) {
    auto answer = future.get(10s);
    return answer.ok() ? Condition::internal_error : answer.error().condition();
  };
  CHECK(condition_of(token.sign_many(ec, Mechanism::ecdsa(), {})) == Condition::invalid_argument);
  CHECK(condition_of(token.sign_many(ec, Mechanism::ecdsa(), digests(Token::kMaxBatchItems + 1))) ==
        Condition::invalid_argument);
  CHECK(condition_of(token.verify_many(ec, Mechanism::ecdsa(), digests(2), digests(1))) ==
        Condition::invalid_argument);
  CHECK(condition_of(token.random_many(0, 4)) == Condition::invalid_argument);
  CHECK(condition_of(token.random_many(Token::kMaxRandomLength, 17)) ==
        Condition::invalid_argument);
  CHECK(condition_of(token.digest_many(Mechanism::sha256(), {})) == Condition::invalid_argument);
  CHECK(condition_of(Token().random_many(8, 2)) == Condition::invalid_argument);
  CHECK(faults().call_count("C_Sign") == 0);
  CHECK(faults().call_count("C_GenerateRandom") == 0);
}

TEST_CASE("a batch past its deadline and batches beyond the queue are answered as a whole") {
  faults().reset();
  Hsm hsm;
  auto options = testing::options_for(pool_test_token());
  options.max_sessions = 1;
  options.queue_limit = 2;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  auto late = token.with_deadline(-1ms).sign_many(ec, Mechanism::ecdsa(), digests(3)).get(30s);
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().condition() == Condition::deadline_exceeded);

  faults().set_latency("C_Sign", 20ms);
  std::vector<Future<std::vector<Result<Bytes>>>> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(token.sign_many(ec, Mechanism::ecdsa(), digests(4)));
  int signed_batches = 0;
  int overloaded = 0;
  for (auto& batch : batches) {
    auto answer = batch.get(60s);
    if (answer.ok()) {
      ++signed_batches;
      CHECK(answer->size() == 4);
      for (auto& item : *answer) CHECK(item.ok());
    } else {
      CHECK(answer.error().condition() == Condition::overloaded);
      ++overloaded;
    }
  }
  faults().set_latency("C_Sign", 0us);
  CHECK(signed_batches + overloaded == 8);
  CHECK(signed_batches >= 1);
  CHECK(overloaded >= 1);
}

TEST_CASE("closing with batches in flight answers every batch exactly once") {
  faults().reset();
  Hsm hsm;
  auto options = testing::options_for(pool_test_token());
  options.max_sessions = 2;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  REQUIRE(token.find_key(ec).get(30s).ok());
  faults().set_latency("C_Sign", 5ms);
  constexpr int kBatches = 12;
  std::atomic<int> answers{0};
  std::atomic<int> items{0};
  // Counted here, checked on the test's thread: Catch2's assertions are not
  // thread-safe, and these continuations run on the completion pool.
  std::atomic<int> wrong_sizes{0};
  std::atomic<int> unexpected_errors{0};
  testing::Countdown all(kBatches);
  for (int i = 0; i < kBatches; ++i) {
    token.sign_many(ec, Mechanism::ecdsa(), digests(5))
        .then([&](Result<std::vector<Result<Bytes>>> answer) {
          if (answer.ok()) {
            if (answer->size() != 5) wrong_sizes++;
            items += static_cast<int>(answer->size());
          } else if (answer.error().condition() != Condition::shutting_down &&
                     answer.error().condition() != Condition::broken_promise) {
            unexpected_errors++;
          }
          answers++;
          all.arrive();
        });
  }
  std::this_thread::sleep_for(15ms);
  token.close();
  REQUIRE(all.wait_for(60000ms));
  faults().set_latency("C_Sign", 0us);
  std::this_thread::sleep_for(50ms);  // a second answer would show up here
  CHECK(answers.load() == kBatches);
  CHECK(items.load() % 5 == 0);
  CHECK(wrong_sizes.load() == 0);
  CHECK(unexpected_errors.load() == 0);
  testing::check_no_session_shared();
}

TEST_CASE("answers given to a CompletionQueue run on the draining thread with one wake-up") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  auto completions = std::make_shared<CompletionQueue>();
  Token on_loop = token.with_executor(completions);
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  constexpr int kRequests = 50;
  std::atomic<int> ran{0};
  std::atomic<int> ran_elsewhere{0};
  const auto loop_thread = std::this_thread::get_id();
  auto inputs = digests(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    on_loop.sign(ec, Mechanism::ecdsa(), inputs[i], [&, i](Result<Bytes> signature) {
      if (std::this_thread::get_id() != loop_thread) ran_elsewhere++;
      CHECK(signature.ok());
      if (signature.ok()) {
        CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, inputs[i],
                                             *signature));
      }
      ran++;
    });
  }
  // A callback whose answer was already there when it was registered ran at
  // once, on this thread (the callback forms are then(); this thread may be
  // preempted between the request and then() on a loaded machine). Every
  // other one waits for the loop to drain, all behind one signal.
  const int ran_inline = ran.load();
  const int queued = kRequests - ran_inline;
  REQUIRE(testing::eventually([&] {
    return completions->pending() == static_cast<std::size_t>(queued);
  }));
  CHECK(ran.load() == ran_inline);
  CHECK(completions->wakeups() == (queued > 0 ? 1u : 0u));
  CHECK(completions->run_ready() == static_cast<std::size_t>(queued));
  CHECK(ran.load() == kRequests);
  CHECK(ran_elsewhere.load() == 0);
  CHECK(completions->wait(1ms) == 0);  // nothing left, no stale signal

  // The token's own executor is unchanged for other handles.
  std::atomic<bool> pool_ran{false};
  token.sign(ec, Mechanism::ecdsa(), inputs[0], [&](Result<Bytes>) { pool_ran = true; });
  CHECK(testing::eventually([&] { return pool_ran.load(); }));
  CHECK(completions->pending() == 0);

  // A batch's one answer goes there too.
  auto batch = on_loop.sign_many(ec, Mechanism::ecdsa(), inputs);
  std::atomic<bool> batch_ran{false};
  batch.then([&](Result<std::vector<Result<Bytes>>> answer) {
    CHECK(answer.ok());
    batch_ran = true;
  });
  while (!batch_ran.load()) completions->wait(100ms);
}

TEST_CASE("a stream opened from a handle with an executor continues there") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  auto completions = std::make_shared<CompletionQueue>();
  Token on_loop = token.with_executor(completions);
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<int> steps{0};
  std::atomic<int> elsewhere{0};
  Bytes expected = testing::openssl::sha256(bytes_of("partpart"));
  on_loop.open_stream(StreamKind::digest, Mechanism::sha256()).then([&](Result<Stream> opened) {
    if (std::this_thread::get_id() != loop_thread) elsewhere++;
    REQUIRE(opened.ok());
    auto stream = std::make_shared<Stream>(opened.take());
    stream->update(bytes_of("part")).then([&, stream](Result<std::uint64_t> first) {
      if (std::this_thread::get_id() != loop_thread) elsewhere++;
      CHECK(first.ok());
      stream->update(bytes_of("part")).then([&, stream](Result<std::uint64_t> second) {
        if (std::this_thread::get_id() != loop_thread) elsewhere++;
        CHECK(second.ok());
        stream->finish().then([&, stream](Result<Bytes> sum) {
          if (std::this_thread::get_id() != loop_thread) elsewhere++;
          REQUIRE(sum.ok());
          CHECK(*sum == expected);
          steps++;
        });
      });
    });
  });
  for (int i = 0; i < 1000 && steps.load() == 0; ++i) completions->wait(50ms);
  CHECK(steps.load() == 1);
  CHECK(elsewhere.load() == 0);
}

TEST_CASE("a CompletionQueue going away runs what it still holds") {
  std::atomic<int> ran{0};
  {
    CompletionQueue completions;
    for (int i = 0; i < 5; ++i) completions.post(Task([&] { ran++; }));
    CHECK(completions.pending() == 5);
    CHECK(completions.wakeups() == 1);
  }
  // Handed to the completion pool, which runs them soon.
  CHECK(testing::eventually([&] { return ran.load() == 5; }));
}

}  // namespace
}  // namespace hsmactor
