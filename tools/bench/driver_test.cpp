#include "tools/bench/driver.hpp"

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

const Timing kShort{0.02, 0.1};

TEST_CASE("a tally counts only requests that complete inside the window") {
  MeasureWindow window;
  window.start = Clock::now();
  window.end = window.start + std::chrono::seconds(1);
  CallerTally tally;
  std::string error = "CKR_DEVICE_ERROR";
  tally.complete(window, window.start - std::chrono::milliseconds(5),
                 window.start - std::chrono::milliseconds(1), nullptr);  // warm-up
  tally.complete(window, window.start, window.start + std::chrono::microseconds(7), nullptr);
  tally.complete(window, window.start, window.start + std::chrono::microseconds(9), &error);
  tally.complete(window, window.end, window.end + std::chrono::milliseconds(1), nullptr);  // late
  CHECK(tally.operations == 1);
  CHECK(tally.errors == 1);
  CHECK(tally.first_error == "CKR_DEVICE_ERROR");
  CHECK(tally.late == 1);
  CHECK(tally.first_late_error.empty());
  CHECK(tally.last_done == window.end + std::chrono::milliseconds(1));
  CHECK(tally.latency.summary().p50_ns == 7000);
}

TEST_CASE("folding reports how long the last late answer took") {
  MeasureWindow window;
  window.start = Clock::now();
  window.end = window.start + std::chrono::seconds(1);
  std::vector<CallerTally> tallies(2);
  std::string error = "deadline_exceeded";
  tallies[0].complete(window, window.start, window.start + std::chrono::milliseconds(2), nullptr);
  tallies[1].complete(window, window.start, window.end + std::chrono::seconds(3), &error);
  CellResult cell = fold_cell(StrategyKind::hsm_callback, Operation::ecdsa, 2, window, tallies);
  CHECK(cell.operations == 1);
  CHECK(cell.late == 1);
  CHECK(cell.late_error == "deadline_exceeded");
  CHECK(cell.drain_seconds == Approx(3.0));
}

TEST_CASE("a batch counts every item with the batch's latency, failed items as errors") {
  MeasureWindow window;
  window.start = Clock::now();
  window.end = window.start + std::chrono::seconds(1);
  CallerTally tally;
  tally.complete_batch(window, window.start, window.start + std::chrono::microseconds(640), 32,
                       2, "CKR_DEVICE_ERROR");
  tally.complete_batch(window, window.start, window.start + std::chrono::microseconds(700), 4, 0,
                       "");
  tally.complete_batch(window, window.end, window.end + std::chrono::milliseconds(1), 8, 8,
                       "shutting_down");  // late
  CHECK(tally.operations == 34);
  CHECK(tally.errors == 2);
  CHECK(tally.first_error == "CKR_DEVICE_ERROR");
  CHECK(tally.late == 8);
  CHECK(tally.first_late_error == "shutting_down");
  LatencySummary latency = tally.latency.summary();
  CHECK(latency.count == 34);
  CHECK(latency.p50_ns == 640000);
  CHECK(latency.max_ns == 700000);
}

TEST_CASE("closed-loop batches count items, not batches, as operations") {
  std::atomic<std::uint64_t> batches{0};
  CellResult cell = run_closed_loop_batches(
      StrategyKind::raw_thread, Operation::ecdsa, 2, kShort,
      [&](int, std::string&) -> BatchFn {
        return [&] {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
          batches++;
          return BatchOutcome{16, 0, ""};
        };
      });
  CHECK(cell.status == CellStatus::measured);
  CHECK(cell.errors == 0);
  CHECK(cell.operations % 16 == 0);
  CHECK(cell.operations > 0);
  CHECK(cell.operations <= 16 * batches.load());
  CHECK(cell.latency.p50_ns >= 500000);
}

TEST_CASE("closed loop runs every caller on its own prepared thread") {
  std::atomic<int> prepared{0};
  CellResult cell = run_closed_loop(
      StrategyKind::raw_thread, Operation::random, 3, kShort,
      [&](int, std::string&) -> RequestFn {
        prepared++;
        return [](std::string&) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          return true;
        };
      });
  CHECK(prepared == 3);
  CHECK(cell.status == CellStatus::measured);
  CHECK(cell.concurrency == 3);
  CHECK(cell.operations > 0);
  CHECK(cell.errors == 0);
  CHECK(cell.seconds == Approx(0.1).epsilon(0.01));
  CHECK(cell.latency.p50_ns >= 200000);
  // Sleeping callers use almost no CPU per request.
  CHECK(cell.cpu_us_per_op >= 0);
  CHECK(cell.cpu_us_per_op < 200);
}

TEST_CASE("closed loop reports a failed set-up instead of numbers") {
  CellResult cell = run_closed_loop(StrategyKind::raw_thread, Operation::ecdsa, 2, kShort,
                                    [](int index, std::string& error) -> RequestFn {
                                      if (index == 1) {
                                        error = "CKR_SESSION_COUNT";
                                        return {};
                                      }
                                      return [](std::string&) { return true; };
                                    });
  CHECK(cell.status == CellStatus::failed);
  CHECK(cell.note.find("CKR_SESSION_COUNT") != std::string::npos);
}

TEST_CASE("a cell whose every request fails is failed with the first error") {
  CellResult cell = run_closed_loop(StrategyKind::raw_mutex, Operation::hmac, 1, kShort,
                                    [](int, std::string&) -> RequestFn {
                                      return [](std::string& error) {
                                        error = "CKR_KEY_HANDLE_INVALID";
                                        std::this_thread::sleep_for(std::chrono::microseconds(100));
                                        return false;
                                      };
                                    });
  CHECK(cell.status == CellStatus::failed);
  CHECK(cell.errors > 0);
  CHECK(cell.note == "CKR_KEY_HANDLE_INVALID");
}

TEST_CASE("windowed callers never exceed their window and drain before returning") {
  std::atomic<int> in_flight{0};
  std::atomic<int> most{0};
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  CellResult cell = run_windowed(
      StrategyKind::hsm_callback, Operation::random, 2, 3, kShort,
      [&](int, Completion done) {
        int now = ++in_flight;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        started++;
        // Completed on another thread, as hsmactor's callbacks are.
        std::thread([&, done] {
          std::this_thread::sleep_for(std::chrono::microseconds(300));
          --in_flight;
          finished++;
          done(nullptr);
        }).detach();
      });
  CHECK(started == finished);
  CHECK(most <= 2 * 3);
  CHECK(cell.status == CellStatus::measured);
  CHECK(cell.operations > 0);
}

}  // namespace
}  // namespace hsmactor::bench
