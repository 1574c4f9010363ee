// What the pool tests share: this process's SoftHSM2 token behind the fault
// module, its keys (with their public halves read once, outside the pool), the
// fault module's controls, and small helpers for waiting on threads.
//
// Every test process owns its token: pool_test_token() creates it through
// libhsmactor_fault.so on first use, so all traffic, including the set-up,
// passes the fault module and its thread tracker. Set-up failures throw, so a
// test never passes without its token.
//
// Usage:
//   const auto& t = testing::pool_test_token();
//   testing::faults().reset();
//   Hsm hsm;
//   Token token = testing::open_or_throw(hsm, testing::options_for(t));
//   ...
//   testing::check_no_session_shared();
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

#include "hsmactor.hpp"
#include "testing/fault_control.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::testing {

/// This process's token and what the tests need to check results outside it.
struct PoolTestToken {
  TestToken token;
  TestKeys keys;
  pkcs11::PublicKey ec256_public;
  pkcs11::PublicKey rsa2048_public;
};

/// Returns the token (labelled "pool-test"), creating it and its keys through
/// the fault module on the first call.
const PoolTestToken& pool_test_token();

/// Returns the control handle of the fault module the token is reached through.
fault::FaultControl& faults();

/// Returns options that open the test token with the right PIN.
TokenOptions options_for(const PoolTestToken& test_token);

/// Opens a token or throws std::runtime_error with the error's message.
Token open_or_throw(Hsm& hsm, const TokenOptions& options);

/// Asserts (Catch2 CHECK) that the fault module saw no session entered by two
/// threads at once since its last reset, with the tracker's description.
void check_no_session_shared();

/// Returns true as soon as `condition` holds, polling every few milliseconds;
/// false if it still does not after `limit`.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = std::chrono::seconds(30));

/// Counts arrivals from any thread; a test thread waits for all of them.
class Countdown {
 public:
  explicit Countdown(std::size_t count) : left_(count) {}
  void arrive() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (left_ > 0 && --left_ == 0) done_.notify_all();
  }
  /// Returns true when every arrival happened within `limit`.
  bool wait_for(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    return done_.wait_for(lock, limit, [this] { return left_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::size_t left_;
};

/// Returns true if `haystack` contains `needle` (for "no secret in this text").
bool contains(const std::string& haystack, const std::string& needle);

}  // namespace hsmactor::testing
