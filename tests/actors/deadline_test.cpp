// deadline_after and time_left: how a Job's deadline is made and read back.
#include "actors/protocol.hpp"

#include <chrono>
#include <limits>

#include <catch2/catch.hpp>

namespace hsmactor {
namespace {

using namespace std::chrono_literals;

constexpr auto kYear = std::chrono::hours(24 * 365);

TEST_CASE("a deadline lies its timeout ahead and time_left reads it back") {
  std::int64_t deadline = deadline_after(10s);
  REQUIRE(deadline != 0);
  auto left = time_left(deadline);
  REQUIRE(left > 9s);
  REQUIRE(left <= 10s);
}

TEST_CASE("a huge timeout saturates to a far deadline instead of overflowing into the past") {
  for (auto timeout : {std::chrono::nanoseconds::max(), std::chrono::nanoseconds::max() - 1ns,
                       std::chrono::duration_cast<std::chrono::nanoseconds>(200 * kYear)}) {
    INFO("timeout " << timeout.count() << " ns");
    std::int64_t deadline = deadline_after(timeout);
    REQUIRE(deadline > 0);
    REQUIRE(time_left(deadline) > 50 * kYear);
    // Turning it back into a timeout and adding to it stays representable.
    REQUIRE(time_left(deadline) + 60s > 50 * kYear);
  }
}

TEST_CASE("a zero or negative timeout is a deadline that has passed, not \"no deadline\"") {
  for (auto timeout : {0ns, -1ns, std::chrono::nanoseconds::min()}) {
    INFO("timeout " << timeout.count() << " ns");
    std::int64_t deadline = deadline_after(timeout);
    REQUIRE(deadline != 0);  // 0 would mean no deadline at all
    REQUIRE(time_left(deadline) == 0ns);
  }
}

}  // namespace
}  // namespace hsmactor
