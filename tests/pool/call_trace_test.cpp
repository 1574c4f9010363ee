// The call trace through the public API: every PKCS#11 call a pooled session
// makes reaches the application's sink with its function, session handle,
// duration and CKR_* result, alongside request-level events, and no PIN or
// payload byte ever appears in it.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "pkcs11/bytes.hpp"
#include "tests/pool/pool_fixture.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::contains;
using testing::faults;
using testing::pool_test_token;

class Recorder {
 public:
  TraceSink sink() {
    return [this](const TraceEvent& event) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(event);
    };
  }
  std::vector<TraceEvent> events() {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::vector<TraceEvent> events_;
};

std::size_t requests_named(const std::vector<TraceEvent>& events, const char* operation) {
  std::size_t found = 0;
  for (const auto& event : events) found += event.what == "request" && event.operation == operation;
  return found;
}

std::vector<TraceEvent> calls_named(const std::vector<TraceEvent>& events, const char* function) {
  std::vector<TraceEvent> found;
  for (const auto& event : events) {
    if (event.what == "call" && event.operation == function) found.push_back(event);
  }
  return found;
}

TEST_CASE("each PKCS#11 call of a request is traced with its session, duration and CKR") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Recorder recorder;
  token.set_trace_sink(recorder.sink());

  const Bytes digest(32, 0x5a);
  auto signature = token.sign(token.private_key(testing::TestKeyLabels::ec256),
                              pkcs11::Mechanism::ecdsa(), digest)
                       .get(30s);
  REQUIRE(signature.ok());
  // The wrong mechanism for an EC key: the module refuses one of the calls
  // (SoftHSM2 2.6 lets C_SignInit pass and fails C_Sign with CKR_GENERAL_ERROR).
  auto refused = token.sign(token.private_key(testing::TestKeyLabels::ec256),
                            pkcs11::Mechanism::rsa_pkcs_sha256(), digest)
                     .get(30s);
  REQUIRE_FALSE(refused.ok());
  // Events reach the sink on the executor, after the answers: wait for them.
  CHECK(testing::eventually([&] { return requests_named(recorder.events(), "sign") == 2; }));
  token.set_trace_sink(nullptr);

  auto events = recorder.events();
  auto inits = calls_named(events, "C_SignInit");
  auto signs = calls_named(events, "C_Sign");
  REQUIRE(inits.size() >= 2);
  REQUIRE_FALSE(signs.empty());
  CHECK(inits.front().result == "CKR_OK");
  CHECK(inits.front().session != 0);
  CHECK(signs.front().result == "CKR_OK");
  CHECK(signs.front().session == inits.front().session);
  CHECK(signs.front().duration_ns > 0);

  // The last call before the refused request's own event carries its code.
  const TraceEvent* last_call = nullptr;
  std::size_t requests_seen = 0;
  for (const auto& event : events) {
    if (event.what == "request") {
      if (++requests_seen == 2) break;
    } else if (event.what == "call") {
      last_call = &event;
    }
  }
  REQUIRE(last_call != nullptr);
  CHECK(last_call->result == refused.error().rv_name());
  CHECK(last_call->result != "CKR_OK");

  // Request-level events come too, one per request.
  std::size_t requests = 0;
  for (const auto& event : events) requests += event.what == "request" && event.operation == "sign";
  CHECK(requests == 2);

  // Nothing secret or payload-sized: no PIN, no digest or signature bytes.
  const std::string digest_hex = to_hex(digest);
  const std::string signature_hex = to_hex(*signature);
  for (const auto& event : events) {
    for (const std::string& text : {event.what, event.operation, event.result}) {
      INFO("trace text: " << text);
      CHECK_FALSE(contains(text, "1234"));
      CHECK_FALSE(contains(text, digest_hex.substr(0, 16)));
      CHECK_FALSE(contains(text, signature_hex.substr(0, 16)));
    }
  }
  testing::check_no_session_shared();
}

TEST_CASE("without a sink nothing is traced, and a sink can be added later") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  REQUIRE(token.random(16).get(30s).ok());
  Recorder recorder;
  token.set_trace_sink(recorder.sink());
  REQUIRE(token.random(16).get(30s).ok());
  CHECK(testing::eventually([&] { return requests_named(recorder.events(), "random") == 1; }));
  token.set_trace_sink(nullptr);
  // Once set_trace_sink returns, the old sink gets nothing more.
  REQUIRE(token.random(16).get(30s).ok());
  std::this_thread::sleep_for(100ms);
  auto randoms = calls_named(recorder.events(), "C_GenerateRandom");
  CHECK(randoms.size() == 1);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
