#include "tools/bench/options.hpp"

#include <algorithm>

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
                           "--quick", "--scenario", "--network-latency-us",
                           "--network-max-sessions", "--asio-threads", "--cq-threads",
                           "--batch"}) {
    CHECK(usage().find(flag) != std::string::npos);
  }
  for (StrategyKind strategy : all_strategies()) {
    CHECK(usage().find(to_string(strategy)) != std::string::npos);
  }
}

TEST_CASE("the default scenario is SoftHSM2 in the process") {
  auto options = parse_options({});
  REQUIRE(options);
  CHECK(options->scenario == Scenario::softhsm);
  CHECK(options->asio_threads == 1);
  CHECK(parse_scenario("softhsm") == Scenario::softhsm);
  CHECK(parse_scenario("network-hsm") == Scenario::network_hsm);
  CHECK_FALSE(parse_scenario("network"));
}

TEST_CASE("the network scenario signs ECDSA at 16 to 512 callers on a 2 ms, 64-session token") {
  auto options = parse_options({"--scenario=network-hsm"});
  REQUIRE(options);
  CHECK(options->scenario == Scenario::network_hsm);
  CHECK(options->network.sign_latency == std::chrono::milliseconds(2));
  CHECK(options->network.max_sessions == 64);
  CHECK(options->network.ideal_ops_per_second() == Approx(32000));
  CHECK(options->operations == std::vector<Operation>{Operation::ecdsa});
  CHECK(options->concurrency == std::vector<int>{16, 64, 256, 512});
  CHECK(options->strategies == network_strategies());
  CHECK(options->memory_sessions == 0);  // the probe's 64 sessions would not fit the cap
}

TEST_CASE("the network scenario runs raw-thread, every hsmactor strategy and the engine") {
  std::vector<StrategyKind> strategies = network_strategies();
  auto has = [&](StrategyKind kind) {
    return std::find(strategies.begin(), strategies.end(), kind) != strategies.end();
  };
  CHECK(has(StrategyKind::raw_thread));
  CHECK(has(StrategyKind::openssl_engine));
  CHECK_FALSE(has(StrategyKind::raw_mutex));
  CHECK_FALSE(has(StrategyKind::raw_per_op));
  for (StrategyKind strategy : all_strategies()) {
    if (is_hsmactor(strategy)) CHECK(has(strategy));
  }
}

TEST_CASE("the network token's latency and cap are flags, and other flags still win") {
  auto options = parse_options({"--scenario", "network-hsm", "--network-latency-us=500",
                                "--network-max-sessions=16", "--ops=hmac,ecdsa",
                                "--concurrency=8", "--strategies=hsm-asio", "--quick"});
  REQUIRE(options);
  CHECK(options->network.sign_latency == std::chrono::microseconds(500));
  CHECK(options->network.max_sessions == 16);
  CHECK(options->network.ideal_ops_per_second() == Approx(32000));  // 16 / 0.5 ms
  CHECK(options->operations == std::vector<Operation>{Operation::hmac, Operation::ecdsa});
  CHECK(options->concurrency == std::vector<int>{8});
  CHECK(options->strategies == std::vector<StrategyKind>{StrategyKind::hsm_asio});
  CHECK(options->seconds < 1.0);  // --quick still shortens the cells

  auto quick = parse_options({"--scenario=network-hsm", "--quick"});
  REQUIRE(quick);
  CHECK(quick->concurrency == std::vector<int>{16, 64, 256, 512});
  CHECK(quick->memory_sessions == 0);
}

TEST_CASE("network flags are refused outside the network scenario or out of range") {
  auto detail = [](std::vector<std::string> arguments) {
    auto options = parse_options(arguments);
    REQUIRE_FALSE(options);
    CHECK(options.error().condition() == Condition::invalid_argument);
    return options.error().detail();
  };
  CHECK(detail({"--network-latency-us=2000"}) ==
        "--network-latency-us needs --scenario=network-hsm");
  CHECK(detail({"--network-max-sessions=64"}) ==
        "--network-max-sessions needs --scenario=network-hsm");
  CHECK(detail({"--scenario=cloud"}) == "--scenario wants softhsm or network-hsm, not \"cloud\"");
  CHECK(detail({"--scenario=network-hsm", "--network-max-sessions=1"}).find("at least 2") !=
        std::string::npos);
  CHECK(detail({"--scenario=network-hsm", "--network-max-sessions=2000"}).find("capped") !=
        std::string::npos);
  CHECK(detail({"--scenario=network-hsm", "--network-latency-us=0"}) ==
        "--network-latency-us wants a positive integer, not \"0\"");
  CHECK(detail({"--scenario=network-hsm", "--memory-sessions=8"}).find("default scenario") !=
        std::string::npos);
  CHECK(detail({"--asio-threads=0"}) == "--asio-threads wants a positive integer, not \"0\"");
  CHECK(detail({"--asio-threads=17"}) == "--asio-threads is capped at 16");
}

TEST_CASE("hsm-asio and hsm-cq run on as many loop threads as asked") {
  auto options = parse_options({"--asio-threads=2", "--cq-threads=3",
                                "--strategies=hsm-asio,hsm-cq"});
  REQUIRE(options);
  CHECK(options->asio_threads == 2);
  CHECK(options->cq_threads == 3);
  CHECK(options->strategies ==
        std::vector<StrategyKind>{StrategyKind::hsm_asio, StrategyKind::hsm_cq});
  CHECK(parse_options({})->cq_threads == 1);
}

TEST_CASE("hsm-batch sends 32 items per batch unless told, at most kMaxBatchItems") {
  CHECK(parse_options({})->batch_size == 32);
  auto options = parse_options({"--batch=1024", "--strategies=hsm-batch"});
  REQUIRE(options);
  CHECK(options->batch_size == 1024);
  CHECK(options->strategies == std::vector<StrategyKind>{StrategyKind::hsm_batch});
  auto refused = parse_options({"--batch=1025"});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().detail() == "--batch is capped at 1024 items (kMaxBatchItems)");
  CHECK_FALSE(parse_options({"--batch=0"}));
  CHECK_FALSE(parse_options({"--cq-threads=17"}));
}

}  // namespace
}  // namespace hsmactor::bench
