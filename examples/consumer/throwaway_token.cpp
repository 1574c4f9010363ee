#include "throwaway_token.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

fs::path make_private_directory() {
  const char* base = nullptr;
  for (const char* variable : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* value = std::getenv(variable);
    if (value != nullptr && *value != '\0') {
      base = value;
      break;
    }
  }
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/hsmactor-consumer-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot make a directory from " + pattern);
  }
  return pattern;
}

/// Runs softhsm2-util with `arguments`, its stdout silenced; throws unless it exits 0.
void run_softhsm2_util(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "softhsm2-util");
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = 0;
  const int spawned = ::posix_spawnp(&child, argv[0], &quiet, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&quiet);
  if (spawned != 0) throw std::runtime_error("cannot run softhsm2-util (install softhsm2)");
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("softhsm2-util " + arguments[1] + " failed");
  }
}

}  // namespace

ThrowawayToken::ThrowawayToken(std::string label)
    : label_(std::move(label)), directory_(make_private_directory()) {
  try {
    fs::create_directories(directory_ / "tokens");
    const fs::path config = directory_ / "softhsm2.conf";
    std::ofstream(config) << "directories.tokendir = " << (directory_ / "tokens").string()
                          << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    // SoftHSM2 reads its config once, in its first C_Initialize.
    ::setenv("SOFTHSM2_CONF", config.c_str(), 1);
    run_softhsm2_util(
        {"--init-token", "--free", "--label", label_, "--so-pin", kSoPin, "--pin", kUserPin});
  } catch (...) {
    // No destructor runs for a half-made object.
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
    throw;
  }
}

ThrowawayToken::~ThrowawayToken() {
  std::error_code ignored;
  fs::remove_all(directory_, ignored);
}
