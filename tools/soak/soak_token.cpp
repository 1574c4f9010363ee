#include "tools/soak/soak_token.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace hsmactor::soak {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLabel = "hsmactor-soak";

std::string make_temp_dir() {
  // Under `bazel test`, the test's own scratch directory.
  const char* tmp = std::getenv("TEST_TMPDIR");
  if (!tmp || !*tmp) tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/hsmactor-soak-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    throw std::runtime_error("cannot create a directory like " + pattern);
  }
  return std::string(buffer.data());
}

// Writes `dir`/softhsm2.conf with its token store in `dir`/tokens and points
// SOFTHSM2_CONF at it.
void use_softhsm_dir(const std::string& dir) {
  fs::path tokens = fs::path(dir) / "tokens";
  if (fs::exists(tokens) && !fs::is_empty(tokens)) {
    throw std::runtime_error(tokens.string() + " already holds tokens; give an empty --token-dir");
  }
  fs::create_directories(tokens);
  std::string config = (fs::path(dir) / "softhsm2.conf").string();
  std::ofstream out(config);
  out << "directories.tokendir = " << tokens.string() << "\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n";
  out.close();
  if (!out) throw std::runtime_error("cannot write " + config);
  ::setenv("SOFTHSM2_CONF", config.c_str(), 1);
}

}  // namespace

std::unique_ptr<SoakToken> SoakToken::create(const std::string& module_path,
                                             const std::string& token_dir) {
  std::unique_ptr<SoakToken> made(new SoakToken());
  made->throwaway_ = token_dir.empty();
  made->dir_ = made->throwaway_ ? make_temp_dir() : token_dir;
  use_softhsm_dir(made->dir_);
  made->token_ = testing::init_test_token(kLabel, module_path);
  testing::LoggedInSession session(made->token_);
  made->keys_ = testing::create_test_keys(session.session());
  auto ec = session.session().export_public_key(made->keys_.ec256.public_key);
  auto rsa = session.session().export_public_key(made->keys_.rsa2048.public_key);
  if (!ec || !rsa) throw std::runtime_error("cannot export the public keys");
  made->ec256_public_ = std::move(*ec);
  made->rsa2048_public_ = std::move(*rsa);
  return made;
}

SoakToken::~SoakToken() {
  if (throwaway_) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
}

}  // namespace hsmactor::soak
