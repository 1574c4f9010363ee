#include "tests/pool/pool_fixture.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <thread>

namespace hsmactor::testing {
namespace {

PoolTestToken make_pool_test_token() {
  PoolTestToken made;
  made.token = create_test_token("pool-test", fault::fault_module_path());
  LoggedInSession session(made.token);
  made.keys = create_test_keys(session.session());
  auto ec = session.session().export_public_key(made.keys.ec256.public_key);
  auto rsa = session.session().export_public_key(made.keys.rsa2048.public_key);
  if (!ec || !rsa) throw std::runtime_error("cannot export the test public keys");
  made.ec256_public = std::move(*ec);
  made.rsa2048_public = std::move(*rsa);
  return made;
}

}  // namespace

const PoolTestToken& pool_test_token() {
  static const PoolTestToken instance = make_pool_test_token();
  return instance;
}

fault::FaultControl& faults() {
  // Never destroyed: the module stays loaded until the process ends anyway.
  static auto* control = new fault::FaultControl(fault::fault_module_path());
  return *control;
}

TokenOptions options_for(const PoolTestToken& test_token) {
  TokenOptions options;
  options.module_path = test_token.token.module_path;
  options.label = test_token.token.label;
  options.pin = test_token.token.user_pin;
  return options;
}

Token open_or_throw(Hsm& hsm, const TokenOptions& options) {
  auto token = hsm.open_token(options);
  if (!token) throw std::runtime_error("open_token failed: " + token.error().message());
  return *token;
}

void check_no_session_shared() {
  INFO("last violation: " << faults().last_violation());
  CHECK(faults().violations() == 0);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto give_up = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return !needle.empty() && haystack.find(needle) != std::string::npos;
}

}  // namespace hsmactor::testing
