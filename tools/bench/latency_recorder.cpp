#include "tools/bench/latency_recorder.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace hsmactor::bench {

std::uint64_t nearest_rank(const std::vector<std::uint64_t>& sorted, double percentile) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least `percentile` % of all
  // samples at or below it.
  double rank = std::ceil(percentile / 100.0 * static_cast<double>(sorted.size()));
  std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

void LatencyRecorder::merge(LatencyRecorder&& other) {
  if (samples_.empty()) {
    samples_ = std::move(other.samples_);
  } else {
    samples_.insert(samples_.end(), std::make_move_iterator(other.samples_.begin()),
                    std::make_move_iterator(other.samples_.end()));
  }
  other.samples_.clear();
}

LatencySummary LatencyRecorder::summary() {
  LatencySummary summary;
  if (samples_.empty()) return summary;
  std::sort(samples_.begin(), samples_.end());
  summary.count = samples_.size();
  summary.p50_ns = nearest_rank(samples_, 50);
  summary.p99_ns = nearest_rank(samples_, 99);
  summary.max_ns = samples_.back();
  long double total = 0;
  for (std::uint64_t sample : samples_) total += sample;
  summary.mean_ns = static_cast<double>(total / samples_.size());
  return summary;
}

}  // namespace hsmactor::bench
