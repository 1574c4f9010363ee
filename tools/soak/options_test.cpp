#include "tools/soak/options.hpp"

#include <catch2/catch.hpp>

#include <vector>

namespace hsmactor::soak {
namespace {

Result<SoakOptions> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "hsmactor-soak");
  return parse_options(static_cast<int>(args.size()), args.data());
}

TEST_CASE("no flags give the CI-sized defaults") {
  auto options = parse({});
  REQUIRE(options.ok());
  CHECK(options->requests == 100000);
  CHECK(options->callers == 16);
  CHECK(options->stale_rate == Approx(0.01));
  CHECK(options->verify_every == 1);
  CHECK(options->stream_percent == 4);
  CHECK(options->module.empty());
}

TEST_CASE("flags take their value after a space or an equals sign") {
  auto options = parse({"--requests", "1000000", "--callers=64", "--stale-rate", "0.02",
                        "--pulls=3", "--kills", "10", "--seed", "7", "--module", "/m.so",
                        "--token-dir=/t", "--verify-every", "100"});
  REQUIRE(options.ok());
  CHECK(options->requests == 1000000);
  CHECK(options->callers == 64);
  CHECK(options->stale_rate == Approx(0.02));
  CHECK(options->pulls == 3);
  CHECK(options->kills == 10);
  CHECK(options->seed == 7);
  CHECK(options->module == "/m.so");
  CHECK(options->token_dir == "/t");
  CHECK(options->verify_every == 100);
  CHECK(parse({"--streams=50"})->stream_percent == 50);
  CHECK_FALSE(parse({"--streams", "101"}).ok());
  CHECK_FALSE(options->tolerate_stream_key_bug);
  CHECK(parse({"--tolerate-stream-key-bug"})->tolerate_stream_key_bug);
}

TEST_CASE("unknown flags, missing values and values out of range are refused") {
  CHECK_FALSE(parse({"--request", "5"}).ok());
  CHECK_FALSE(parse({"--requests"}).ok());
  CHECK_FALSE(parse({"--requests", "0"}).ok());
  CHECK_FALSE(parse({"--requests", "-5"}).ok());
  CHECK_FALSE(parse({"--callers", "12x"}).ok());
  CHECK_FALSE(parse({"--stale-rate", "0.9"}).ok());
  CHECK_FALSE(parse({"--stale-rate", "nan"}).ok());
  CHECK_FALSE(parse({"--module="}).ok());
  CHECK(parse({"--requests", "0"}).error().condition() == Condition::invalid_argument);
  CHECK(parse({"--request", "5"}).error().detail() == "unknown flag --request");
  CHECK(parse({"--seed"}).error().detail() == "--seed needs a value");
  CHECK(parse({"--tolerate-stream-key-bug=1"}).error().detail() ==
        "--tolerate-stream-key-bug takes no value");
  CHECK(parse({"--callers", "12x"}).error().detail() == "--callers needs a number, got \"12x\"");
}

TEST_CASE("numbers are decimal and a repeated flag keeps its last value") {
  auto options = parse({"--callers=010", "--window", "2", "--window=3", "-h"});
  REQUIRE(options.ok());
  CHECK(options->callers == 10);
  CHECK(options->window == 3);
  CHECK(options->help);
}

}  // namespace
}  // namespace hsmactor::soak
