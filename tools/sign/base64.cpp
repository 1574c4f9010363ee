#include "tools/sign/base64.hpp"

#include <cstdint>

namespace hsmactor::sign {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string to_base64(ByteView bytes) {
  std::string out;
  out.reserve((bytes.size + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size; i += 3) {
    std::uint32_t n = bytes.data[i] << 16 | bytes.data[i + 1] << 8 | bytes.data[i + 2];
    out.push_back(kBase64Alphabet[n >> 18 & 63]);
    out.push_back(kBase64Alphabet[n >> 12 & 63]);
    out.push_back(kBase64Alphabet[n >> 6 & 63]);
    out.push_back(kBase64Alphabet[n & 63]);
  }
  std::size_t rest = bytes.size - i;
  if (rest == 1) {
    std::uint32_t n = bytes.data[i] << 16;
    out.push_back(kBase64Alphabet[n >> 18 & 63]);
    out.push_back(kBase64Alphabet[n >> 12 & 63]);
    out += "==";
  } else if (rest == 2) {
    std::uint32_t n = bytes.data[i] << 16 | bytes.data[i + 1] << 8;
    out.push_back(kBase64Alphabet[n >> 18 & 63]);
    out.push_back(kBase64Alphabet[n >> 12 & 63]);
    out.push_back(kBase64Alphabet[n >> 6 & 63]);
    out.push_back('=');
  }
  return out;
}

std::optional<Bytes> from_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  Bytes out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = base64_value(c);
    if (value < 0) return std::nullopt;
    buffer = buffer << 6 | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits & 0xff));
    }
  }
  return out;
}

}  // namespace hsmactor::sign
