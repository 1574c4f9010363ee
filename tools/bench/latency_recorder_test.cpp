#include "tools/bench/latency_recorder.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

TEST_CASE("nearest rank picks the smallest sample covering the percentile") {
  std::vector<std::uint64_t> sorted;
  for (std::uint64_t i = 1; i <= 100; ++i) sorted.push_back(i);
  CHECK(nearest_rank(sorted, 50) == 50);
  CHECK(nearest_rank(sorted, 99) == 99);
  CHECK(nearest_rank(sorted, 100) == 100);
  CHECK(nearest_rank(sorted, 0.5) == 1);
}

TEST_CASE("nearest rank of few samples rounds the rank up") {
  CHECK(nearest_rank({10, 20, 30}, 50) == 20);   // rank ceil(1.5) = 2
  CHECK(nearest_rank({10, 20, 30}, 99) == 30);   // rank ceil(2.97) = 3
  CHECK(nearest_rank({10, 20, 30, 40}, 50) == 20);  // rank 2 exactly
  CHECK(nearest_rank({7}, 99) == 7);
}

TEST_CASE("nearest rank of nothing is zero") { CHECK(nearest_rank({}, 50) == 0); }

TEST_CASE("summary is exact over unsorted samples") {
  LatencyRecorder recorder;
  recorder.reserve(1000);
  for (std::uint64_t i = 1000; i >= 1; --i) recorder.record(i * 1000);
  LatencySummary summary = recorder.summary();
  CHECK(summary.count == 1000);
  CHECK(summary.p50_ns == 500000);
  CHECK(summary.p99_ns == 990000);
  CHECK(summary.max_ns == 1000000);
  CHECK(summary.mean_ns == Approx(500500.0));
}

TEST_CASE("merged recorders summarise all samples together") {
  LatencyRecorder fast;
  LatencyRecorder slow;
  for (int i = 0; i < 50; ++i) fast.record(100);
  for (int i = 0; i < 50; ++i) slow.record(900);
  fast.merge(std::move(slow));
  CHECK(slow.size() == 0);
  LatencySummary summary = fast.summary();
  CHECK(summary.count == 100);
  CHECK(summary.p50_ns == 100);
  CHECK(summary.p99_ns == 900);
  CHECK(summary.mean_ns == Approx(500.0));
}

TEST_CASE("an empty recorder summarises to zeros") {
  LatencyRecorder recorder;
  LatencySummary summary = recorder.summary();
  CHECK(summary.count == 0);
  CHECK(summary.p50_ns == 0);
  CHECK(summary.mean_ns == 0);
}

}  // namespace
}  // namespace hsmactor::bench
