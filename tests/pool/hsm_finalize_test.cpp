// Finalize policy: by default hsmactor never calls C_Finalize, because the
// same module may be in use through another path (here SoftHSM2 directly and
// through the fault module, which forwards to the very same SoftHSM2). Closing
// one of them must not pull the module from under the other's calls.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

Result<Bytes> sign_once(const Token& token) {
  return token.sign(token.private_key(testing::TestKeyLabels::ec256), Mechanism::ecdsa(),
                    testing::openssl::sha256(bytes_of("finalize test")))
      .get(30s);
}

TEST_CASE("closing the direct SoftHSM2 user while a wrapper's user signs does not stop it") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  // The direct path first, so its C_Initialize is the one SoftHSM2 counts
  // (the wrapper's meets CKR_CRYPTOKI_ALREADY_INITIALIZED); the wrapper's
  // user logs in first, so the login is the wrapper's.
  TokenOptions direct_options = testing::options_for(test_token);
  direct_options.module_path = testing::softhsm2_module_path();
  direct_options.pin = Pin();
  direct_options.login = Login::none;
  Token direct_public = testing::open_or_throw(hsm, direct_options);
  Token wrapped = testing::open_or_throw(hsm, testing::options_for(test_token));
  direct_options.pin = test_token.token.user_pin;
  direct_options.login = Login::user;
  Token direct = testing::open_or_throw(hsm, direct_options);
  REQUIRE(sign_once(direct).ok());
  REQUIRE(sign_once(wrapped).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> signed_count{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::thread signer([&] {
    while (!stop.load()) {
      auto signature = sign_once(wrapped);
      if (signature) {
        signed_count++;
      } else {
        std::lock_guard<std::mutex> lock(failures_mutex);
        failures.push_back(signature.error().message());
      }
    }
  });
  REQUIRE(testing::eventually([&] { return signed_count.load() > 20; }));
  // The direct module's last release: under the default policy it is not
  // finalised (before the policy existed, C_Finalize pulled SoftHSM2 from
  // under the wrapper's sessions: SIGSEGV).
  direct.close();
  direct_public.close();
  const int signed_at_close = signed_count.load();
  const bool kept_signing =
      testing::eventually([&] { return signed_count.load() > signed_at_close + 50; });
  stop = true;
  signer.join();

  CHECK(kept_signing);
  std::lock_guard<std::mutex> lock(failures_mutex);
  std::string all_failures;
  for (const auto& failure : failures) all_failures += failure + "\n";
  INFO(failures.size() << " signs failed:\n" << all_failures);
  CHECK(failures.empty());
  CHECK(sign_once(wrapped).ok());
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
