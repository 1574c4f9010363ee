// What the asio/ tests share: this process's SoftHSM2 token and keys (public
// halves read once, outside hsmactor), and a GateExecutor that holds the
// token's continuations until the test lets them go, so a test can order
// "cancel" before "answer" without timing.
//
// Usage:
//   const auto& t = testing::asio_test_token();
//   Hsm hsm;
//   Token token = testing::open_test_token(hsm, nullptr);  // completion pool
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "hsmactor.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::testing {

/// This process's token and what the tests need to check results outside it.
struct AsioTestToken {
  TestToken token;
  TestKeys keys;
  pkcs11::PublicKey ec256_public;
};

/// Returns the token ("asio-test"), created with its keys on the first call.
const AsioTestToken& asio_test_token();

/// Opens the test token with `executor` (null: the completion pool) and
/// `max_sessions`; throws std::runtime_error if it cannot.
Token open_test_token(Hsm& hsm, std::shared_ptr<Executor> executor,
                      std::size_t max_sessions = 2);

/// An Executor that keeps every task until release() hands them on.
class GateExecutor final : public Executor {
 public:
  void post(Task task) noexcept override;
  /// Blocks until `count` tasks have arrived since the last release.
  void wait_for(std::size_t count);
  /// Hands the held tasks (in order) to `target` and keeps passing later ones
  /// straight through.
  void release(Executor& target);

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<Task> held_;
  Executor* target_ = nullptr;
};

}  // namespace hsmactor::testing
