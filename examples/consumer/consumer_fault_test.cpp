// A consumer's own test of how hsmactor copes with a misbehaving HSM: the
// published fault module (@hsmactor//testing:fault_module) sits in front of
// SoftHSM2 and answers one C_Sign with CKR_SESSION_HANDLE_INVALID; hsmactor
// opens another session, signs again, and the caller sees only the signature.
#include <chrono>
#include <string>

#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "hsmactor.hpp"
#include "testing/fault_control.hpp"
#include "throwaway_token.hpp"

namespace {

using namespace std::chrono_literals;
using hsmactor::fault::FaultControl;

constexpr const char* kKeyLabel = "consumer-fault-ec";

}  // namespace

TEST_CASE("a sign still succeeds when the HSM drops its session once") {
  ThrowawayToken softhsm("consumer-fault");
  const std::string module = hsmactor::fault::fault_module_path();
  FaultControl faults(module);
  faults.reset();

  hsmactor::TokenOptions options;
  options.module_path = module;  // the fault module, forwarding to SoftHSM2
  options.label = softhsm.label();
  options.pin = hsmactor::Pin(ThrowawayToken::kUserPin);
  hsmactor::Hsm hsm;
  auto token = hsm.open_token(options);
  REQUIRE(token);

  namespace p11 = hsmactor::pkcs11;
  auto generated = token->generate_key_pair(
      p11::ec_key_pair_template(p11::EcCurve::p256, kKeyLabel, hsmactor::bytes_of("f1")))
                       .get(30s);
  INFO((generated ? std::string("key pair generated") : generated.error().message()));
  REQUIRE(generated);

  // CKM_ECDSA signs any 32 bytes as a SHA-256 digest.
  const hsmactor::Bytes digest(32, 0x5a);
  faults.reset_counts();
  faults.add_rule("C_Sign", CKR_SESSION_HANDLE_INVALID, /*after=*/0, /*times=*/1);

  auto signature = token->sign(hsmactor::Key::private_key(kKeyLabel),
                               hsmactor::Mechanism::ecdsa(), digest)
                       .get(30s);
  INFO((signature ? std::string("signed") : signature.error().message()));
  REQUIRE(signature);
  CHECK(faults.call_count("C_Sign") == 2);  // the dropped call and the retry

  auto valid = token->verify(hsmactor::Key::public_key(kKeyLabel), hsmactor::Mechanism::ecdsa(),
                             digest, *signature)
                   .get(30s);
  REQUIRE(valid);
  CHECK(*valid);

  INFO("last violation: " << faults.last_violation());
  CHECK(faults.violations() == 0);  // no session was entered by two threads at once
  token->close();
}
