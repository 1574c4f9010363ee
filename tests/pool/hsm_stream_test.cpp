// Multi-part streams through the public API: chunks make the same signature
// as one call, an aborted stream gives its session back, and a stream whose
// session dies fails with stream_interrupted instead of being replayed.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
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

Bytes message_of(std::size_t size) {
  Bytes message(size);
  for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return message;
}

Key rsa_key() { return Key::private_key(testing::TestKeyLabels::rsa2048); }

TEST_CASE("an RSA sign stream fed in chunks makes the same signature as one call") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  const Bytes message = message_of(10000);

  auto stream = token.open_stream(StreamKind::sign, Mechanism::rsa_pkcs_sha256(), rsa_key()).get(30s);
  REQUIRE(stream.ok());
  std::uint64_t fed = 0;
  for (std::size_t offset = 0; offset < message.size(); offset += 999) {
    std::size_t length = std::min<std::size_t>(999, message.size() - offset);
    auto taken = stream->update(ByteView(message.data() + offset, length)).get(30s);
    REQUIRE(taken.ok());
    fed += length;
    CHECK(*taken == fed);
  }
  auto streamed = stream->finish().get(30s);
  REQUIRE(streamed.ok());

  auto single = token.sign(rsa_key(), Mechanism::rsa_pkcs_sha256(), message).get(30s);
  REQUIRE(single.ok());
  // PKCS#1 v1.5 is deterministic: both ways must give the very same bytes.
  CHECK(*streamed == *single);
  CHECK(testing::openssl::verify_rsa_pkcs1_sha256(test_token.rsa2048_public, message, *streamed));

  auto verifier = token.open_stream(StreamKind::verify, Mechanism::rsa_pkcs_sha256(),
                                    Key::public_key(testing::TestKeyLabels::rsa2048))
                      .get(30s);
  REQUIRE(verifier.ok());
  REQUIRE(verifier->update(message).get(30s).ok());
  auto valid = verifier->finish_verify(*streamed).get(30s);
  REQUIRE(valid.ok());
  CHECK(*valid);
  testing::check_no_session_shared();
}

TEST_CASE("an aborted stream gives its session back and the next request works") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;  // the next request must use the aborted stream's session
  Token token = testing::open_or_throw(hsm, options);
  const Bytes message = message_of(3000);

  auto stream = token.open_stream(StreamKind::sign, Mechanism::rsa_pkcs_sha256(), rsa_key()).get(30s);
  REQUIRE(stream.ok());
  REQUIRE(stream->update(ByteView(message.data(), 1000)).get(30s).ok());
  stream->abort();
  auto after_abort = stream->update(ByteView(message.data() + 1000, 1000)).get(30s);
  REQUIRE_FALSE(after_abort.ok());
  CHECK(after_abort.error().condition() == Condition::invalid_argument);

  auto single = token.sign(rsa_key(), Mechanism::rsa_pkcs_sha256(), message).get(30s);
  INFO("sign after abort: " << (single.ok() ? "ok" : single.error().message()));
  REQUIRE(single.ok());
  CHECK(testing::openssl::verify_rsa_pkcs1_sha256(test_token.rsa2048_public, message, *single));

  // The session is usable for a whole new stream too.
  auto again = token.open_stream(StreamKind::sign, Mechanism::rsa_pkcs_sha256(), rsa_key()).get(30s);
  REQUIRE(again.ok());
  REQUIRE(again->update(message).get(30s).ok());
  auto streamed = again->finish().get(30s);
  REQUIRE(streamed.ok());
  CHECK(*streamed == *single);
  auto metrics = token.metrics();
  REQUIRE(metrics.ok());
  CHECK(metrics->sessions_open == 1);
  CHECK(metrics->sessions_busy == 0);
  testing::check_no_session_shared();
}

TEST_CASE("a stream whose session is invalidated fails with stream_interrupted") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  const Bytes message = message_of(3000);

  auto stream = token.open_stream(StreamKind::sign, Mechanism::rsa_pkcs_sha256(), rsa_key()).get(30s);
  REQUIRE(stream.ok());
  REQUIRE(stream->update(ByteView(message.data(), 1000)).get(30s).ok());
  faults().invalidate_all_sessions();

  auto interrupted = stream->update(ByteView(message.data() + 1000, 1000)).get(30s);
  REQUIRE_FALSE(interrupted.ok());
  CHECK(interrupted.error().condition() == Condition::stream_interrupted);
  CHECK(interrupted.error().rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK(interrupted.error().category() == Category::retry);
  // Nothing is replayed: the stream is over.
  auto finish = stream->finish().get(30s);
  REQUIRE_FALSE(finish.ok());
  CHECK(finish.error().condition() == Condition::invalid_argument);

  // The pool heals: the caller may simply start again.
  Result<Bytes> single = Error::make(Condition::internal_error, "not tried");
  bool healed = testing::eventually(
      [&] {
        single = token.sign(rsa_key(), Mechanism::rsa_pkcs_sha256(), message).get(30s);
        return single.ok();
      },
      10s);
  INFO("last sign: " << (single.ok() ? "ok" : single.error().message()));
  REQUIRE(healed);
  CHECK(testing::openssl::verify_rsa_pkcs1_sha256(test_token.rsa2048_public, message, *single));
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
