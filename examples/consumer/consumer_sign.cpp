// A program outside hsmactor that uses it as a library: it makes a throwaway
// SoftHSM2 token, generates an EC key there, signs one message, verifies the
// signature (and that a tampered one fails), prints OK and exits 0.
//
// The token lives in a private directory under $TMPDIR that is removed at the
// end; SOFTHSM2_CONF points there before anything loads SoftHSM2.
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "hsmactor.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kTokenLabel = "consumer";
constexpr const char* kKeyLabel = "consumer-ec";
// Throwaway PINs of a token that exists for the length of this program.
constexpr const char* kSoPin = "12345678";
constexpr const char* kUserPin = "1234";

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "consumer_sign: " << what << "\n";
  std::exit(1);
}

template <class T>
T must(hsmactor::Result<T> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message());
  return std::move(result).value();
}

/// Removes the token directory however the program ends.
struct TokenDirectory {
  fs::path path;
  ~TokenDirectory() {
    std::error_code ignored;
    if (!path.empty()) fs::remove_all(path, ignored);
  }
};

/// Returns a fresh private directory holding a SoftHSM2 config, and points
/// SOFTHSM2_CONF at it.
fs::path make_softhsm_config(TokenDirectory& directory) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/hsmactor-consumer-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) fail("cannot make a directory from " + pattern);
  directory.path = pattern;
  fs::create_directories(directory.path / "tokens");
  fs::path config = directory.path / "softhsm2.conf";
  std::ofstream(config) << "directories.tokendir = " << (directory.path / "tokens").string()
                        << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", config.c_str(), 1);
  return config;
}

/// Initialises a token with SoftHSM2's own tool (hsmactor opens tokens; it
/// does not create them).
void init_token() {
  std::vector<std::string> words = {"softhsm2-util", "--init-token", "--free", "--label",
                                    kTokenLabel,     "--so-pin",     kSoPin,   "--pin",
                                    kUserPin};
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = 0;
  int spawned = ::posix_spawnp(&child, argv[0], &quiet, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&quiet);
  if (spawned != 0) fail("cannot run softhsm2-util (install softhsm2)");
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail("softhsm2-util --init-token failed");
  }
}

}  // namespace

int main() {
  TokenDirectory directory;
  make_softhsm_config(directory);
  init_token();

  const char* module = std::getenv("HSMACTOR_SOFTHSM2");
  hsmactor::TokenOptions options;
  options.module_path = module && *module ? module : "/usr/lib/softhsm/libsofthsm2.so";
  options.label = kTokenLabel;
  options.pin = hsmactor::Pin(kUserPin);

  hsmactor::Hsm hsm;
  hsmactor::Token token = must(hsm.open_token(options), "open the token");

  namespace p11 = hsmactor::pkcs11;
  must(token.generate_key_pair(p11::ec_key_pair_template(p11::EcCurve::p256, kKeyLabel,
                                                         hsmactor::bytes_of("c1")))
           .get(30s),
       "generate an EC P-256 key pair");

  // CKM_ECDSA signs a digest; the token computes it too.
  hsmactor::Bytes message = hsmactor::bytes_of("hello from a consumer of hsmactor");
  hsmactor::Bytes digest =
      must(token.digest(p11::Mechanism::sha256(), message).get(30s), "digest the message");
  hsmactor::Bytes signature =
      must(token.sign(token.private_key(kKeyLabel), p11::Mechanism::ecdsa(), digest).get(30s), "sign");

  hsmactor::Key public_key = hsmactor::Key::public_key(kKeyLabel);
  bool valid = must(token.verify(public_key, p11::Mechanism::ecdsa(), digest, signature).get(30s),
                    "verify");
  if (!valid) fail("the token rejected its own signature");

  hsmactor::Bytes tampered = signature;
  tampered[tampered.size() / 2] ^= 0x01;
  auto rejected = token.verify(public_key, p11::Mechanism::ecdsa(), digest, tampered).get(30s);
  if (rejected && *rejected) fail("the token accepted a tampered signature");

  token.close();
  std::cout << "signature " << hsmactor::to_hex(signature).substr(0, 16) << "... ("
            << signature.size() << " bytes) over SHA-256 " << hsmactor::to_hex(digest).substr(0, 16)
            << "... verifies; a tampered one does not\nOK\n";
  return 0;
}
