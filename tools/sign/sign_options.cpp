#include "tools/sign/sign_options.hpp"

#include <string.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

namespace hsmactor::sign {
namespace {

constexpr std::size_t kMaxInFlight = 1000000;
constexpr std::size_t kMaxSessions = 4096;
// Token::kMaxBatchItems: a larger batch would be refused as a whole.
constexpr std::size_t kMaxBatch = 1024;
constexpr std::size_t kMaxDeadlineMs = 24UL * 3600 * 1000;

Error usage_error(std::string detail) {
  return Error::make(Condition::invalid_argument, std::move(detail), "parse flags");
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

/// Parses a decimal count in [1, most]; `flag` names it in the error.
Result<std::size_t> parse_count(const std::string& flag, const std::string& text,
                                std::size_t most) {
  bool digits = !text.empty() && text.size() <= 12 &&
                std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
  std::size_t value = digits ? std::stoull(text) : 0;
  if (!digits || value < 1 || value > most) {
    return usage_error(flag + " takes a whole number from 1 to " + std::to_string(most));
  }
  return value;
}

}  // namespace

Result<SignOptions> parse_sign_options(const std::vector<std::string>& arguments) {
  SignOptions options;
  std::set<std::string> seen;
  bool pin_env_given = false;
  for (std::size_t index = 0; index < arguments.size(); ++index) {
    const std::string& argument = arguments[index];
    if (argument == "-h" || argument == "--help") {
      options.help = true;
      continue;
    }
    // The value is never echoed: a mistyped flag may carry a PIN.
    if (argument.rfind("--", 0) != 0) {
      return usage_error("unexpected argument #" + std::to_string(index + 1) +
                         " (flags look like --name=value)");
    }
    auto equals = argument.find('=');
    std::string flag = argument.substr(0, equals);
    bool has_value = equals != std::string::npos;
    std::string value = has_value ? argument.substr(equals + 1) : std::string();
    if (!seen.insert(flag).second) return usage_error(flag + " is given twice");

    if (flag == "--ordered") {
      if (has_value) return usage_error("--ordered takes no value");
      options.ordered = true;
      continue;
    }
    if (flag != "--pin-env" && flag != "--pin-file" &&
        lower(flag).find("pin") != std::string::npos) {
      return usage_error("a PIN never goes on the command line: put it in an environment "
                         "variable (--pin-env=VAR, default HSMACTOR_PIN) or a file "
                         "(--pin-file=PATH)");
    }
    if (!has_value || value.empty()) return usage_error(flag + " needs a value: " + flag + "=...");

    if (flag == "--module") {
      options.module_path = value;
    } else if (flag == "--token") {
      options.token_label = value;
    } else if (flag == "--uri") {
      std::string uri = lower(value);
      if (uri.rfind("pkcs11:", 0) != 0) return usage_error("--uri must start with pkcs11:");
      if (uri.find("pin-value=") != std::string::npos ||
          uri.find("pin-source=") != std::string::npos) {
        return usage_error("--uri must not carry pin-value or pin-source: a PIN never goes "
                           "on the command line (use --pin-env or --pin-file)");
      }
      options.uri = value;
    } else if (flag == "--pin-env") {
      options.pin_env = value;
      pin_env_given = true;
    } else if (flag == "--pin-file") {
      options.pin_file = value;
    } else if (flag == "--input") {
      options.input_path = value;
    } else if (flag == "--output") {
      options.output_path = value;
    } else if (flag == "--max-in-flight") {
      auto count = parse_count(flag, value, kMaxInFlight);
      if (!count) return count.error();
      options.max_in_flight = *count;
    } else if (flag == "--batch") {
      auto count = parse_count(flag, value, kMaxBatch);
      if (!count) return count.error();
      options.batch = *count;
    } else if (flag == "--max-sessions") {
      auto count = parse_count(flag, value, kMaxSessions);
      if (!count) return count.error();
      options.max_sessions = *count;
    } else if (flag == "--deadline-ms") {
      auto count = parse_count(flag, value, kMaxDeadlineMs);
      if (!count) return count.error();
      options.deadline = std::chrono::milliseconds(*count);
    } else {
      return usage_error("unknown flag " + flag + " (see --help)");
    }
  }
  if (options.help) return options;
  if (options.token_label.empty() == options.uri.empty()) {
    return usage_error("name the token with exactly one of --token=LABEL and --uri=pkcs11:...");
  }
  if (pin_env_given && !options.pin_file.empty()) {
    return usage_error("give at most one of --pin-env and --pin-file");
  }
  if (!options.pin_file.empty()) options.pin_env.clear();
  return options;
}

Result<Pin> read_pin(const SignOptions& options) {
  if (!options.pin_file.empty()) {
    std::ifstream file(options.pin_file, std::ios::binary);
    if (!file) {
      return Error::make(Condition::invalid_argument,
                         "cannot read the PIN file " + options.pin_file, "read PIN");
    }
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // One trailing line end is how editors and `echo` save a file, not PIN bytes.
    std::size_t length = text.size();
    if (length > 0 && text[length - 1] == '\n') --length;
    if (length > 0 && text[length - 1] == '\r') --length;
    Pin pin(std::string_view(text.data(), length));
    explicit_bzero(text.data(), text.size());
    if (pin.empty()) {
      return Error::make(Condition::invalid_argument, "the PIN file " + options.pin_file +
                                                          " is empty", "read PIN");
    }
    return pin;
  }
  const char* value = std::getenv(options.pin_env.c_str());
  if (value == nullptr) {
    return Error::make(Condition::invalid_argument,
                       "environment variable " + options.pin_env +
                           " is not set (put the user PIN there, or use --pin-file=PATH; "
                           "set it to \"\" for a token without login)",
                       "read PIN");
  }
  return Pin(value);
}

std::string sign_usage() {
  return R"(hsmactor-sign: sign JSON-lines requests with keys on a PKCS#11 token.

Usage:
  HSMACTOR_PIN=... hsmactor-sign --token=LABEL [flags] < requests.jsonl > results.jsonl

Each input line is one record:
  {"id": "1", "key": "LABEL", "mechanism": "ecdsa", "data": "<base64>"}
  mechanism: ecdsa | ecdsa-sha256 | rsa-pkcs-sha256 | rsa-pss-sha256 | hmac-sha256
  payload (exactly one): data (base64), data_hex, digest (base64), digest_hex
  ECDSA signs SHA-256(data), hashed on the host with OpenSSL, or a given digest.
Each output line answers one record:
  {"id": "1", "signature": "<base64>"}
  {"id": "2", "error": {"code": "CKR_...", "condition": "...",
                        "category": "retry|reauthenticate|fix_input|give_up", "message": "..."}}
  (a record without an id is answered with "line": N instead; "code" only when
  a PKCS#11 call failed)

Flags:
  --token=LABEL          the token, by label
  --uri=pkcs11:...       or by RFC 7512 URI (token=, serial=, module-path=; no PIN)
  --module=PATH          PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so)
  --pin-env=VAR          read the user PIN from $VAR (default HSMACTOR_PIN)
  --pin-file=PATH        or from a file (one trailing newline is ignored)
  --input=FILE           read records from FILE instead of stdin
  --output=FILE          write answers to FILE instead of stdout
  --ordered              answer in input order (default: completion order)
  --max-in-flight=N      records read but not yet answered, at most (default 64)
  --batch=N              sign up to N consecutive records for one key as one
                         batch, on one session with one hand-off (default 16;
                         1 signs each record on its own); a batch never waits
                         for input that has not arrived
  --max-sessions=N       token sessions to sign on (default 4)
  --deadline-ms=N        a record not started within N ms fails with
                         deadline_exceeded (default 30000)
  --help                 this text

Progress goes to stderr when stderr is a terminal.
Exit status: 0 every record signed, 1 some record failed, 2 usage or set-up error.
)";
}

}  // namespace hsmactor::sign
