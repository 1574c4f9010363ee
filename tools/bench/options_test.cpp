#include "tools/bench/options.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

TEST_CASE("defaults measure everything for two seconds after half a second") {
  auto options = parse_options({});
  REQUIRE(options);
  CHECK(options->operations == all_operations());
  CHECK(options->strategies == all_strategies());
  CHECK(options->concurrency == std::vector<int>{1, 2, 4, 16, 64, 256});
  CHECK(options->seconds == 2.0);
  CHECK(options->warmup == 0.5);
  CHECK(options->max_sessions == 0);
}

TEST_CASE("lists are parsed in order without duplicates") {
  auto options = parse_options({"--ops=rsa,ecdsa,rsa", "--concurrency=4,1",
                                "--strategies=hsm-future,raw-thread"});
  REQUIRE(options);
  CHECK(options->operations == std::vector<Operation>{Operation::rsa, Operation::ecdsa});
  CHECK(options->concurrency == std::vector<int>{4, 1});
  CHECK(options->strategies ==
        std::vector<StrategyKind>{StrategyKind::hsm_future, StrategyKind::raw_thread});
}

TEST_CASE("quick shortens only what no other flag set") {
  auto quick = parse_options({"--quick"});
  REQUIRE(quick);
  CHECK(quick->seconds < 1.0);
  CHECK(quick->concurrency == std::vector<int>{1, 2, 16});

  auto mixed = parse_options({"--seconds=3", "--quick", "--concurrency=8"});
  REQUIRE(mixed);
  CHECK(mixed->seconds == 3.0);
  CHECK(mixed->concurrency == std::vector<int>{8});
  CHECK(mixed->warmup < 0.5);
}

TEST_CASE("paths and sizes are taken as given") {
  auto options = parse_options({"--csv=out.csv", "--plot=out.svg", "--module=/x/y.so",
                                "--token-dir=/tmp/t", "--max-sessions=8", "--window=2",
                                "--memory-sessions=0", "--warmup=0"});
  REQUIRE(options);
  CHECK(options->csv_path == "out.csv");
  CHECK(options->plot_path == "out.svg");
  CHECK(options->module_path == "/x/y.so");
  CHECK(options->token_dir == "/tmp/t");
  CHECK(options->max_sessions == 8);
  CHECK(options->window == 2);
  CHECK(options->memory_sessions == 0);
  CHECK(options->warmup == 0.0);
}

TEST_CASE("malformed flags are refused with a reason") {
  for (const char* bad : {"--ops=ecdsa,bogus", "--concurrency=0", "--concurrency=two",
                          "--seconds=0", "--seconds=-1", "--warmup=x", "--frobnicate=1",
                          "--csv", "--csv=", "--max-sessions=0", "--quick=yes"}) {
    INFO(bad);
    auto options = parse_options({bad});
    REQUIRE_FALSE(options);
    CHECK(options.error().condition() == Condition::invalid_argument);
    CHECK_FALSE(options.error().detail().empty());
  }
}

TEST_CASE("refusals name the flag in the words the tool always used") {
  auto detail = [](std::vector<std::string> arguments) {
    auto options = parse_options(arguments);
    REQUIRE_FALSE(options);
    return options.error().detail();
  };
  CHECK(detail({"--frobnicate=1"}) == "unknown flag --frobnicate");
  CHECK(detail({"--csv"}) == "--csv needs a value (--csv=...)");
  CHECK(detail({"--csv=", "--quick"}) == "--csv needs a value (--csv=...)");
  CHECK(detail({"--csv", "--quick"}) == "--csv needs a value (--csv=...)");
  CHECK(detail({"--quick=yes"}) == "--quick takes no value");
  CHECK(detail({"--window=0"}) == "--window wants a positive integer, not \"0\"");
  CHECK(detail({"--seconds=nan"}).find("--seconds wants seconds") == 0);
  CHECK(detail({"stray"}) == "unexpected argument stray");
}

TEST_CASE("values may follow a space and the last of a repeated flag wins") {
  auto options = parse_options({"--ops", "rsa", "--window=010", "--window=3", "-h"});
  REQUIRE(options);
  CHECK(options->operations == std::vector<Operation>{Operation::rsa});
  CHECK(options->window == 3);
  CHECK(options->help);
  CHECK(parse_options({"--window=010"})->window == 10);  // decimal, not octal
}

TEST_CASE("help is recognised and usage names every flag") {
  auto options = parse_options({"--help"});
  REQUIRE(options);
  CHECK(options->help);
  for (const char* flag : {"--ops", "--concurrency", "--strategies", "--seconds", "--warmup",
                           "--max-sessions", "--csv", "--plot", "--module", "--token-dir",
                           "--quick"}) {
    CHECK(usage().find(flag) != std::string::npos);
  }
}

}  // namespace
}  // namespace hsmactor::bench
