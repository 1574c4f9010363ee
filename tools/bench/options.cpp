#include "tools/bench/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <set>
#include <string_view>

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

}  // namespace

Result<Options> parse_options(const std::vector<std::string>& arguments) {
  Options options;
  std::set<std::string> given;
  for (const std::string& argument : arguments) {
    std::size_t equals = argument.find('=');
    std::string flag = argument.substr(0, equals);
    std::string value = equals == std::string::npos ? "" : argument.substr(equals + 1);
    bool has_value = equals != std::string::npos;
    auto need_value = [&]() -> Result<void> {
      if (!has_value || value.empty()) return bad(flag + " needs a value (" + flag + "=...)");
      return success();
    };
    if (flag == "--help" || flag == "-h") {
      options.help = true;
      continue;
    }
    if (flag == "--breakdown") {
      if (has_value) return bad("--breakdown takes no value");
      options.breakdown = true;
      continue;
    }
    if (flag == "--quick") {
      if (has_value) return bad("--quick takes no value");
      options.quick = true;
      continue;
    }
    if (auto checked = need_value(); !checked) return checked.error();
    given.insert(flag);
    if (flag == "--ops") {
      auto list = parse_list<Operation>(flag, value, parse_operation, all_operations());
      if (!list) return list.error();
      options.operations = *list;
    } else if (flag == "--strategies") {
      auto list = parse_list<StrategyKind>(flag, value, parse_strategy, all_strategies());
      if (!list) return list.error();
      options.strategies = *list;
    } else if (flag == "--concurrency") {
      options.concurrency.clear();
      for (const std::string& part : split(value)) {
        auto level = parse_positive(flag, part);
        if (!level) return level.error();
        if (*level > 4096) return bad("--concurrency is capped at 4096 callers");
        options.concurrency.push_back(static_cast<int>(*level));
      }
      if (options.concurrency.empty()) return bad("--concurrency wants at least one level");
    } else if (flag == "--seconds") {
      auto seconds = parse_seconds(flag, value, false);
      if (!seconds) return seconds.error();
      options.seconds = *seconds;
    } else if (flag == "--warmup") {
      auto seconds = parse_seconds(flag, value, true);
      if (!seconds) return seconds.error();
      options.warmup = *seconds;
    } else if (flag == "--repeat") {
      auto runs = parse_positive(flag, value);
      if (!runs) return runs.error();
      if (*runs > 99) return bad("--repeat is capped at 99");
      options.repeat = static_cast<int>(*runs);
    } else if (flag == "--max-sessions" || flag == "--window" || flag == "--actor-window" ||
               flag == "--memory-sessions") {
      auto number = value == "0" && flag == "--memory-sessions" ? Result<long>(0L)
                                                                 : parse_positive(flag, value);
      if (!number) return number.error();
      std::size_t count = static_cast<std::size_t>(*number);
      if (flag == "--max-sessions") options.max_sessions = count;
      if (flag == "--window") options.window = count;
      if (flag == "--actor-window") options.actor_window = count;
      if (flag == "--memory-sessions") options.memory_sessions = count;
    } else if (flag == "--scheduler") {
      if (value != "stealing" && value != "sharing") {
        return bad("--scheduler wants stealing or sharing, not \"" + value + "\"");
      }
      options.scheduler_policy = value;
    } else if (flag == "--scheduler-threads") {
      auto threads = parse_positive(flag, value);
      if (!threads) return threads.error();
      options.scheduler_threads = static_cast<std::size_t>(*threads);
    } else if (flag == "--csv") {
      options.csv_path = value;
    } else if (flag == "--plot") {
      options.plot_path = value;
    } else if (flag == "--module") {
      options.module_path = value;
    } else if (flag == "--engine") {
      options.engine_path = value;
    } else if (flag == "--token-dir") {
      options.token_dir = value;
    } else if (flag == "--token-label") {
      options.token_label = value;
    } else {
      return bad("unknown flag " + flag);
    }
  }
  if (options.quick) {
    // A short run for demos: every operation and strategy, fewer levels.
    if (!given.count("--seconds")) options.seconds = 0.25;
    if (!given.count("--warmup")) options.warmup = 0.1;
    if (!given.count("--concurrency")) options.concurrency = {1, 2, 16};
    if (!given.count("--memory-sessions")) options.memory_sessions = 16;
  }
  return options;
}

std::string usage() {
  return R"(hsmactor-bench: raw PKCS#11, hsmactor and OpenSSL's PKCS#11 engine side by side.

Usage: hsmactor-bench [flags]

  --ops=LIST            ecdsa,rsa,hmac,random,digest or all (default all)
  --concurrency=LIST    caller counts (default 1,2,4,16,64,256)
  --strategies=LIST     raw-thread,raw-mutex,raw-per-op,hsm-future,hsm-callback,
                        hsm-actor,openssl-engine or all (default all)
  --seconds=N           measured seconds per cell (default 2)
  --warmup=S            unmeasured seconds before each cell (default 0.5)
  --repeat=N            runs per cell, interleaved across strategies so a busy
                        moment hits all of them; the median is reported (default 1)
  --max-sessions=N      sessions of hsmactor's pool (default cores x 2,
                        capped by the token)
  --window=N            requests in flight per hsm-callback caller (default 4)
  --actor-window=N      requests in flight per hsm-actor caller (default 1)
  --scheduler=POLICY    CAF scheduler of hsmactor: sharing (its default) or stealing
  --scheduler-threads=N CAF worker threads (default max(cores, 4))
  --memory-sessions=N   session actors opened to measure memory (default 64; 0 skips)
  --csv=PATH            also write the cells as CSV
  --plot=PATH           also write throughput vs concurrency as SVG
  --module=PATH         PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so)
  --engine=PATH         libp11 engine (default
                        /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so)
  --token-dir=DIR       SoftHSM2 token directory to create or reuse (default: a
                        throwaway one under $TMPDIR, removed at exit)
  --token-label=LABEL   token label (default hsmactor-bench)
  --breakdown           also report hsmactor's pool-side p50 (accept to reply), to
                        split its added latency into caller<->pool and pool<->session
  --quick               short demo run: 0.25 s cells, concurrency 1,2,16
  --help                this text

The user PIN is $HSMACTOR_BENCH_PIN, or 1234. Keys ec256, rsa2048 and hmac are
generated when the token lacks them.
)";
}

}  // namespace hsmactor::bench
