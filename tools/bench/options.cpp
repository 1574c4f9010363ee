#include "tools/bench/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <string_view>
#include <utility>

#include <CLI/CLI.hpp>

namespace hsmactor::bench {
namespace {

Error bad(const std::string& detail) {
  return Error::make(Condition::invalid_argument, detail, "parse_options");
}

std::vector<std::string> split(std::string_view list) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin <= list.size()) {
    std::size_t comma = list.find(',', begin);
    if (comma == std::string_view::npos) comma = list.size();
    if (comma > begin) parts.emplace_back(list.substr(begin, comma - begin));
    begin = comma + 1;
  }
  return parts;
}

Result<long> parse_positive(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value <= 0) {
    return bad(flag + " wants a positive integer, not \"" + text + "\"");
  }
  return value;
}

Result<double> parse_seconds(const std::string& flag, const std::string& text, bool zero_ok) {
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  bool in_range = zero_ok ? value >= 0 : value > 0;
  if (text.empty() || *end != '\0' || errno != 0 || !in_range || value > 3600) {
    return bad(flag + " wants seconds (" + (zero_ok ? ">= 0" : "> 0") + ", at most 3600), not \"" +
               text + "\"");
  }
  return value;
}

template <class T, class Parse>
Result<std::vector<T>> parse_list(const std::string& flag, const std::string& text, Parse parse,
                                  const std::vector<T>& all) {
  if (text == "all") return all;
  std::vector<T> items;
  for (const std::string& name : split(text)) {
    auto item = parse(name);
    if (!item) return bad(flag + ": unknown name \"" + name + "\"");
    bool seen = false;
    for (const T& existing : items) seen = seen || existing == *item;
    if (!seen) items.push_back(*item);
  }
  if (items.empty()) return bad(flag + " wants at least one name");
  return items;
}

/// Returns what CLI11 refused, in the words the hand-written parser used
/// ("--csv needs a value"); anything else as CLI11 says it.
std::string cli11_reason(const CLI::ParseError& error) {
  std::string what = error.what();
  std::size_t colon = what.find(':');
  // "--csv: 1 required TEXT missing", or given_value's "--csv: needs a value".
  bool missing = what.find(" required ") != std::string::npos ||
                 dynamic_cast<const CLI::ValidationError*>(&error) != nullptr;
  if (missing && colon != std::string::npos) {
    std::string flag = what.substr(0, colon);
    return flag + " needs a value (" + flag + "=...)";
  }
  constexpr std::string_view kOverride = " was given a disallowed flag override";
  if (std::size_t at = what.find(kOverride); at != std::string::npos) {
    std::string name = what.substr(0, at);  // CLI11 drops the dashes here
    if (name.rfind('-', 0) != 0) name = (name.size() == 1 ? "-" : "--") + name;
    return name + " takes no value";
  }
  return what;
}

}  // namespace

const char* to_string(Scenario scenario) {
  switch (scenario) {
    case Scenario::softhsm: return "softhsm";
    case Scenario::network_hsm: return "network-hsm";
  }
  return "?";
}

std::optional<Scenario> parse_scenario(std::string_view name) {
  for (Scenario scenario : {Scenario::softhsm, Scenario::network_hsm}) {
    if (name == to_string(scenario)) return scenario;
  }
  return std::nullopt;
}

double NetworkHsmSettings::ideal_ops_per_second() const {
  if (sign_latency.count() <= 0) return 0;
  return static_cast<double>(max_sessions) * 1e6 / static_cast<double>(sign_latency.count());
}

std::vector<StrategyKind> network_strategies() {
  std::vector<StrategyKind> chosen;
  for (StrategyKind kind : all_strategies()) {
    // One shared session or a session per request say nothing new here: the
    // first is 1 / latency, the second runs into the session cap.
    if (kind != StrategyKind::raw_mutex && kind != StrategyKind::raw_per_op) chosen.push_back(kind);
  }
  return chosen;
}

Result<Options> parse_options(const std::vector<std::string>& arguments) {
  Options options;
  CLI::App app{"hsmactor-bench"};
  // --help is an ordinary flag here: it neither throws nor ends the parse,
  // and usage() is the help text.
  app.set_help_flag();
  app.allow_extras();
  // As before CLI11: a flag given twice keeps its last value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  // A value that is empty or looks like a flag is a forgotten value: CLI11
  // takes the argument after "--csv" or "--csv=" as its value, even "--quick".
  const CLI::Validator given_value(
      [](std::string& value) -> std::string {
        return value.empty() || value.rfind("--", 0) == 0 ? "needs a value" : "";
      },
      "VALUE");

  app.add_flag("-h,--help", options.help)->disable_flag_override();
  app.add_flag("--breakdown", options.breakdown)->disable_flag_override();
  app.add_flag("--quick", options.quick)->disable_flag_override();

  // Paths and names are taken as given; everything else is checked below,
  // by this tool's rules rather than CLI11's (which reads "010" as octal).
  std::map<std::string, std::string> raw;
  for (const char* flag : {"--ops", "--strategies", "--concurrency", "--seconds", "--warmup",
                           "--repeat", "--max-sessions", "--window", "--actor-window",
                           "--memory-sessions", "--scheduler", "--scheduler-threads",
                           "--scenario", "--network-latency-us", "--network-max-sessions",
                           "--asio-threads", "--cq-threads", "--batch"}) {
    app.add_option(flag, raw[flag])->check(given_value);
  }
  app.add_option("--csv", options.csv_path)->check(given_value);
  app.add_option("--plot", options.plot_path)->check(given_value);
  app.add_option("--module", options.module_path)->check(given_value);
  app.add_option("--engine", options.engine_path)->check(given_value);
  app.add_option("--token-dir", options.token_dir)->check(given_value);
  app.add_option("--token-label", options.token_label)->check(given_value);

  try {
    // CLI11 wants the arguments last first.
    app.parse(std::vector<std::string>(arguments.rbegin(), arguments.rend()));
  } catch (const CLI::ParseError& error) {
    return bad(cli11_reason(error));
  }
  if (std::vector<std::string> extra = app.remaining(); !extra.empty()) {
    const std::string& first = extra.front();
    if (first.rfind("-", 0) != 0) return bad("unexpected argument " + first);
    return bad("unknown flag " + first.substr(0, first.find('=')));
  }
  auto given = [&](const char* flag) { return app.count(flag) > 0; };

  if (given("--scenario")) {
    auto scenario = parse_scenario(raw["--scenario"]);
    if (!scenario) {
      return bad("--scenario wants softhsm or network-hsm, not \"" + raw["--scenario"] + "\"");
    }
    options.scenario = *scenario;
  }
  const bool network = options.scenario == Scenario::network_hsm;
  if (given("--network-latency-us")) {
    if (!network) return bad("--network-latency-us needs --scenario=network-hsm");
    auto micros = parse_positive("--network-latency-us", raw["--network-latency-us"]);
    if (!micros) return micros.error();
    // Ten seconds per signature is a typo, not a network.
    if (*micros > 10'000'000) return bad("--network-latency-us is capped at 10000000 (10 s)");
    options.network.sign_latency = std::chrono::microseconds(*micros);
  }
  if (given("--network-max-sessions")) {
    if (!network) return bad("--network-max-sessions needs --scenario=network-hsm");
    auto sessions = parse_positive("--network-max-sessions", raw["--network-max-sessions"]);
    if (!sessions) return sessions.error();
    if (*sessions < 2) return bad("--network-max-sessions wants at least 2 (one holds the login)");
    if (*sessions > 1024) return bad("--network-max-sessions is capped at 1024");
    options.network.max_sessions = static_cast<std::size_t>(*sessions);
  }

  if (given("--ops")) {
    auto list = parse_list<Operation>("--ops", raw["--ops"], parse_operation, all_operations());
    if (!list) return list.error();
    options.operations = *list;
  }
  if (given("--strategies")) {
    auto list = parse_list<StrategyKind>("--strategies", raw["--strategies"], parse_strategy,
                                         all_strategies());
    if (!list) return list.error();
    options.strategies = *list;
  }
  if (given("--concurrency")) {
    options.concurrency.clear();
    for (const std::string& part : split(raw["--concurrency"])) {
      auto level = parse_positive("--concurrency", part);
      if (!level) return level.error();
      if (*level > 4096) return bad("--concurrency is capped at 4096 callers");
      options.concurrency.push_back(static_cast<int>(*level));
    }
    if (options.concurrency.empty()) return bad("--concurrency wants at least one level");
  }
  if (given("--seconds")) {
    auto seconds = parse_seconds("--seconds", raw["--seconds"], false);
    if (!seconds) return seconds.error();
    options.seconds = *seconds;
  }
  if (given("--warmup")) {
    auto seconds = parse_seconds("--warmup", raw["--warmup"], true);
    if (!seconds) return seconds.error();
    options.warmup = *seconds;
  }
  if (given("--repeat")) {
    auto runs = parse_positive("--repeat", raw["--repeat"]);
    if (!runs) return runs.error();
    if (*runs > 99) return bad("--repeat is capped at 99");
    options.repeat = static_cast<int>(*runs);
  }
  const std::pair<const char*, std::size_t*> counts[] = {
      {"--max-sessions", &options.max_sessions},
      {"--window", &options.window},
      {"--actor-window", &options.actor_window},
      {"--memory-sessions", &options.memory_sessions},
      {"--scheduler-threads", &options.scheduler_threads},
      {"--asio-threads", &options.asio_threads},
      {"--cq-threads", &options.cq_threads},
      {"--batch", &options.batch_size},
  };
  for (const auto& [flag, field] : counts) {
    if (!given(flag)) continue;
    const std::string& value = raw[flag];
    // Only the memory probe can be switched off with 0.
    bool off = value == "0" && std::string_view(flag) == "--memory-sessions";
    auto number = off ? Result<long>(0L) : parse_positive(flag, value);
    if (!number) return number.error();
    *field = static_cast<std::size_t>(*number);
  }
  if (given("--scheduler")) {
    const std::string& policy = raw["--scheduler"];
    if (policy != "stealing" && policy != "sharing") {
      return bad("--scheduler wants stealing or sharing, not \"" + policy + "\"");
    }
    options.scheduler_policy = policy;
  }
  if (options.asio_threads > 16) return bad("--asio-threads is capped at 16");
  if (options.cq_threads > 16) return bad("--cq-threads is capped at 16");
  // Token::kMaxBatchItems; options stay free of the library, so it is spelt out.
  if (options.batch_size > 1024) return bad("--batch is capped at 1024 items (kMaxBatchItems)");
  if (network) {
    // The scenario measures signing against a capped, slow token: ECDSA, from
    // a quarter of the cap to eight times it.
    if (given("--memory-sessions") && options.memory_sessions > 0) {
      return bad("--memory-sessions needs the default scenario (the network token's session "
                 "cap would refuse the probe's sessions)");
    }
    options.memory_sessions = 0;
    if (!given("--ops")) options.operations = {Operation::ecdsa};
    if (!given("--concurrency")) options.concurrency = {16, 64, 256, 512};
    if (!given("--strategies")) options.strategies = network_strategies();
  }
  if (options.quick) {
    // A short run for demos: every operation and strategy, fewer levels.
    if (!given("--seconds")) options.seconds = 0.25;
    if (!given("--warmup")) options.warmup = 0.1;
    if (!given("--concurrency") && !network) options.concurrency = {1, 2, 16};
    if (!given("--memory-sessions") && !network) options.memory_sessions = 16;
  }
  return options;
}

std::string usage() {
  return R"(hsmactor-bench: raw PKCS#11, hsmactor and OpenSSL's PKCS#11 engine side by side.

Usage: hsmactor-bench [flags]

  --scenario=NAME       softhsm (default): SoftHSM2 in the process, as fast as it
                        goes; network-hsm: SoftHSM2 behind hsmactor's fault module,
                        every C_Sign +2 ms and at most 64 sessions, like a network
                        HSM (ratios are then to the ideal, sessions / latency)
  --network-latency-us=N  network-hsm: added to every C_Sign (default 2000)
  --network-max-sessions=N  network-hsm: the token's session cap (default 64)
  --ops=LIST            ecdsa,rsa,hmac,random,digest or all (default all;
                        network-hsm: ecdsa)
  --concurrency=LIST    caller counts (default 1,2,4,16,64,256;
                        network-hsm: 16,64,256,512)
  --strategies=LIST     raw-thread,raw-mutex,raw-per-op,hsm-future,hsm-callback,
                        hsm-actor,hsm-asio,hsm-cq,hsm-batch,openssl-engine or all
                        (default all; network-hsm: all but raw-mutex and raw-per-op)
  --seconds=N           measured seconds per cell (default 2)
  --warmup=S            unmeasured seconds before each cell (default 0.5)
  --repeat=N            runs per cell, interleaved across strategies so a busy
                        moment hits all of them; the median is reported (default 1)
  --max-sessions=N      sessions of hsmactor's pool (default cores x 2; network-hsm:
                        the cap less the login's session; always capped by the token)
  --window=N            requests in flight per hsm-callback caller (default 4)
  --actor-window=N      requests in flight per hsm-actor caller (default 1)
  --asio-threads=N      io_context threads of hsm-asio, whose callers are requests
                        kept in flight on them (default 1)
  --cq-threads=N        loop threads of hsm-cq, each draining a CompletionQueue; its
                        callers are requests kept in flight, shared out (default 1)
  --batch=N             items per hsm-batch request (default 32, at most 1024); its
                        callers are threads with one batch in flight each, every
                        item counted as a request with the batch's latency
  --scheduler=POLICY    CAF scheduler of hsmactor: sharing (its default) or stealing
  --scheduler-threads=N CAF worker threads (default max(cores, 4))
  --memory-sessions=N   session actors opened to measure memory (default 64; 0 skips;
                        not in network-hsm)
  --csv=PATH            also write the cells as CSV
  --plot=PATH           also write throughput vs concurrency as SVG
  --module=PATH         PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so);
                        network-hsm: the module the fault module forwards to
  --engine=PATH         libp11 engine (default
                        /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so)
  --token-dir=DIR       SoftHSM2 token directory to create or reuse (default: a
                        throwaway one under $TMPDIR, removed at exit)
  --token-label=LABEL   token label (default hsmactor-bench)
  --breakdown           also report hsmactor's pool-side p50 (accept to reply), to
                        split its added latency into caller<->pool and pool<->session
  --quick               short demo run: 0.25 s cells, concurrency 1,2,16 (network-hsm
                        keeps its levels)
  --help                this text

The user PIN is $HSMACTOR_BENCH_PIN, or 1234. Keys ec256, rsa2048 and hmac are
generated when the token lacks them. network-hsm finds the fault module in the
binary's runfiles ($HSMACTOR_FAULT_MODULE overrides) and runs the strategies
one group after another (raw, hsmactor, engine), since each group needs the
token's sessions to itself; see tools/bench/NETWORK_HSM.md.
)";
}

}  // namespace hsmactor::bench
