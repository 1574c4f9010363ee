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
#include "tools/bench/network_hsm.hpp"
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

/// Returns the pool size to use: asked for, or twice the cores (in the network
/// scenario all the token's sessions but the login's); never above what the
/// token allows besides the session holding the login.
std::size_t pool_size(const Options& options, const BenchToken& token) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::size_t size = options.max_sessions > 0 ? options.max_sessions : 2 * cores;
  auto limit = token.max_sessions();
  if (options.max_sessions == 0 && options.scenario == Scenario::network_hsm && limit &&
      *limit > 1) {
    size = *limit - 1;
  }
  if (limit && *limit > 1) size = std::min<std::size_t>(size, *limit - 1);
  return size;
}

/// A strategy slot: the strategy, or why there is none.
struct Contender {
  StrategyKind kind;
  std::unique_ptr<Strategy> strategy;
  std::string unavailable;
};

/// Returns the contender for `kind`: through `hsm` (null: `hsm_unavailable`
/// says why) for hsmactor's strategies, libp11's engine, or raw PKCS#11 with
/// `session_budget` sessions (0: no cap) for the callers.
Contender make_contender(StrategyKind kind, const Options& options, BenchToken& token,
                         HsmactorBench* hsm, const std::string& hsm_unavailable,
                         std::size_t session_budget) {
  Contender contender{kind, nullptr, ""};
  if (is_hsmactor(kind)) {
    if (hsm) contender.strategy = hsm->make_strategy(kind);
    else contender.unavailable = hsm_unavailable;
  } else if (kind == StrategyKind::openssl_engine) {
    contender.strategy = make_engine_strategy(
        {options.engine_path, token.module_ptr()->path(), token.label(), token.pin()});
    contender.unavailable = contender.strategy->unavailable();
  } else {
    contender.strategy = make_raw_strategy(kind, token, session_budget);
  }
  if (!contender.unavailable.empty()) {
    std::cerr << to_string(kind) << " unavailable: " << contender.unavailable << "\n";
  }
  return contender;
}

/// Measures every operation at every level with `contenders`, and returns the
/// cells (medians of the repetitions, unmeasured ones with their reasons).
std::vector<CellResult> measure(std::vector<Contender>& contenders, const Options& options,
                                const BenchToken& token) {
  Timing timing{options.warmup, options.seconds};
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
  return cells;
}

/// Prints what every run prints first: the module, the machine, the settings.
void print_header(const Options& options, const BenchToken& token,
                  const HsmactorSettings& settings, const NetworkHsm* network) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::cout << "hsmactor-bench: module " << token.module_ptr()->path() << ", token \""
            << token.label() << "\" in " << token.token_dir() << "\n";
  if (network) {
    const NetworkHsmSettings& net = network->settings();
    std::cout << "  scenario network-hsm: the fault module forwards to " << network->target_path()
              << "; every C_Sign +" << net.sign_latency.count() << " µs, at most "
              << net.max_sessions << " sessions: ideal "
              << static_cast<long>(net.ideal_ops_per_second() + 0.5)
              << " signatures/s (sessions / latency; \"vs ideal\" divides by it)\n"
              << "  strategies run in groups (raw, hsmactor, engine), each with the token's "
                 "sessions to itself\n";
  }
  std::cout << "  " << cores << " cores; " << options.seconds << " s per cell after "
            << options.warmup << " s warm-up"
            << (options.repeat > 1 ? ", median of " + std::to_string(options.repeat) + " runs" : "")
            << "; hsmactor pool of " << settings.max_sessions
            << " sessions, callback window " << settings.callback_window
            << ", actor window " << settings.actor_window << ", " << settings.asio_threads
            << " asio thread(s), " << settings.cq_threads << " cq loop(s), batches of "
            << settings.batch_size << "\n"
            << "  CAF scheduler: "
            << (settings.scheduler_policy.empty() ? "sharing" : settings.scheduler_policy) << ", "
            << (settings.scheduler_threads ? std::to_string(settings.scheduler_threads)
                                           : std::string("default"))
            << " workers\n";
  for (Operation operation : options.operations) {
    std::cout << "  " << to_string(operation) << ": " << describe(operation) << "\n";
  }
  std::cout << std::endl;
}

/// Returns the strategies of `options` that `belongs` picks, in their order.
std::vector<StrategyKind> strategies_where(const Options& options,
                                           bool (*belongs)(StrategyKind)) {
  std::vector<StrategyKind> kinds;
  for (StrategyKind kind : options.strategies) {
    if (belongs(kind)) kinds.push_back(kind);
  }
  return kinds;
}

/// The network scenario: the raw strategies, then hsmactor's, then libp11's
/// engine, each group with the capped token's sessions to itself. hsmactor's
/// pool takes all but one session and its login the last, so the benchmark's
/// own login session is closed meanwhile; libp11 keeps its sessions until the
/// process ends (finishing its engine would finalise the module), so it goes
/// last. Returns the cells and appends what the groups used to `notes`.
std::vector<CellResult> measure_network(const Options& options, BenchToken& token,
                                        const HsmactorSettings& settings,
                                        const NetworkHsm& network,
                                        std::vector<std::unique_ptr<Strategy>>& keep_alive,
                                        std::vector<std::string>& notes) {
  std::vector<CellResult> cells;
  auto append = [&cells](std::vector<CellResult> more) {
    for (CellResult& cell : more) cells.push_back(std::move(cell));
  };
  const std::size_t cap = network.settings().max_sessions;
  const std::size_t raw_budget = cap - 1;  // one holds the benchmark's login

  auto raw_kinds = strategies_where(options, [](StrategyKind kind) {
    return !is_hsmactor(kind) && kind != StrategyKind::openssl_engine;
  });
  if (!raw_kinds.empty()) {
    std::vector<Contender> contenders;
    for (StrategyKind kind : raw_kinds) {
      contenders.push_back(make_contender(kind, options, token, nullptr, "", raw_budget));
    }
    append(measure(contenders, options, token));
    if (std::find(raw_kinds.begin(), raw_kinds.end(), StrategyKind::raw_thread) !=
        raw_kinds.end()) {
      notes.push_back("raw-thread: at most " + std::to_string(raw_budget) +
                      " threads, a session each (the token's " + std::to_string(cap) +
                      " less the login's); more callers run as that many");
    }
  }

  auto hsm_kinds = strategies_where(options, is_hsmactor);
  if (!hsm_kinds.empty()) {
    token.release_login();
    std::unique_ptr<HsmactorBench> hsm;
    std::string hsm_unavailable;
    auto opened = HsmactorBench::open(token, settings);
    if (opened) {
      hsm = std::move(*opened);
    } else {
      hsm_unavailable = "hsmactor open_token failed: " + opened.error().message();
    }
    std::vector<Contender> contenders;
    for (StrategyKind kind : hsm_kinds) {
      contenders.push_back(make_contender(kind, options, token, hsm.get(), hsm_unavailable, 0));
    }
    append(measure(contenders, options, token));
    if (hsm) {
      auto pool = hsm->pool_sessions();
      std::string used = pool.error.empty()
                             ? std::to_string(pool.open) + " open at the end, ceiling " +
                                   std::to_string(pool.ceiling)
                             : "metrics unavailable: " + pool.error;
      notes.push_back("hsmactor pool: asked for " + std::to_string(settings.max_sessions) +
                      " sessions (the token reports " + std::to_string(cap) +
                      "; the pool keeps one for its login): " + used + "; " +
                      std::to_string(network.open_sessions()) +
                      " sessions open through the module with its login's");
    }
    contenders.clear();
    hsm.reset();
    if (auto restored = token.restore_login(); !restored) {
      notes.push_back("the benchmark's login could not be made again: " +
                      restored.error().message());
    }
  }

  if (std::find(options.strategies.begin(), options.strategies.end(),
                StrategyKind::openssl_engine) != options.strategies.end()) {
    std::vector<Contender> contenders;
    contenders.push_back(
        make_contender(StrategyKind::openssl_engine, options, token, nullptr, "", 0));
    append(measure(contenders, options, token));
    notes.push_back("openssl-engine: " + std::to_string(network.open_sessions()) +
                    " sessions open through the module after its cells, libp11's pool and "
                    "login plus the benchmark's login session");
    // Kept until the end, like the default scenario's engine: see
    // EngineStrategy's destructor.
    for (Contender& contender : contenders) keep_alive.push_back(std::move(contender.strategy));
  }
  notes.push_back("fault module: " + std::to_string(network.violations()) +
                  " times a thread entered a session another was inside; " +
                  std::to_string(network.sign_calls()) + " C_Sign calls");
  sort_for_report(cells);
  return cells;
}

int run(const Options& options) {
  const bool network_scenario = options.scenario == Scenario::network_hsm;
  const char* pin_env = std::getenv("HSMACTOR_BENCH_PIN");
  TokenConfig config;
  config.module_path = options.module_path;
  config.token_dir = output_path(options.token_dir);
  config.label = options.token_label;
  config.user_pin = Pin(pin_env && *pin_env ? pin_env : "1234");

  // Before anything loads the module: the fault module reads its target at
  // its first call, and the cap must be in place when the token is read.
  std::unique_ptr<NetworkHsm> network;
  if (network_scenario) {
    auto installed = NetworkHsm::install(options.network, options.module_path);
    if (!installed) {
      std::cerr << installed.error().message() << "\n";
      return 1;
    }
    network = std::move(*installed);
    config.module_path = network->module_path();
  }

  std::cerr << "preparing token \"" << config.label << "\" (keys ec256, rsa2048, hmac)...\n";
  auto prepared = BenchToken::prepare(config);
  if (!prepared) {
    std::cerr << "token set-up failed: " << prepared.error().message() << "\n";
    return 1;
  }
  BenchToken& token = **prepared;

  HsmactorSettings settings;
  settings.max_sessions = pool_size(options, token);
  settings.callback_window = options.window;
  settings.actor_window = options.actor_window;
  settings.asio_threads = options.asio_threads;
  settings.cq_threads = options.cq_threads;
  settings.batch_size = options.batch_size;
  settings.scheduler_threads = options.scheduler_threads;
  settings.scheduler_policy = options.scheduler_policy;
  settings.breakdown = options.breakdown;

  std::unique_ptr<HsmactorBench> hsm;
  std::vector<Contender> contenders;
  std::vector<std::unique_ptr<Strategy>> keep_alive;
  std::vector<std::string> notes;
  MemoryReport memory;
  std::vector<CellResult> cells;
  CpuSample run_start;
  if (network_scenario) {
    print_header(options, token, settings, network.get());
    run_start = sample_cpu();
    cells = measure_network(options, token, settings, *network, keep_alive, notes);
  } else {
    bool wants_hsmactor = std::any_of(options.strategies.begin(), options.strategies.end(),
                                      [](StrategyKind kind) { return is_hsmactor(kind); });
    std::string hsm_unavailable;
    if (wants_hsmactor || options.memory_sessions > 0) {
      auto opened = HsmactorBench::open(token, settings);
      if (opened) {
        hsm = std::move(*opened);
      } else {
        hsm_unavailable = "hsmactor open_token failed: " + opened.error().message();
      }
    }
    for (StrategyKind kind : options.strategies) {
      contenders.push_back(make_contender(kind, options, token, hsm.get(), hsm_unavailable, 0));
    }

    // Memory first, before the cells' threads have grown the allocator's arenas,
    // so new session threads pay for theirs as they would in a fresh process.
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
    print_header(options, token, settings, nullptr);
    run_start = sample_cpu();
    cells = measure(contenders, options, token);
  }

  double others = others_share(run_start, sample_cpu());
  Reference reference;
  if (network) reference.ideal_ops_per_second = network->settings().ideal_ops_per_second();
  std::cout << format_table(cells, reference) << "\n";
  if (others >= 0) {
    std::cout << "Other processes used " << static_cast<int>(others * 100 + 0.5)
              << "% of the machine's CPU during the cells (column \"others\": per cell).\n\n";
  }
  for (const std::string& note : notes) std::cout << note << "\n";
  if (!notes.empty()) std::cout << "\n";
  if (std::string stalls = format_stalls(cells); !stalls.empty()) std::cout << stalls << "\n";
  if (std::string breakdown = format_breakdown(cells); !breakdown.empty()) {
    std::cout << breakdown << "\n";
  }
  if (options.memory_sessions > 0) std::cout << format_memory(memory) << "\n";
  // The targets compare with raw SoftHSM2; against a network token the ideal
  // is the yardstick instead.
  if (network) {
    std::cout << format_targets(check_network_targets(cells, reference.ideal_ops_per_second));
  } else {
    std::cout << format_targets(check_targets(cells, memory));
  }
  bool written = true;
  if (!options.csv_path.empty()) {
    written = write_file(options.csv_path, format_csv(cells, reference)) && written;
  }
  if (!options.plot_path.empty()) {
    written = write_file(options.plot_path, render_svg(cells)) && written;
  }

  // Strategies first, then hsmactor's pool and actor system, then the token
  // (which finalises the module).
  contenders.clear();
  keep_alive.clear();
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
