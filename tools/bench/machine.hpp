// How busy the machine was: CPU time of the whole machine and of this process,
// so a report can say when other processes took CPU during a cell (on a small
// machine that skews every number more than anything measured).
//
// Usage:
//   CpuSample before = sample_cpu();
//   run_cell();
//   double others = others_share(before, sample_cpu());   // 0.12: 12% of all cores
#pragma once

#include <cstdint>
#include <string>

namespace hsmactor::bench {

/// Cumulative CPU time in clock ticks.
struct CpuSample {
  /// All cores, busy (user, nice, system, irq, softirq, steal).
  std::uint64_t machine_busy = 0;
  /// All cores, busy plus idle and iowait.
  std::uint64_t machine_total = 0;
  /// This process, user plus system.
  std::uint64_t process = 0;
  bool valid = false;
};

/// Returns the current sample from /proc/stat and /proc/self/stat.
CpuSample sample_cpu();

/// Returns the share (0 to 1) of the machine's CPU time that other processes
/// used between the two samples, or -1 if unknown.
double others_share(const CpuSample& before, const CpuSample& after);

/// Parses the first ("cpu ") line of /proc/stat into `sample`; false if malformed.
bool parse_proc_stat_cpu(const std::string& line, CpuSample& sample);

/// Parses /proc/self/stat's utime + stime into `sample`; false if malformed.
bool parse_proc_self_stat(const std::string& text, CpuSample& sample);

}  // namespace hsmactor::bench
