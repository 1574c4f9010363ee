#include "tools/bench/cell.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

CellResult run_with(std::uint64_t operations, double others = 0) {
  CellResult cell;
  cell.seconds = 1;
  cell.operations = operations;
  cell.others_cpu = others;
  return cell;
}

TEST_CASE("names round-trip for every operation and strategy") {
  for (Operation operation : all_operations()) {
    CHECK(parse_operation(to_string(operation)) == operation);
  }
  for (StrategyKind strategy : all_strategies()) {
    CHECK(parse_strategy(to_string(strategy)) == strategy);
  }
  CHECK_FALSE(parse_operation("sha1"));
  CHECK_FALSE(parse_strategy("hsm"));
}

TEST_CASE("only the strategies through hsmactor's pool count as hsmactor") {
  std::vector<StrategyKind> pooled;
  for (StrategyKind strategy : all_strategies()) {
    if (is_hsmactor(strategy)) pooled.push_back(strategy);
  }
  CHECK(pooled == std::vector<StrategyKind>{StrategyKind::hsm_future, StrategyKind::hsm_callback,
                                            StrategyKind::hsm_actor, StrategyKind::hsm_asio,
                                            StrategyKind::hsm_cq, StrategyKind::hsm_batch});
  CHECK_FALSE(is_hsmactor(StrategyKind::openssl_engine));
  CHECK_FALSE(is_hsmactor(StrategyKind::raw_thread));
}

TEST_CASE("the Asio, completion-queue and batch strategies have their flag names") {
  CHECK(parse_strategy("hsm-asio") == StrategyKind::hsm_asio);
  CHECK(parse_strategy("hsm-cq") == StrategyKind::hsm_cq);
  CHECK(parse_strategy("hsm-batch") == StrategyKind::hsm_batch);
  CHECK(std::string(to_string(StrategyKind::hsm_batch)) == "hsm-batch");
}

TEST_CASE("the median run is reported with the number of runs") {
  CellResult median = median_run({run_with(300, 0.3), run_with(100), run_with(200, 0.2)});
  CHECK(median.operations == 200);
  CHECK(median.others_cpu == Approx(0.2));
  CHECK(median.runs == 3);
}

TEST_CASE("an even number of runs reports the lower middle one") {
  CHECK(median_run({run_with(4), run_with(1), run_with(3), run_with(2)}).operations == 2);
  CHECK(median_run({run_with(7)}).runs == 1);
}

}  // namespace
}  // namespace hsmactor::bench
