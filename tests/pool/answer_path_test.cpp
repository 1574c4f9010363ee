// Regression tests for the seams between answer paths found under review:
// application code on session or bridge threads, streams that leaked their
// pinned sessions, a key handle used on the wrong token, and options whose
// limits the library could not honour. Each test failed on the code before
// the one answer path (continuations, callbacks and trace sinks on the
// executor; the pool alone deciding a stream's fate; epochs for key handles).
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

TokenOptions two_sessions() {
  TokenOptions options = testing::options_for(pool_test_token());
  options.min_sessions = 2;
  options.max_sessions = 2;
  return options;
}

TEST_CASE("a then() continuation that sleeps holds up no other request") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, two_sessions());
  REQUIRE(token.random(8).get(30s).ok());  // both sessions up

  auto release = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> continuations{0};
  for (int i = 0; i < 4; ++i) {
    token.random(8).then([release, &continuations](Result<Bytes>) {
      // Before: this ran on the session thread that answered, so four of
      // them held both sessions for seconds.
      for (int waited = 0; waited < 300 && !release->load(); ++waited) {
        std::this_thread::sleep_for(10ms);
      }
      continuations.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(50ms);
  auto started = std::chrono::steady_clock::now();
  auto served = token.random(16).get(2s);
  auto took = std::chrono::steady_clock::now() - started;
  release->store(true);
  REQUIRE(served.ok());
  CHECK(took < 1s);
  CHECK(testing::eventually([&] { return continuations.load() == 4; }));
  testing::check_no_session_shared();
}

TEST_CASE("a callback that blocks on the token it came from gets its answer") {
  faults().reset();
  Hsm hsm;
  // One session: a callback run on it could never see its own request served.
  TokenOptions options = testing::options_for(pool_test_token());
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  Bytes digest = testing::openssl::sha256(bytes_of("callback thread"));
  auto [ran, ran_on] = make_promise<std::thread::id>();
  auto shared = std::make_shared<Promise<std::thread::id>>(std::move(ran));
  token.sign(token.private_key(testing::TestKeyLabels::ec256), Mechanism::ecdsa(), digest,
             [shared, token](Result<Bytes> signature) {
               // A blocking call back into the token, from the callback.
               auto again = token.random(4).get(10s);
               if (signature.ok() && again.ok()) shared->set_value(std::this_thread::get_id());
             });
  auto thread = ran_on.get(20s);
  REQUIRE(thread.ok());
  CHECK(*thread != std::this_thread::get_id());
}

TEST_CASE("a trace sink that installs a sink again neither deadlocks nor loses the request") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, two_sessions());
  auto seen = std::make_shared<std::atomic<int>>(0);
  // Reinstalls itself from inside itself (before: it ran under the hub's
  // mutex on a session thread, and set_trace_sink locked it again).
  auto sink = std::make_shared<TraceSink>();
  *sink = [token, seen, weak = std::weak_ptr<TraceSink>(sink)](const TraceEvent&) {
    seen->fetch_add(1);
    if (auto again = weak.lock()) token.set_trace_sink(*again);
  };
  token.set_trace_sink(*sink);
  for (int i = 0; i < 20; ++i) REQUIRE(token.random(8).get(10s).ok());
  CHECK(testing::eventually([&] { return seen->load() >= 20; }));
  token.set_trace_sink(nullptr);
}

TEST_CASE("a stream continuation that calls metrics() blocks nothing") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, two_sessions());
  auto [done, done_future] = make_promise<std::size_t>();
  auto shared = std::make_shared<Promise<std::size_t>>(std::move(done));
  token.open_stream(StreamKind::digest, Mechanism::sha256())
      .then([shared, token](Result<Stream> stream) {
        // Before: this ran on the bridge actor, which metrics() waits for.
        auto metrics = token.metrics();
        if (stream.ok() && metrics.ok()) shared->set_value(metrics->sessions_open);
      });
  auto sessions = done_future.get(20s);
  REQUIRE(sessions.ok());
  CHECK(*sessions >= 1);
  // And a plain thread's metrics() still answers.
  REQUIRE(token.metrics().ok());
}

TEST_CASE("a timed-out stream update gives its session back to the pool") {
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(pool_test_token());
  options.max_sessions = 1;
  options.default_deadline = 300ms;
  Token token = testing::open_or_throw(hsm, options);
  auto stream = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(10s);
  REQUIRE(stream.ok());
  faults().set_latency("C_DigestUpdate", 1200ms);
  auto late = stream->update(bytes_of("slow part")).get(10s);
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().condition() == Condition::deadline_exceeded);
  faults().set_latency("C_DigestUpdate", 0ms);
  std::this_thread::sleep_for(1200ms);  // the slow update ends; requests now fit the deadline
  // Before: the session stayed streaming and pinned for good.
  auto served = token.random(8).get(10s);
  INFO((served.ok() ? std::string("ok") : served.error().message()));
  REQUIRE(served.ok());
  auto next = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(10s);
  REQUIRE(next.ok());
  REQUIRE(next->update(bytes_of("abc")).get(10s).ok());
  auto digest = next->finish().get(10s);
  REQUIRE(digest.ok());
  CHECK(*digest == testing::openssl::sha256(bytes_of("abc")));
  // A step of the abandoned stream is refused, and touches nothing.
  CHECK_FALSE(stream->update(bytes_of("more")).get(10s).ok());
  testing::check_no_session_shared();
}

TEST_CASE("an open_stream given up while its session is busy never pins that session") {
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(pool_test_token());
  options.max_sessions = 1;
  options.default_deadline = 300ms;
  Token token = testing::open_or_throw(hsm, options);
  REQUIRE(token.random(8).get(10s).ok());
  faults().set_latency("C_GenerateRandom", 1500ms);
  auto busy = token.random(8);  // holds the only session past the stream's deadline
  std::this_thread::sleep_for(50ms);
  auto stream = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(10s);
  CHECK_FALSE(stream.ok());
  (void)busy.get(10s);
  faults().set_latency("C_GenerateRandom", 0ms);
  // Before: the late s_begin pinned the session for a stream nobody held.
  auto after = token.random(8).get(10s);
  REQUIRE(after.ok());
  auto next = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(10s);
  REQUIRE(next.ok());
  next->abort();
  REQUIRE(testing::eventually([&] {
    auto metrics = token.metrics();
    return metrics.ok() && metrics->sessions_busy == 0;
  }));
}

TEST_CASE("one Key used on two tokens signs with each token's own key") {
  faults().reset();
  const auto& first = pool_test_token();
  // A second token whose keys carry the same labels but other values: a
  // handle cached from one token must never be used on the other.
  static const auto second = [] {
    struct Second {
      testing::TestToken token;
      pkcs11::PublicKey ec256_public;
    } made;
    made.token = testing::create_test_token("answer-second", fault::fault_module_path());
    testing::LoggedInSession session(made.token);
    // A different creation order, so object handles differ from the first's.
    auto keys = testing::create_test_keys(session.session());
    auto exported = session.session().export_public_key(keys.ec256.public_key);
    if (!exported) throw std::runtime_error("cannot export the second token's key");
    made.ec256_public = *exported;
    return made;
  }();
  Hsm hsm;
  Token one = testing::open_or_throw(hsm, testing::options_for(first));
  TokenOptions other_options = testing::options_for(first);
  other_options.label = second.token.label;
  Token two = testing::open_or_throw(hsm, other_options);

  Key shared_key = Key::private_key(testing::TestKeyLabels::ec256);
  Bytes digest = testing::openssl::sha256(bytes_of("which token"));
  for (int round = 0; round < 3; ++round) {
    auto on_one = one.sign(shared_key, Mechanism::ecdsa(), digest).get(10s);
    REQUIRE(on_one.ok());
    CHECK(testing::openssl::verify_ecdsa(first.ec256_public, digest, *on_one));
    CHECK_FALSE(testing::openssl::verify_ecdsa(second.ec256_public, digest, *on_one));
    auto on_two = two.sign(shared_key, Mechanism::ecdsa(), digest).get(10s);
    REQUIRE(on_two.ok());
    CHECK(testing::openssl::verify_ecdsa(second.ec256_public, digest, *on_two));
    CHECK_FALSE(testing::openssl::verify_ecdsa(first.ec256_public, digest, *on_two));
  }
}

TEST_CASE("a Key kept across a module finalise and re-initialise signs with its own key") {
  faults().reset();
  TokenOptions options = testing::options_for(pool_test_token());
  options.finalize = FinalizePolicy::on_last_release;
  Key ec256 = Key::private_key(testing::TestKeyLabels::ec256);
  Key ec384 = Key::private_key(testing::TestKeyLabels::ec384);
  Bytes digest = testing::openssl::sha256(bytes_of("epochs"));
  Hsm hsm;
  const auto initializations = faults().call_count("C_Initialize");
  {
    Token token = testing::open_or_throw(hsm, options);
    REQUIRE(token.sign(ec256, Mechanism::ecdsa(), digest).get(10s).ok());  // caches a handle
    token.close();  // the last user: the module is finalised (a plain drop does it async)
  }
  Token token = testing::open_or_throw(hsm, options);
  REQUIRE(faults().call_count("C_Initialize") > initializations + 1);
  // In the new initialisation ec384 may be given the handle ec256 had.
  auto p384 = token.sign(ec384, Mechanism::ecdsa(), digest).get(10s);
  REQUIRE(p384.ok());
  CHECK(p384->size() == 96);
  auto p256 = token.sign(ec256, Mechanism::ecdsa(), digest).get(10s);
  REQUIRE(p256.ok());
  CHECK(p256->size() == 64);  // before: 96 bytes, a P-384 signature by the wrong key
  CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, digest, *p256));
}

TEST_CASE("open_token refuses options beyond what the pool can honour") {
  faults().reset();
  Hsm hsm;
  auto refused = [&](auto change) {
    TokenOptions options = testing::options_for(pool_test_token());
    change(options);
    auto token = hsm.open_token(options);
    return !token.ok() && token.error().condition() == Condition::invalid_argument;
  };
  CHECK(refused([](TokenOptions& o) { o.queue_limit = 0; }));
  CHECK(refused([](TokenOptions& o) { o.queue_limit = std::numeric_limits<std::size_t>::max(); }));
  CHECK(refused([](TokenOptions& o) { o.queue_limit = std::size_t{1} << 62; }));
  CHECK(refused([](TokenOptions& o) { o.max_sessions = 0; }));
  CHECK(refused([](TokenOptions& o) { o.max_sessions = std::numeric_limits<std::size_t>::max(); }));
  CHECK(refused([](TokenOptions& o) { o.default_deadline = -5ms; }));
  CHECK(refused([](TokenOptions& o) { o.default_deadline = 0ms; }));
  CHECK(refused([](TokenOptions& o) { o.coalescing_hold = -1us; }));
  CHECK(refused([](TokenOptions& o) {
    o.coalescing_hold = TokenOptions::kMaxCoalescingHold + 1us;
  }));
  CHECK_FALSE(refused([](TokenOptions& o) { o.coalescing_hold = 0us; }));
  CHECK_FALSE(refused([](TokenOptions& o) {
    o.coalescing_hold = TokenOptions::kMaxCoalescingHold;
  }));
  CHECK(refused([](TokenOptions& o) {
    o.default_deadline = std::chrono::milliseconds::max();
  }));
  // The largest accepted values work.
  TokenOptions biggest = testing::options_for(pool_test_token());
  biggest.queue_limit = TokenOptions::kMaxQueueLimit;
  biggest.default_deadline = TokenOptions::kMaxDeadline;
  auto token = hsm.open_token(biggest);
  REQUIRE(token.ok());
  CHECK(token->random(8).get(10s).ok());
}

}  // namespace
}  // namespace hsmactor
