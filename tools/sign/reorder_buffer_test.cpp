#include "tools/sign/reorder_buffer.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

namespace hsmactor::sign {
namespace {

using Lines = std::vector<std::string>;

TEST_CASE("unordered, every line is released the moment it arrives") {
  ReorderBuffer buffer(false);
  CHECK(buffer.push(2, "c") == Lines{"c"});
  CHECK(buffer.push(0, "a") == Lines{"a"});
  CHECK(buffer.push(1, "b") == Lines{"b"});
  CHECK(buffer.waiting() == 0);
  CHECK(buffer.released() == 3);
}

TEST_CASE("ordered, an early answer waits for every earlier one") {
  ReorderBuffer buffer(true);
  CHECK(buffer.push(1, "b").empty());
  CHECK(buffer.push(3, "d").empty());
  CHECK(buffer.waiting() == 2);
  CHECK(buffer.push(0, "a") == Lines{"a", "b"});
  CHECK(buffer.waiting() == 1);
  CHECK(buffer.push(2, "c") == Lines{"c", "d"});
  CHECK(buffer.waiting() == 0);
  CHECK(buffer.released() == 4);
}

TEST_CASE("ordered, any arrival order comes out in input order") {
  std::vector<std::uint64_t> order(500);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 random(12345);
  std::shuffle(order.begin(), order.end(), random);

  ReorderBuffer buffer(true);
  Lines out;
  for (std::uint64_t sequence : order) {
    for (auto& line : buffer.push(sequence, std::to_string(sequence))) out.push_back(line);
  }
  REQUIRE(out.size() == order.size());
  for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i] == std::to_string(i));
  CHECK(buffer.waiting() == 0);
}

}  // namespace
}  // namespace hsmactor::sign
