// The vocabulary of a benchmark run: operations, strategies, and the result of
// one cell (one strategy doing one operation at one caller concurrency).
//
// Usage:
//   auto op = parse_operation("ecdsa");            // Operation::ecdsa
//   CellResult cell{StrategyKind::raw_thread, Operation::ecdsa, 4};
//   cell.ops_per_second();
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/bench/latency_recorder.hpp"

namespace hsmactor::bench {

/// What each request does.
enum class Operation : std::uint8_t {
  ecdsa,   ///< ECDSA P-256 over a 32-byte digest (CKM_ECDSA)
  rsa,     ///< RSA-2048 PKCS#1 v1.5 with SHA-256 in the token (CKM_SHA256_RSA_PKCS)
  hmac,    ///< HMAC-SHA256 (CKM_SHA256_HMAC)
  random,  ///< 32 random bytes (C_GenerateRandom)
  digest,  ///< SHA-256 of 1 KiB (CKM_SHA256)
};

/// How callers reach the token.
enum class StrategyKind : std::uint8_t {
  raw_thread,      ///< raw PKCS#11, one session per caller thread (the limit)
  raw_mutex,       ///< raw PKCS#11, one session shared behind a mutex
  raw_per_op,      ///< raw PKCS#11, a session opened and closed per request
  hsm_future,      ///< hsmactor, caller threads blocking on Future::get()
  hsm_callback,    ///< hsmactor, caller threads with a bounded window of callbacks
  hsm_actor,       ///< hsmactor, one CAF actor per caller on the pool's handle
  hsm_asio,        ///< hsmactor's Asio async_* on io_context threads; callers = requests in flight
  hsm_cq,          ///< hsmactor callbacks drained from a CompletionQueue by loop threads;
                   ///< callers = requests in flight
  hsm_batch,       ///< caller threads, each with one sign_many / digest_many / random_many
                   ///< batch in flight; every item counts as one request
  openssl_engine,  ///< OpenSSL with libp11's PKCS#11 engine
};

/// Returns "ecdsa", "rsa", ...
const char* to_string(Operation operation);
/// Returns "raw-thread", "hsm-future", ...
const char* to_string(StrategyKind strategy);
/// Returns the operation named `name`, if any.
std::optional<Operation> parse_operation(std::string_view name);
/// Returns the strategy named `name`, if any.
std::optional<StrategyKind> parse_strategy(std::string_view name);
/// Returns every operation, in report order.
std::vector<Operation> all_operations();
/// Returns every strategy, in report order.
std::vector<StrategyKind> all_strategies();
/// Returns true for the strategies that go through hsmactor's pool.
bool is_hsmactor(StrategyKind strategy);

/// Whether a cell produced numbers.
enum class CellStatus : std::uint8_t {
  measured,     ///< ran; the numbers are real
  unsupported,  ///< the strategy cannot do this operation (the note says why)
  unavailable,  ///< the strategy could not be set up on this machine
  failed,       ///< every request failed (the note has the first error)
};

/// Returns "measured", "unsupported", "unavailable" or "failed".
const char* to_string(CellStatus status);

/// A cell whose in-flight requests take longer than this to come back after
/// its window is reported as stalled.
inline constexpr double kStallSeconds = 1.0;

/// The outcome of one cell.
struct CellResult {
  StrategyKind strategy = StrategyKind::raw_thread;
  Operation operation = Operation::ecdsa;
  int concurrency = 1;
  CellStatus status = CellStatus::measured;
  /// Why a cell is not measured, or the first error of a measured one.
  std::string note;
  /// What a reader must know to read a measured cell's numbers (it ran fewer
  /// threads than callers, say); empty for most cells.
  std::string caveat;
  /// Length of the measured window (warm-up excluded).
  double seconds = 0;
  /// Successful requests completed inside the window.
  std::uint64_t operations = 0;
  /// Failed requests completed inside the window.
  std::uint64_t errors = 0;
  /// Latency of the successful requests in the window.
  LatencySummary latency;
  /// hsmactor cells with --breakdown: the pool's own time from accepting a
  /// request to replying (queueing, the session actor's hop and the PKCS#11
  /// call); count is 0 when not measured.
  LatencySummary pool_latency;
  /// CPU time this process spent inside the window, per successful request
  /// (all threads: callers, actors, the module); negative when unknown. On a
  /// saturated machine, cores / this is the throughput ceiling.
  double cpu_us_per_op = -1;
  /// Share (0 to 1) of all cores that other processes used during the cell;
  /// negative when unknown.
  double others_cpu = -1;
  /// Requests still in flight when the window closed that completed later,
  /// how long the last of them took to come back, and the first error among
  /// them (a pool that stalls shows here, not in the window's numbers).
  std::uint64_t late = 0;
  double drain_seconds = 0;
  std::string late_error;
  /// hsmactor cells: the pool's metrics, snapshotted while a stall lasted.
  std::string stall_detail;
  /// How many runs of this cell were made; the one reported has the median
  /// throughput.
  int runs = 1;

  double ops_per_second() const { return seconds > 0 ? operations / seconds : 0; }
};

/// Returns the run with the median throughput (the lower middle one for an
/// even count), with `runs` set to how many there were; failed runs count as
/// zero throughput. `runs` must not be empty.
CellResult median_run(std::vector<CellResult> runs);

}  // namespace hsmactor::bench
