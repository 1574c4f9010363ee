// Command-line options of hsmactor-sign, and where its PIN comes from.
//
// Flags take the form --name=value. A PIN is never a flag: it comes from an
// environment variable (--pin-env, default HSMACTOR_PIN) or a file
// (--pin-file), and errors about flags name the flag, never its value.
//
// Usage:
//   Result<SignOptions> options = parse_sign_options({"--token=signer", "--ordered"});
//   if (!options) { std::cerr << options.error().detail() << "\n" << sign_usage(); }
//   Result<Pin> pin = read_pin(*options);
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "pkcs11/error.hpp"
#include "pkcs11/pin.hpp"

namespace hsmactor::sign {

/// SoftHSM2's module on Debian (package softhsm2).
inline constexpr const char* kDefaultModule = "/usr/lib/softhsm/libsofthsm2.so";
/// The environment variable the PIN is read from unless told otherwise.
inline constexpr const char* kDefaultPinEnv = "HSMACTOR_PIN";

/// Everything one run needs to know.
struct SignOptions {
  std::string module_path = kDefaultModule;
  /// Exactly one of token_label and uri is set.
  std::string token_label;
  std::string uri;
  /// Exactly one of these says where the PIN is.
  std::string pin_env = kDefaultPinEnv;
  std::string pin_file;
  /// Empty means stdin / stdout.
  std::string input_path;
  std::string output_path;
  std::size_t max_in_flight = 64;
  /// Consecutive records for one key signed as one batch (sign_many), at most.
  std::size_t batch = 16;
  std::size_t max_sessions = 4;
  std::chrono::milliseconds deadline{30000};
  bool ordered = false;
  bool help = false;
};

/// Returns the options `arguments` (without the program name) ask for, or an
/// invalid_argument Error whose detail says which flag is wrong.
Result<SignOptions> parse_sign_options(const std::vector<std::string>& arguments);

/// Returns the user PIN from the file or environment variable `options` names.
/// An unset variable, an unreadable or empty file are errors; a variable set
/// to "" means a token without login. The error never contains the PIN.
Result<Pin> read_pin(const SignOptions& options);

/// Returns the help text.
std::string sign_usage();

}  // namespace hsmactor::sign
