#include "pkcs11/bytes.hpp"

#include <string>

#include <catch2/catch.hpp>

namespace hsmactor {
namespace {

TEST_CASE("hex is lower-case and reads back in either case") {
  Bytes bytes{0x00, 0x7f, 0x80, 0xab, 0xff};
  CHECK(to_hex(bytes) == "007f80abff");
  CHECK(from_hex("007f80abff") == bytes);
  CHECK(from_hex("007F80ABFF") == bytes);
  CHECK(from_hex("") == Bytes());
}

TEST_CASE("text that is not hex reads as nothing") {
  CHECK_FALSE(from_hex("abc"));  // odd length
  CHECK_FALSE(from_hex("0g"));   // not a digit
  CHECK_FALSE(from_hex(" 00"));
}

TEST_CASE("a ByteView sees the bytes of a string or a Bytes without copying") {
  std::string text = "hello";
  ByteView view(text);
  CHECK(view.size == 5);
  CHECK(static_cast<const void*>(view.data) == static_cast<const void*>(text.data()));
  CHECK(view.to_bytes() == bytes_of("hello"));

  Bytes bytes = bytes_of("abc");
  ByteView bytes_view(bytes);
  CHECK(bytes_view.data == bytes.data());
  CHECK(ByteView().to_bytes().empty());
}

}  // namespace
}  // namespace hsmactor
