#include "tools/bench/machine.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

TEST_CASE("the machine line of /proc/stat splits into busy and total") {
  CpuSample sample;
  REQUIRE(parse_proc_stat_cpu("cpu  100 5 50 800 20 3 2 10 0 0", sample));
  CHECK(sample.machine_busy == 100 + 5 + 50 + 3 + 2 + 10);
  CHECK(sample.machine_total == 170 + 800 + 20);
  CHECK_FALSE(parse_proc_stat_cpu("cpu0 1 2 3 4 5 6 7 8", sample));
  CHECK_FALSE(parse_proc_stat_cpu("cpu 1 2 3", sample));
}

TEST_CASE("the process line is read after a command name with spaces") {
  CpuSample sample;
  std::string line = "4242 (hsm bench) R 1 2 3 4 5 6 7 8 9 10 250 70 0 0 20 0 9 0";
  REQUIRE(parse_proc_self_stat(line, sample));
  CHECK(sample.process == 320);
  CHECK_FALSE(parse_proc_self_stat("4242 (x) R 1 2", sample));
}

TEST_CASE("others' share is the machine's busy time not spent by this process") {
  CpuSample before{1000, 4000, 600, true};
  CpuSample after{1700, 5000, 1200, true};  // 700 busy, 600 ours, 1000 total
  CHECK(others_share(before, after) == Approx(0.1));
  CpuSample ours_only{1600, 5000, 1300, true};  // ticks slightly out of step
  CHECK(others_share(before, ours_only) == 0);
  CHECK(others_share(before, CpuSample{}) == -1);
  CHECK(others_share(before, before) == -1);
}

}  // namespace
}  // namespace hsmactor::bench
