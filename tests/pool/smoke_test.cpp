#include "pool/hsm.hpp"
#include <catch2/catch.hpp>
#include "tests/support/softhsm_token.hpp"
using namespace hsmactor;
TEST_CASE("pool smoke") {
  auto token_spec = testing::create_test_token("poolsmoke");
  {
    testing::LoggedInSession s(token_spec);
    testing::create_test_keys(s.session());
  }
  Hsm hsm;
  TokenOptions options;
  options.module_path = token_spec.module_path;
  options.label = token_spec.label;
  options.pin = token_spec.user_pin;
  auto token = hsm.open_token(options);
  if (!token) FAIL(token.error().message());
  Bytes digest(32, 1);
  auto sig = token->sign(token->key("ec256"), Mechanism::ecdsa(), digest).get(std::chrono::seconds(10));
  if (!sig) FAIL(sig.error().message());
  CHECK(sig->size() == 64);
  auto ok = token->verify(Key::public_key("ec256"), Mechanism::ecdsa(), digest, *sig).get(std::chrono::seconds(10));
  REQUIRE(ok.ok()); CHECK(*ok);
  std::vector<Future<Bytes>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(token->random(32));
  int good = 0; for (auto& f : fs) good += f.get(std::chrono::seconds(10)).ok();
  CHECK(good == 200);
  auto m = token->metrics(); REQUIRE(m.ok());
  WARN("sessions " << m->sessions_open << " requests " << m->requests);
}
