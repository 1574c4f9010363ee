// Command-line options of hsmactor-bench.
//
// Usage:
//   Result<Options> options = parse_options({"--ops=ecdsa,rsa", "--concurrency=1,4"});
//   if (!options) { std::cerr << options.error().detail() << "\n" << usage(); }
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/error.hpp"
#include "tools/bench/cell.hpp"

namespace hsmactor::bench {

/// Where libp11's engine lives on Debian (package libengine-pkcs11-openssl).
inline constexpr const char* kDefaultEnginePath =
    "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
/// SoftHSM2's module on Debian (package softhsm2).
inline constexpr const char* kDefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so";

/// Where the benchmark's token lives.
enum class Scenario : std::uint8_t {
  softhsm,      ///< SoftHSM2 in the process, as fast as it goes (the default)
  network_hsm,  ///< SoftHSM2 behind the fault module: a latency per C_Sign and a session cap
};

/// Returns "softhsm" or "network-hsm".
const char* to_string(Scenario scenario);
/// Returns the scenario named `name`, if any.
std::optional<Scenario> parse_scenario(std::string_view name);

/// The network-HSM scenario's token: what a partition of a network HSM looks
/// like to one client process, a round trip per signature and a session cap.
struct NetworkHsmSettings {
  /// Added to every C_Sign by the fault module.
  std::chrono::microseconds sign_latency{2000};
  /// Sessions the token allows (and reports as ulMaxSessionCount).
  std::size_t max_sessions = 64;

  /// Returns the most signatures per second the token allows: every session
  /// signing back to back, each signature taking the latency alone.
  double ideal_ops_per_second() const;
};

/// The strategies the network scenario runs unless --strategies says otherwise:
/// raw-thread (the limit), the hsmactor strategies and libp11's engine.
std::vector<StrategyKind> network_strategies();

/// Everything one run needs to know.
struct Options {
  Scenario scenario = Scenario::softhsm;
  NetworkHsmSettings network;
  std::vector<Operation> operations = all_operations();
  std::vector<int> concurrency = {1, 2, 4, 16, 64, 256};
  std::vector<StrategyKind> strategies = all_strategies();
  /// Measured seconds per cell, after `warmup` seconds that are not counted.
  double seconds = 2.0;
  double warmup = 0.5;
  /// Runs per cell, interleaved across strategies; the median is reported.
  int repeat = 1;
  /// Sessions of hsmactor's pool; 0 means twice the number of cores (the pool
  /// itself caps it by the token's limit).
  std::size_t max_sessions = 0;
  /// Requests a callback caller keeps in flight.
  std::size_t window = 4;
  /// Requests an actor caller keeps in flight.
  std::size_t actor_window = 1;
  /// io_context threads of hsm-asio (its callers are requests in flight on them).
  std::size_t asio_threads = 1;
  /// Loop threads of hsm-cq, each draining its own CompletionQueue.
  std::size_t cq_threads = 1;
  /// Items per hsm-batch request (at most Token::kMaxBatchItems, 1024).
  std::size_t batch_size = 32;
  /// CAF scheduler of hsmactor's actor system: worker threads (0: CAF's
  /// default, max(cores, 4)) and policy ("stealing" or "sharing"; "" default).
  std::size_t scheduler_threads = 0;
  std::string scheduler_policy;
  /// Session actors opened to measure memory per session (0 skips it).
  std::size_t memory_sessions = 64;
  std::string csv_path;
  std::string plot_path;
  std::string module_path = kDefaultModulePath;
  std::string engine_path = kDefaultEnginePath;
  /// SoftHSM2 token directory to (re)use; empty: a throwaway one in $TMPDIR.
  std::string token_dir;
  std::string token_label = "hsmactor-bench";
  /// Also record hsmactor's pool-side latency (through its trace sink).
  bool breakdown = false;
  bool quick = false;
  bool help = false;
};

/// Returns the options `arguments` (without the program name) ask for, read
/// with CLI11 (`--name=value` or `--name value`; a repeated flag keeps its
/// last value). Unknown flags and malformed values are errors
/// (Condition::invalid_argument). `--quick` and `--scenario=network-hsm` change
/// only the settings no other flag sets.
Result<Options> parse_options(const std::vector<std::string>& arguments);

/// Returns the help text.
std::string usage();

}  // namespace hsmactor::bench
