// Latency samples and their exact percentiles.
//
// Each caller records into its own LatencyRecorder (no locking); after a run the
// recorders are merged and summarised. Percentiles are exact (nearest rank over
// every sample), not estimated from buckets.
//
// Usage:
//   LatencyRecorder recorder;
//   recorder.reserve(1 << 16);
//   recorder.record(1500);                 // nanoseconds
//   LatencySummary s = recorder.summary(); // s.p50_ns, s.p99_ns, ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hsmactor::bench {

/// What a set of latency samples says, in nanoseconds.
struct LatencySummary {
  std::uint64_t count = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p99_ns = 0;
  std::uint64_t max_ns = 0;
  double mean_ns = 0;
};

/// Returns the nearest-rank `percentile` (0 < percentile <= 100) of `sorted`,
/// which must be in ascending order; 0 for an empty vector.
std::uint64_t nearest_rank(const std::vector<std::uint64_t>& sorted, double percentile);

/// Collects latency samples of one caller; not thread-safe.
class LatencyRecorder {
 public:
  /// Reserves room for `samples`, so recording does not allocate mid-run.
  void reserve(std::size_t samples) { samples_.reserve(samples); }
  /// Adds one sample in nanoseconds.
  void record(std::uint64_t nanoseconds) { samples_.push_back(nanoseconds); }
  /// Moves the samples of `other` into this recorder.
  void merge(LatencyRecorder&& other);

  std::size_t size() const { return samples_.size(); }

  /// Returns count, exact p50 / p99, maximum and mean. Sorts the samples.
  LatencySummary summary();

 private:
  std::vector<std::uint64_t> samples_;
};

}  // namespace hsmactor::bench
