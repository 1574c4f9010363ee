// A fixed-size latency histogram with logarithmic buckets (about 4% wide), so
// percentiles cost no allocation per sample.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace hsmactor {

class LatencyHistogram {
 public:
  /// Records one latency in microseconds.
  void record(std::uint64_t micros) {
    buckets_[bucket_of(micros)]++;
    count_++;
    if (micros > max_) max_ = micros;
  }
  /// Returns the latency below which `fraction` (0..1) of samples fall.
  std::uint64_t percentile(double fraction) const {
    if (count_ == 0) return 0;
    auto wanted = static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_)));
    if (wanted == 0) wanted = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= wanted) return upper_bound_of(i) < max_ ? upper_bound_of(i) : max_;
    }
    return max_;
  }
  /// Adds every sample of `other`.
  void merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    if (other.max_ > max_) max_ = other.max_;
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }

 private:
  static constexpr double kGrowth = 1.04;
  static constexpr std::size_t kBuckets = 512;  // 1.04^512 µs is far beyond any deadline

  static std::size_t bucket_of(std::uint64_t micros) {
    if (micros <= 1) return 0;
    auto index = static_cast<std::size_t>(std::log(static_cast<double>(micros)) / std::log(kGrowth));
    return index < kBuckets ? index : kBuckets - 1;
  }
  static std::uint64_t upper_bound_of(std::size_t index) {
    return static_cast<std::uint64_t>(std::ceil(std::pow(kGrowth, static_cast<double>(index + 1))));
  }

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace hsmactor
