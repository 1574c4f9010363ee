// The async_* functions from C++20 coroutines (asio::use_awaitable): this test
// alone is compiled as C++20; the library itself stays C++17.
#include "asio/hsmactor_asio.hpp"

#include <catch2/catch.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <exception>
#include <string>
#include <system_error>
#include <tuple>

#include "asio/hsmactor_asio_fixture.hpp"
#include "tests/support/openssl_check.hpp"

#if !defined(ASIO_HAS_CO_AWAIT)
#error "this test needs C++20 coroutines (copts -std=c++20)"
#endif

namespace hsmactor::asio_support {
namespace {

using testing::asio_test_token;
using testing::open_test_token;
using testing::TestKeyLabels;
namespace openssl = testing::openssl;

// Runs `body` as a coroutine on a fresh io_context until it and every request
// it made are done; rethrows what it threw.
template <class Body>
void run_coroutine(Body body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

TEST_CASE("co_await async_sign and async_verify") {
  Hsm hsm;
  Token token = open_test_token(hsm, nullptr);
  const Bytes digest = openssl::sha256(bytes_of("awaitable"));
  bool verified_here = false;
  bool verified_by_openssl = false;
  run_coroutine([&]() -> asio::awaitable<void> {
    Bytes signature = co_await async_sign(token, token.private_key(TestKeyLabels::ec256),
                                          Mechanism::ecdsa(), digest, asio::use_awaitable);
    verified_by_openssl = openssl::verify_ecdsa(asio_test_token().ec256_public, digest, signature);
    verified_here = co_await async_verify(token, Key::public_key(TestKeyLabels::ec256),
                                          Mechanism::ecdsa(), digest, signature,
                                          asio::use_awaitable);
  });
  CHECK(verified_by_openssl);
  CHECK(verified_here);
}

TEST_CASE("co_await async_digest async_random async_encrypt and async_decrypt") {
  Hsm hsm;
  Token token = open_test_token(hsm, nullptr);
  const Bytes data = bytes_of("coroutine data");
  const Bytes iv(12, 0x01);
  Bytes digest, random, decrypted;
  run_coroutine([&]() -> asio::awaitable<void> {
    digest = co_await async_digest(token, Mechanism::sha256(), data, asio::use_awaitable);
    random = co_await async_random(token, 24, asio::use_awaitable);
    Key aes = Key::secret_key(TestKeyLabels::aes);
    Bytes sealed = co_await async_encrypt(token, aes, Mechanism::aes_gcm(iv), data,
                                          asio::use_awaitable);
    decrypted = co_await async_decrypt(token, aes, Mechanism::aes_gcm(iv), sealed,
                                       asio::use_awaitable);
  });
  CHECK(digest == openssl::sha256(data));
  CHECK(random.size() == 24);
  CHECK(decrypted == data);
}

TEST_CASE("a failure is thrown into the coroutine as std::system_error") {
  Hsm hsm;
  Token token = open_test_token(hsm, nullptr);
  std::error_code caught;
  run_coroutine([&]() -> asio::awaitable<void> {
    try {
      co_await async_random(token, 0, asio::use_awaitable);
    } catch (const std::system_error& failure) {
      caught = failure.code();
    }
  });
  CHECK(caught == Condition::invalid_argument);
}

TEST_CASE("as_tuple hands the error code to the coroutine without throwing") {
  Hsm hsm;
  Token token = open_test_token(hsm, nullptr);
  std::error_code got;
  Error diagnostics;
  run_coroutine([&]() -> asio::awaitable<void> {
    auto [ec, signature] = co_await async_sign(
        token, token.private_key("no-such-key"), Mechanism::ecdsa(), Bytes(32, 1), diagnostics,
        asio::experimental::as_tuple(asio::use_awaitable));
    got = ec;
    CHECK(signature.empty());
  });
  CHECK(got == Condition::object_not_found);
  CHECK(diagnostics.condition() == Condition::object_not_found);
}

}  // namespace
}  // namespace hsmactor::asio_support
