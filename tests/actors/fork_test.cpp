// Fork: the parent signs, forks; the child builds fresh state (a new
// C_Initialize, a new login) without touching the parent's actors, signs and
// exits; the parent keeps signing. Also while the parent is busy: signing on
// 8 threads, or opening and closing tokens (each a module start and stop), a
// fork must never leave the child waiting on a lock or call of the parent's.
#include "pool/hsm.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "tests/support/softhsm_token.hpp"

using namespace hsmactor;

namespace {

TokenOptions options_for(const testing::TestToken& token) {
  TokenOptions options;
  options.module_path = token.module_path;
  options.label = token.label;
  options.pin = token.user_pin;
  options.max_sessions = 2;
  return options;
}

bool signs(const Token& token) {
  auto signature = token.sign(token.private_key(testing::TestKeyLabels::ec256),
                              pkcs11::Mechanism::ecdsa(), Bytes(32, 7))
                       .get(std::chrono::seconds(30));
  if (!signature) return false;
  auto valid = token.verify(Key::public_key(testing::TestKeyLabels::ec256),
                            pkcs11::Mechanism::ecdsa(), Bytes(32, 7), *signature)
                   .get(std::chrono::seconds(30));
  return valid.ok() && *valid;
}

// Returns true once `condition` holds; false after 30 s.
bool eventually(const std::function<bool()>& condition) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace

TEST_CASE("after fork the child signs with fresh state and the parent keeps signing") {
  auto token_spec = testing::create_test_token("forking");
  {
    testing::LoggedInSession setup(token_spec);
    testing::create_test_keys(setup.session());
  }
  Hsm hsm;
  auto token = hsm.open_token(options_for(token_spec));
  REQUIRE(token.ok());
  REQUIRE(signs(*token));

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Only async-signal-safe exits from here on failure paths: no Catch2.
    int status = 1;
    {
      // The parent's token answers with `forked` instead of touching its actors.
      auto inherited = token->random(8).get(std::chrono::seconds(5));
      bool refused = !inherited.ok() && inherited.error().condition() == Condition::forked;
      Hsm child_hsm;
      auto child_token = child_hsm.open_token(options_for(token_spec));
      if (refused && child_token.ok() && signs(*child_token)) status = 0;
      if (child_token.ok()) child_token->close();
    }
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(signs(*token));
  CHECK(signs(*token));
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kChildCrashed = -1;
constexpr int kChildHung = -2;

#if defined(__SANITIZE_ADDRESS__)
// GCC 12's AddressSanitizer allocator has no fork handler: a child forked
// while another thread holds the allocator's lock blocks in its first
// malloc (seen in gdb), whatever hsmactor does. Only there may a child hang.
constexpr bool kForkMayHangInMalloc = true;
#else
constexpr bool kForkMayHangInMalloc = false;
#endif

bool child_ok(int code) {
  return code == 0 || (kForkMayHangInMalloc && code == kChildHung);
}

// Waits for `child` until `deadline`; a child still running then is killed.
// Returns its exit code, kChildCrashed or kChildHung.
int exit_code_within(pid_t child, Clock::time_point deadline) {
  int status = 0;
  for (;;) {
    pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : kChildCrashed;
    if (done < 0) return kChildCrashed;
    if (Clock::now() > deadline) {
      ::kill(child, SIGKILL);
      (void)::waitpid(child, &status, 0);
      return kChildHung;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Exit codes of a child; a hung or crashed child counts as -1.
constexpr int kChildSigned = 0;
constexpr int kChildOpenRefused = 2;  // open_token answered a typed error
constexpr int kChildSignFailed = 3;

// The child's work: a fresh Hsm, `signatures` signs (the first verified).
// Never returns.
//
// SoftHSM2's file store rewrites token.object on every C_Login and C_Logout
// (seen with strace), and a process reading it meanwhile may get
// CKR_GENERAL_ERROR or miss the token: a cross-process race of SoftHSM2's,
// not a fork problem. So opening is tried a few times; signing never writes.
[[noreturn]] void sign_in_child_and_exit(const testing::TestToken& token_spec, int signatures) {
  int status = kChildOpenRefused;
  {
    Hsm child_hsm;
    auto child_token = child_hsm.open_token(options_for(token_spec));
    for (int retry = 0; retry < 3 && !child_token.ok(); ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      child_token = child_hsm.open_token(options_for(token_spec));
    }
    if (!child_token.ok()) {
      // The parent's test log shows why (the exit code alone would not).
      std::fprintf(stderr, "child %d: open_token: %s\n", static_cast<int>(::getpid()),
                   child_token.error().message().c_str());
    }
    if (child_token.ok() && signs(*child_token)) {
      status = kChildSigned;
      for (int i = 0; i < signatures && status == kChildSigned; ++i) {
        auto signature = child_token->sign(child_token->private_key(testing::TestKeyLabels::ec256),
                                           pkcs11::Mechanism::ecdsa(), Bytes(32, 9))
                             .get(std::chrono::seconds(20));
        if (!signature) status = kChildSignFailed;
      }
      child_token->close();
    }
  }
  ::_exit(status);
}

void create_keys_on(const testing::TestToken& token_spec) {
  testing::LoggedInSession setup(token_spec);
  testing::create_test_keys(setup.session());
}

}  // namespace

TEST_CASE("children forked while 8 parent threads sign each sign 100 times on fresh state") {
  auto token_spec = testing::create_test_token("fork-busy-sign");
  create_keys_on(token_spec);
  Hsm hsm;
  auto token = hsm.open_token(options_for(token_spec));
  REQUIRE(token.ok());
  REQUIRE(signs(*token));

  std::atomic<bool> stop{false};
  std::atomic<int> parent_errors{0};
  std::atomic<int> parent_signatures{0};
  std::vector<std::thread> signers;
  for (int i = 0; i < 8; ++i) {
    signers.emplace_back([&] {
      while (!stop.load()) {
        auto signature = token->sign(token->private_key(testing::TestKeyLabels::ec256),
                                     pkcs11::Mechanism::ecdsa(), Bytes(32, 7))
                             .get(std::chrono::seconds(30));
        if (signature) {
          parent_signatures++;
        } else {
          parent_errors++;
        }
      }
    });
  }
  std::vector<pid_t> children;
  for (int i = 0; i < 20; ++i) {
    // Fork at varied points of the signers' work.
    std::this_thread::sleep_for(std::chrono::milliseconds(15 + 7 * (i % 5)));
    pid_t child = ::fork();
    if (child == 0) sign_in_child_and_exit(token_spec, 100);
    if (child > 0) children.push_back(child);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::vector<int> exit_codes;
  for (pid_t child : children) exit_codes.push_back(exit_code_within(child, deadline));
  stop = true;
  for (auto& signer : signers) signer.join();

  CHECK(children.size() == 20);
  int signed_children = 0;
  for (int code : exit_codes) {
    CHECK(child_ok(code));  // -1: crashed, -2: hung (killed)
    if (code == kChildSigned) signed_children++;
  }
  CHECK(signed_children > 0);
  CHECK(parent_errors.load() == 0);
  CHECK(parent_signatures.load() > 0);
  CHECK(signs(*token));
}

TEST_CASE("children forked while another thread opens and closes tokens do not hang") {
  auto token_spec = testing::create_test_token("fork-open-close");
  create_keys_on(token_spec);
  Hsm hsm;
  std::atomic<bool> stop{false};
  std::atomic<int> cycles{0};
  std::atomic<int> open_errors{0};
  std::string first_open_error;  // written by the opener only, read after join
  // Each cycle is a first acquisition and a last release of the module: a
  // supervisor start (C_Initialize) and stop, sessions opened and closed.
  // Without a PIN: a C_Login would rewrite SoftHSM2's token file (see
  // sign_in_child_and_exit), and a thread that logged in leaves OpenSSL
  // per-thread state that OpenSSL frees under its own lock when the thread
  // exits, outside any PKCS#11 call, so no fork gate of ours can cover it
  // (a child then hung in RAND_bytes; seen in gdb).
  TokenOptions public_only = options_for(token_spec);
  public_only.pin = Pin();
  public_only.login = Login::none;
  std::thread opener([&] {
    while (!stop.load()) {
      auto token = hsm.open_token(public_only);
      if (!token) {
        if (open_errors++ == 0) first_open_error = token.error().message();
        continue;
      }
      token->close();
      cycles++;
    }
  });
  REQUIRE(eventually([&] { return cycles.load() > 0; }));
  std::vector<pid_t> children;
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 3 * (i % 4)));
    pid_t child = ::fork();
    if (child == 0) sign_in_child_and_exit(token_spec, 5);
    if (child > 0) children.push_back(child);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(40);
  std::vector<int> exit_codes;
  for (pid_t child : children) exit_codes.push_back(exit_code_within(child, deadline));
  stop = true;
  opener.join();

  CHECK(children.size() == 12);
  int signed_children = 0;
  for (int code : exit_codes) {
    CHECK(child_ok(code));  // -1: crashed, -2: hung (killed)
    if (code == kChildSigned) signed_children++;
  }
  CHECK(signed_children > 0);
  // The children's logins rewrite SoftHSM2's token file while the parent's
  // opens read it (see sign_in_child_and_exit): an open may be refused with
  // a typed error then, but every one is answered and most succeed.
  INFO(open_errors.load() << " refused opens in " << cycles.load()
                          << " cycles, first: " << first_open_error);
  CHECK(cycles.load() > 0);
  CHECK(open_errors.load() * 4 <= cycles.load());
}
