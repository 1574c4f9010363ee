#include "tools/soak/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <vector>

#include <CLI/CLI.hpp>

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
         "  --streams P        percent of requests that are multi-part streams "
         "(default 4)\n"
         "  --hang-limit S     seconds after the end before an open request hangs "
         "(default 30)\n"
         "  --tolerate-stream-key-bug  count CKR_OBJECT_HANDLE_INVALID from a stream's\n"
         "                     C_SignInit in a pull window apart (a known library bug)\n"
         "Exits 0 when every request got exactly one right answer or an allowed error,\n"
         "1 on any duplicate, hang, tracker violation or wrong answer, 2 on bad usage.\n";
}

Result<SoakOptions> parse_options(int argc, const char* const* argv) {
  SoakOptions options;
  CLI::App app{"hsmactor-soak"};
  // usage() is the help text; --help only sets a field.
  app.set_help_flag();
  app.allow_extras();
  // A flag given twice keeps its last value, as before CLI11.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("-h,--help", options.help)->disable_flag_override();
  app.add_flag("--tolerate-stream-key-bug", options.tolerate_stream_key_bug)
      ->disable_flag_override();

  // Numbers are read as text and checked here: CLI11 would take "010" as octal.
  struct Count {
    const char* flag;
    std::uint64_t low;
    std::uint64_t high;
    std::size_t* field;
  };
  const Count counts[] = {
      {"--requests", 1, 100000000, &options.requests},
      {"--callers", 1, 1024, &options.callers},
      {"--window", 1, 1024, &options.window},
      {"--pulls", 0, 100, &options.pulls},
      {"--kills", 0, 10000, &options.kills},
      {"--verify-every", 1, 1000000, &options.verify_every},
      {"--sessions", 1, 1024, &options.sessions},
      {"--streams", 0, 100, &options.stream_percent},
  };
  std::map<std::string, std::string> raw;
  for (const Count& count : counts) app.add_option(count.flag, raw[count.flag]);
  for (const char* flag : {"--stale-rate", "--seed", "--hang-limit"}) {
    app.add_option(flag, raw[flag]);
  }
  app.add_option("--module", options.module);
  app.add_option("--token-dir", options.token_dir);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    std::string what = error.what();
    // CLI11 says "--seed: 1 required TEXT missing" and, for a flag given a
    // value, "tolerate-stream-key-bug was given a disallowed flag override".
    if (what.find(" required ") != std::string::npos && what.find(':') != std::string::npos) {
      return bad(what.substr(0, what.find(':')) + " needs a value");
    }
    if (std::size_t at = what.find(" was given a disallowed flag override");
        at != std::string::npos) {
      return bad("--" + what.substr(0, at) + " takes no value");
    }
    return bad(what);
  }
  if (std::vector<std::string> extra = app.remaining(); !extra.empty()) {
    return bad("unknown flag " + extra.front().substr(0, extra.front().find('=')));
  }
  auto given = [&](const char* flag) { return app.count(flag) > 0; };

  for (const Count& count : counts) {
    if (!given(count.flag)) continue;
    auto value = parse_count(count.flag, raw[count.flag], count.low, count.high);
    if (!value) return value.error();
    *count.field = static_cast<std::size_t>(*value);
  }
  if (given("--stale-rate")) {
    auto value = parse_rate("--stale-rate", raw["--stale-rate"]);
    if (!value) return value.error();
    options.stale_rate = *value;
  }
  if (given("--seed")) {
    auto value = parse_count("--seed", raw["--seed"], 0, UINT64_MAX);
    if (!value) return value.error();
    options.seed = *value;
  }
  if (given("--hang-limit")) {
    auto value = parse_count("--hang-limit", raw["--hang-limit"], 1, 3600);
    if (!value) return value.error();
    options.hang_limit = std::chrono::seconds(*value);
  }
  if (given("--module") && options.module.empty()) return bad("--module needs a path");
  if (given("--token-dir") && options.token_dir.empty()) return bad("--token-dir needs a directory");
  if (options.window * options.callers > (std::size_t{1} << 20)) {
    return bad("--callers x --window must be at most 1048576");
  }
  return options;
}

}  // namespace hsmactor::soak
