#include "tools/sign/base64.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::sign {
namespace {

TEST_CASE("base64 matches the RFC 4648 examples with padding") {
  CHECK(to_base64(bytes_of("")) == "");
  CHECK(to_base64(bytes_of("f")) == "Zg==");
  CHECK(to_base64(bytes_of("fo")) == "Zm8=");
  CHECK(to_base64(bytes_of("foo")) == "Zm9v");
  CHECK(to_base64(bytes_of("foob")) == "Zm9vYg==");
  CHECK(to_base64(bytes_of("fooba")) == "Zm9vYmE=");
  CHECK(to_base64(bytes_of("foobar")) == "Zm9vYmFy");
}

TEST_CASE("base64 reads back with or without padding") {
  CHECK(from_base64("Zm9vYg==") == bytes_of("foob"));
  CHECK(from_base64("Zm9vYg") == bytes_of("foob"));
  CHECK(from_base64("Zm9vYmFy") == bytes_of("foobar"));
  Bytes every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<std::uint8_t>(i));
  CHECK(from_base64(to_base64(every_byte)) == every_byte);
}

TEST_CASE("text that is not base64 reads as nothing") {
  CHECK_FALSE(from_base64("Zm9v!"));
  CHECK_FALSE(from_base64("Z"));
}

}  // namespace
}  // namespace hsmactor::sign
