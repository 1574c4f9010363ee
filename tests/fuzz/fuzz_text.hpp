// Small text helpers the fuzz targets check results with, written apart from
// the code under test so a bug there is not repeated here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hsmactor::fuzz {

/// Returns true when `text` is well-formed UTF-8 (RFC 3629: no overlong forms,
/// no surrogates, nothing above U+10FFFF).
inline bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    auto at = [&](std::size_t k) {
      return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u;
    };
    auto tail = [](unsigned b) { return b >= 0x80 && b <= 0xBF; };
    if (b0 <= 0x7F) {
      i += 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF && tail(at(1))) {
      i += 2;
    } else if (b0 == 0xE0 && at(1) >= 0xA0 && at(1) <= 0xBF && tail(at(2))) {
      i += 3;
    } else if (((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) && tail(at(1)) &&
               tail(at(2))) {
      i += 3;
    } else if (b0 == 0xED && at(1) >= 0x80 && at(1) <= 0x9F && tail(at(2))) {
      i += 3;
    } else if (b0 == 0xF0 && at(1) >= 0x90 && at(1) <= 0xBF && tail(at(2)) && tail(at(3))) {
      i += 4;
    } else if (b0 >= 0xF1 && b0 <= 0xF3 && tail(at(1)) && tail(at(2)) && tail(at(3))) {
      i += 4;
    } else if (b0 == 0xF4 && at(1) >= 0x80 && at(1) <= 0x8F && tail(at(2)) && tail(at(3))) {
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

/// Returns true when `text` contains `part`.
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// Returns true when `text` starts with `prefix`.
inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

/// Returns every byte of `bytes` as %XX.
inline std::string percent_encode_all(std::string_view bytes) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += '%';
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
  return out;
}

/// Returns `value` as lower-case hex without leading zeros ("0" for 0).
inline std::string hex(std::uint64_t value) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), kHex[value & 0xF]);
    value >>= 4;
  } while (value != 0);
  return out;
}

}  // namespace hsmactor::fuzz
