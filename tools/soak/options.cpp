#include "tools/soak/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>

namespace hsmactor::soak {
namespace {

Error bad(const std::string& detail) {
  return Error::make(Condition::invalid_argument, detail, "parse_options");
}

Result<std::uint64_t> parse_count(const std::string& flag, const std::string& text,
                                  std::uint64_t low, std::uint64_t high) {
  if (text.empty() || text[0] == '-') return bad(flag + " needs a number, got \"" + text + "\"");
  errno = 0;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') {
    return bad(flag + " needs a number, got \"" + text + "\"");
  }
  if (value < low || value > high) {
    return bad(flag + " must be " + std::to_string(low) + " to " + std::to_string(high));
  }
  return std::uint64_t{value};
}

Result<double> parse_rate(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || errno != 0 || end == nullptr || *end != '\0' || !(value >= 0.0) ||
      value > 0.5) {
    return bad(flag + " must be a fraction from 0 to 0.5, got \"" + text + "\"");
  }
  return value;
}

}  // namespace

std::string usage() {
  return "usage: hsmactor-soak [flags]\n"
         "  --requests N       requests in all (default 100000)\n"
         "  --callers N        caller threads (default 16)\n"
         "  --window N         outstanding requests per caller (default 8)\n"
         "  --stale-rate F     fraction of requests meeting CKR_SESSION_HANDLE_INVALID "
         "(default 0.01)\n"
         "  --pulls N          token pulls and reinsertions (default 1)\n"
         "  --kills N          session actors killed (default 2)\n"
         "  --seed N           (default 1)\n"
         "  --module PATH      the fault module (default: from the runfiles)\n"
         "  --token-dir DIR    create the token there and keep it (default: throwaway)\n"
         "  --verify-every N   check every Nth answer with OpenSSL (default 1: all)\n"
         "  --sessions N       the pool's max_sessions (default 4)\n"
         "  --hang-limit S     seconds after the end before an open request hangs "
         "(default 30)\n"
         "  --tolerate-stream-key-bug  count CKR_OBJECT_HANDLE_INVALID from a stream's\n"
         "                     C_SignInit in a pull window apart (a known library bug)\n"
         "Exits 0 when every request got exactly one right answer or an allowed error,\n"
         "1 on any duplicate, hang, tracker violation or wrong answer, 2 on bad usage.\n";
}

Result<SoakOptions> parse_options(int argc, const char* const* argv) {
  SoakOptions options;
  using Setter = std::function<Result<void>(const std::string&, const std::string&)>;
  auto count = [](std::size_t& field, std::uint64_t low, std::uint64_t high) -> Setter {
    return [&field, low, high](const std::string& flag, const std::string& text) -> Result<void> {
      auto value = parse_count(flag, text, low, high);
      if (!value) return value.error();
      field = static_cast<std::size_t>(*value);
      return success();
    };
  };
  const std::map<std::string, Setter> setters = {
      {"--requests", count(options.requests, 1, 100000000)},
      {"--callers", count(options.callers, 1, 1024)},
      {"--window", count(options.window, 1, 1024)},
      {"--pulls", count(options.pulls, 0, 100)},
      {"--kills", count(options.kills, 0, 10000)},
      {"--verify-every", count(options.verify_every, 1, 1000000)},
      {"--sessions", count(options.sessions, 1, 1024)},
      {"--stale-rate",
       [&](const std::string& flag, const std::string& text) -> Result<void> {
         auto value = parse_rate(flag, text);
         if (!value) return value.error();
         options.stale_rate = *value;
         return success();
       }},
      {"--seed",
       [&](const std::string& flag, const std::string& text) -> Result<void> {
         auto value = parse_count(flag, text, 0, UINT64_MAX);
         if (!value) return value.error();
         options.seed = *value;
         return success();
       }},
      {"--hang-limit",
       [&](const std::string& flag, const std::string& text) -> Result<void> {
         auto value = parse_count(flag, text, 1, 3600);
         if (!value) return value.error();
         options.hang_limit = std::chrono::seconds(*value);
         return success();
       }},
      {"--module",
       [&](const std::string& flag, const std::string& text) -> Result<void> {
         if (text.empty()) return bad(flag + " needs a path");
         options.module = text;
         return success();
       }},
      {"--token-dir",
       [&](const std::string& flag, const std::string& text) -> Result<void> {
         if (text.empty()) return bad(flag + " needs a directory");
         options.token_dir = text;
         return success();
       }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      continue;
    }
    if (arg == "--tolerate-stream-key-bug") {
      options.tolerate_stream_key_bug = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto setter = setters.find(arg);
    if (setter == setters.end()) return bad("unknown flag " + arg);
    if (!has_value) {
      if (i + 1 >= argc) return bad(arg + " needs a value");
      value = argv[++i];
    }
    if (auto set = setter->second(arg, value); !set) return set.error();
  }
  if (options.window * options.callers > (std::size_t{1} << 20)) {
    return bad("--callers x --window must be at most 1048576");
  }
  return options;
}

}  // namespace hsmactor::soak
