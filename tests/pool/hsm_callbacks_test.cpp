// How answers and events leave hsmactor: callbacks run exactly once, the trace
// sink sees operations and results but no secrets, actors can talk to the pool
// directly, and no way of dropping a Token stalls the runtime.
#include "hsmactor_caf.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pool/internal/key_access.hpp"
#include "pool/testing_hooks.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::contains;
using testing::faults;
using testing::pool_test_token;

Bytes digest_of(const std::string& text) { return testing::openssl::sha256(bytes_of(text)); }

TEST_CASE("every callback runs exactly once, for answers and errors alike") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  Key ec_public = Key::public_key(testing::TestKeyLabels::ec256);
  Key missing = token.private_key("no-such-key");
  const Bytes digest = digest_of("callbacks");
  auto known_signature = token.sign(ec, Mechanism::ecdsa(), digest).get(30s);
  REQUIRE(known_signature.ok());

  constexpr std::size_t kRequests = 200;
  std::vector<std::atomic<int>> calls(kRequests);
  std::vector<std::atomic<int>> outcomes(kRequests);  // 1 = as expected, 2 = not
  testing::Countdown all_answered(kRequests);
  auto settle = [&](std::size_t i, bool as_expected) {
    if (calls[i]++ == 0) outcomes[i] = as_expected ? 1 : 2;
    all_answered.arrive();
  };
  for (std::size_t i = 0; i < kRequests; ++i) {
    switch (i % 4) {
      case 0:
        token.sign(ec, Mechanism::ecdsa(), digest, [&, i](Result<Bytes> signature) {
          settle(i, signature.ok() && signature->size() == 64);
        });
        break;
      case 1:
        token.sign(missing, Mechanism::ecdsa(), digest, [&, i](Result<Bytes> signature) {
          settle(i, !signature.ok() && signature.error().condition() == Condition::object_not_found);
        });
        break;
      case 2:
        token.verify(ec_public, Mechanism::ecdsa(), digest, *known_signature,
                     [&, i](Result<bool> valid) { settle(i, valid.ok() && *valid); });
        break;
      default: {
        Job job;
        job.op = Op::random;
        job.length = 20;
        testing_hooks::submit(token, std::move(job)).then([&, i](Result<JobResult> result) {
          settle(i, result.ok() && result->bytes.size() == 20);
        });
      }
    }
  }
  REQUIRE(all_answered.wait_for(60s));
  // One more round trip through the bridge and the pool before counting.
  REQUIRE(token.random(8).get(30s).ok());
  for (std::size_t i = 0; i < kRequests; ++i) {
    INFO("request " << i);
    CHECK(calls[i].load() == 1);
    CHECK(outcomes[i].load() == 1);
  }
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->requests == kRequests + 2);
  CHECK(metrics->succeeded + metrics->failed == metrics->requests);
  CHECK(metrics->errors_by_code["object_not_found"] == kRequests / 4);
  testing::check_no_session_shared();
}

TEST_CASE("the trace sink sees operations and results, never payload or PIN bytes") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  std::mutex events_mutex;
  std::vector<TraceEvent> events;
  token.set_trace_sink([&](const TraceEvent& event) {
    std::lock_guard<std::mutex> lock(events_mutex);
    events.push_back(event);
  });

  const std::string payload_text = "PAYLOAD-c0ffee-not-for-logs";
  const Bytes payload = bytes_of(payload_text);
  auto mac = token.sign(Key::secret_key(testing::TestKeyLabels::hmac), Mechanism::hmac_sha256(),
                        payload)
                 .get(30s);
  REQUIRE(mac.ok());
  CHECK(*mac == testing::openssl::hmac_sha256(test_token.keys.hmac_value, payload));
  auto digest = token.digest(Mechanism::sha256(), payload).get(30s);
  REQUIRE(digest.ok());
  auto refused = token.sign(token.private_key("no-such-key"), Mechanism::ecdsa(), *digest).get(30s);
  REQUIRE_FALSE(refused.ok());
  auto seen_in = [](const std::vector<TraceEvent>& list, const std::string& operation,
                    const std::string& result) {
    for (const auto& event : list) {
      if (event.what == "request" && event.operation == operation && event.result == result &&
          event.attempts >= 1) {
        return true;
      }
    }
    return false;
  };
  auto seen = [&](const std::string& operation, const std::string& result) {
    std::lock_guard<std::mutex> lock(events_mutex);
    return seen_in(events, operation, result);
  };
  // Events reach the sink on the executor, after the answers: wait for them.
  CHECK(testing::eventually([&] { return seen("sign", "object_not_found"); }));
  // After this returns the sink is never called again: `events` is ours.
  token.set_trace_sink(nullptr);
  std::lock_guard<std::mutex> lock(events_mutex);
  CHECK(seen_in(events, "sign", "CKR_OK"));
  CHECK(seen_in(events, "digest", "CKR_OK"));
  CHECK(seen_in(events, "sign", "object_not_found"));
  const std::vector<std::string> secrets = {payload_text, to_hex(payload), to_hex(*mac),
                                            to_hex(*digest), "1234"};
  for (const auto& event : events) {
    for (const auto& text : {event.what, event.operation, event.result}) {
      for (const auto& secret : secrets) {
        INFO("event text: " << text);
        CHECK_FALSE(contains(text, secret));
      }
    }
  }
  testing::check_no_session_shared();
}

TEST_CASE("a slow callback holds only its own session: another request is served meanwhile") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.min_sessions = 2;
  options.max_sessions = 2;
  Token token = testing::open_or_throw(hsm, options);
  Key ec = token.private_key(testing::TestKeyLabels::ec256);
  const Bytes digest = digest_of("slow callback");
  // Warm both sessions up (and the key handle), so neither opens anything below.
  REQUIRE(token.sign(ec, Mechanism::ecdsa(), digest).get(30s).ok());

  std::promise<void> callback_started;
  std::promise<void> release_callback;
  std::promise<void> callback_finished;
  auto released = release_callback.get_future().share();
  auto finished = callback_finished.get_future();
  std::atomic<bool> callback_returned{false};
  token.sign(ec, Mechanism::ecdsa(), digest, [&](Result<Bytes>) {
    callback_started.set_value();
    // Blocks its session until the test has its second answer (or gives up).
    released.wait_for(20s);
    callback_returned = true;
    callback_finished.set_value();
  });
  REQUIRE(callback_started.get_future().wait_for(30s) == std::future_status::ready);

  // The other session is idle (parked): this request must reach it rather
  // than wait behind the blocked callback.
  auto random = token.random(16).get(10s);
  bool served_while_blocked = !callback_returned.load();
  release_callback.set_value();
  // The callback uses this scope's locals: let it finish before they go.
  REQUIRE(finished.wait_for(30s) == std::future_status::ready);
  REQUIRE(random.ok());
  CHECK(random->size() == 16);
  CHECK(served_while_blocked);
  testing::check_no_session_shared();
}

TEST_CASE("an actor sends a Job to actor_handle() and gets a JobResult") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  const Bytes digest = digest_of("from an actor");
  Job job;
  job.op = Op::sign;
  job.key = key_ref(token.private_key(testing::TestKeyLabels::ec256));
  job.mechanism = Mechanism::ecdsa();
  job.data = digest;

  std::promise<Result<JobResult>> answer;
  auto answered = answer.get_future();
  token_actor pool = actor_handle(token);
  REQUIRE(pool);
  // The actor gets its inputs as spawn arguments: CAF 0.17 binds a null
  // reference (UBSan: "reference binding to null pointer") for a spawn
  // without any.
  auto client = [](caf::event_based_actor* self, token_actor pool, Job job,
                   std::promise<Result<JobResult>>* answer) {
    self->request(pool, std::chrono::seconds(30), run_atom::value, job)
        .then([answer](JobResult& result) { answer->set_value(std::move(result)); },
              [answer](caf::error& failure) { answer->set_value(from_caf_error(failure)); });
  };
  actor_system(hsm).spawn(client, pool, job, &answer);
  REQUIRE(answered.wait_for(60s) == std::future_status::ready);
  auto result = answered.get();
  INFO("answer: " << (result.ok() ? "ok" : result.error().message()));
  REQUIRE(result.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, digest, result->bytes));
  CHECK(result->key_handle != 0);
  testing::check_no_session_shared();
}

TEST_CASE("dropping the last copy of a Token while a stream is being opened stalls nothing") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token keeper = testing::open_or_throw(hsm, testing::options_for(test_token));
  {
    std::optional<Token> doomed(testing::open_or_throw(hsm, testing::options_for(test_token)));
    auto pending = doomed->open_stream(StreamKind::digest, Mechanism::sha256());
    // Only the request in flight still holds the token; its answer arrives
    // on a CAF thread, which then releases the token's last reference.
    doomed.reset();
  }
  auto still_served = keeper.random(16).get(30s);
  INFO("after the drop: " << (still_served.ok() ? "ok" : still_served.error().message()));
  REQUIRE(still_served.ok());
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
