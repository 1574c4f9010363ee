// hsmactor-bench: raw PKCS#11, hsmactor and OpenSSL's PKCS#11 engine side by
// side on one token with the same keys. See usage() in options.cpp.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "tools/bench/machine.hpp"
#include "tools/bench/memory.hpp"
#include "tools/bench/options.hpp"
#include "tools/bench/report.hpp"
#include "tools/bench/strategies_raw.hpp"
#include "tools/bench/strategy_engine.hpp"
#include "tools/bench/strategy_hsmactor.hpp"
#include "tools/bench/token_setup.hpp"

namespace hsmactor::bench {
namespace {

/// Returns `path` resolved against the directory `bazel run` was started from,
/// so that --csv=out.csv lands there rather than in the runfiles tree.
std::string output_path(const std::string& path) {
  const char* origin = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path.front() == '/' || origin == nullptr || *origin == '\0') return path;
  return std::string(origin) + "/" + path;
}

bool write_file(const std::string& requested, const std::string& text) {
  std::string path = output_path(requested);
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) {
    std::cerr << "cannot write " << path << "\n";
    return false;
  }
  std::cerr << "wrote " << path << "\n";
  return true;
}

/// Returns the pool size to use: asked for, or twice the cores; never above
/// what the token allows besides the session holding the login.
std::size_t pool_size(const Options& options, const BenchToken& token) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::size_t size = options.max_sessions > 0 ? options.max_sessions : 2 * cores;
  if (auto limit = token.max_sessions(); limit && *limit > 1) {
    size = std::min<std::size_t>(size, *limit - 1);
  }
  return size;
}

/// A strategy slot: the strategy, or why there is none.
struct Contender {
  StrategyKind kind;
  std::unique_ptr<Strategy> strategy;
  std::string unavailable;
};

int run(const Options& options) {
  const char* pin_env = std::getenv("HSMACTOR_BENCH_PIN");
  TokenConfig config;
  config.module_path = options.module_path;
  config.token_dir = output_path(options.token_dir);
  config.label = options.token_label;
  config.user_pin = Pin(pin_env && *pin_env ? pin_env : "1234");

  std::cerr << "preparing token \"" << config.label << "\" (keys ec256, rsa2048, hmac)...\n";
  auto prepared = BenchToken::prepare(config);
  if (!prepared) {
    std::cerr << "token set-up failed: " << prepared.error().message() << "\n";
    return 1;
  }
  BenchToken& token = **prepared;

  bool wants_hsmactor = std::any_of(options.strategies.begin(), options.strategies.end(),
                                    [](StrategyKind kind) { return is_hsmactor(kind); });
  HsmactorSettings settings;
  settings.max_sessions = pool_size(options, token);
  settings.callback_window = options.window;
  settings.actor_window = options.actor_window;
  settings.scheduler_threads = options.scheduler_threads;
  settings.scheduler_policy = options.scheduler_policy;
  settings.breakdown = options.breakdown;
  std::unique_ptr<HsmactorBench> hsm;
  std::string hsm_unavailable;
  if (wants_hsmactor || options.memory_sessions > 0) {
    auto opened = HsmactorBench::open(token, settings);
    if (opened) {
      hsm = std::move(*opened);
    } else {
      hsm_unavailable = "hsmactor open_token failed: " + opened.error().message();
    }
  }

  std::vector<Contender> contenders;
  for (StrategyKind kind : options.strategies) {
    Contender contender{kind, nullptr, ""};
    if (is_hsmactor(kind)) {
      if (hsm) contender.strategy = hsm->make_strategy(kind);
      else contender.unavailable = hsm_unavailable;
    } else if (kind == StrategyKind::openssl_engine) {
      contender.strategy = make_engine_strategy(
          {options.engine_path, token.module_ptr()->path(), token.label(), token.pin()});
      contender.unavailable = contender.strategy->unavailable();
    } else {
      contender.strategy = make_raw_strategy(kind, token);
    }
    if (!contender.unavailable.empty()) {
      std::cerr << to_string(kind) << " unavailable: " << contender.unavailable << "\n";
    }
    contenders.push_back(std::move(contender));
  }

  // Memory first, before the cells' threads have grown the allocator's arenas,
  // so new session threads pay for theirs as they would in a fresh process.
  MemoryReport memory;
  if (options.memory_sessions > 0) {
    std::cerr << "measuring memory with " << options.memory_sessions << " sessions...\n";
    memory.raw_sessions =
        measure_raw_sessions(token.module(), token.slot(), options.memory_sessions);
    if (hsm) {
      memory.actors_with_sessions =
          hsm->measure_session_actors(options.memory_sessions, &memory.actors_only);
    } else {
      memory.actors_with_sessions.note = memory.actors_only.note = hsm_unavailable;
    }
  }

  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::cout << "hsmactor-bench: module " << token.module_ptr()->path() << ", token \""
            << token.label() << "\" in " << token.token_dir() << "\n"
            << "  " << cores << " cores; " << options.seconds << " s per cell after "
            << options.warmup << " s warm-up"
            << (options.repeat > 1 ? ", median of " + std::to_string(options.repeat) + " runs" : "")
            << "; hsmactor pool of " << settings.max_sessions
            << " sessions, callback window " << settings.callback_window
            << ", actor window " << settings.actor_window << "\n"
            << "  CAF scheduler: "
            << (settings.scheduler_policy.empty() ? "sharing" : settings.scheduler_policy) << ", "
            << (settings.scheduler_threads ? std::to_string(settings.scheduler_threads)
                                           : std::string("default"))
            << " workers\n";
  for (Operation operation : options.operations) {
    std::cout << "  " << to_string(operation) << ": " << describe(operation) << "\n";
  }
  std::cout << std::endl;

  Timing timing{options.warmup, options.seconds};
  CpuSample run_start = sample_cpu();
  std::vector<CellResult> cells;
  for (Operation operation : options.operations) {
    Workload workload = make_workload(operation, token.keys());
    for (int level : options.concurrency) {
      // Repetitions go round all strategies, so a busy moment on the machine
      // lands on several strategies rather than on all runs of one.
      std::vector<std::vector<CellResult>> runs(contenders.size());
      for (int repetition = 0; repetition < options.repeat; ++repetition) {
        for (std::size_t index = 0; index < contenders.size(); ++index) {
          Contender& contender = contenders[index];
          if (!contender.unavailable.empty() ||
              !contender.strategy->unsupported(operation).empty()) {
            continue;
          }
          CpuSample before = sample_cpu();
          CellResult cell = contender.strategy->run(workload, level, timing);
          cell.others_cpu = others_share(before, sample_cpu());
          std::cerr << "  " << to_string(operation) << " x" << level << " "
                    << to_string(contender.kind) << ": " << static_cast<long>(cell.ops_per_second())
                    << " ops/s" << (cell.errors ? ", " + std::to_string(cell.errors) + " errors" : "")
                    << "\n";
          runs[index].push_back(std::move(cell));
        }
      }
      for (std::size_t index = 0; index < contenders.size(); ++index) {
        Contender& contender = contenders[index];
        if (!contender.unavailable.empty()) {
          cells.push_back(unmeasured_cell(contender.kind, operation, level,
                                          CellStatus::unavailable, contender.unavailable));
        } else if (auto why = contender.strategy->unsupported(operation); !why.empty()) {
          cells.push_back(
              unmeasured_cell(contender.kind, operation, level, CellStatus::unsupported, why));
        } else {
          cells.push_back(median_run(std::move(runs[index])));
        }
      }
    }
  }

  double others = others_share(run_start, sample_cpu());
  std::cout << format_table(cells) << "\n";
  if (others >= 0) {
    std::cout << "Other processes used " << static_cast<int>(others * 100 + 0.5)
              << "% of the machine's CPU during the cells (column \"others\": per cell).\n\n";
  }
  if (std::string stalls = format_stalls(cells); !stalls.empty()) std::cout << stalls << "\n";
  if (std::string breakdown = format_breakdown(cells); !breakdown.empty()) {
    std::cout << breakdown << "\n";
  }
  if (options.memory_sessions > 0) std::cout << format_memory(memory) << "\n";
  std::cout << format_targets(check_targets(cells, memory));
  bool written = true;
  if (!options.csv_path.empty()) written = write_file(options.csv_path, format_csv(cells)) && written;
  if (!options.plot_path.empty()) {
    written = write_file(options.plot_path, render_svg(cells)) && written;
  }

  // Strategies first, then hsmactor's pool and actor system, then the token
  // (which finalises the module).
  contenders.clear();
  hsm.reset();
  return written ? 0 : 1;
}

}  // namespace
}  // namespace hsmactor::bench

int main(int argc, char** argv) {
  using namespace hsmactor::bench;
  std::vector<std::string> arguments(argv + 1, argv + argc);
  auto options = parse_options(arguments);
  if (!options) {
    std::cerr << options.error().detail() << "\n\n" << usage();
    return 2;
  }
  if (options->help) {
    std::cout << usage();
    return 0;
  }
  return run(*options);
}
