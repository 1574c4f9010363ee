// Fuzzes parse_token_uri: any text to the token-selecting parts of a pkcs11:
// URI, through p11-kit.
//
// Properties, for any text:
// - it never throws; a rejection is invalid_argument / fix_input whose message
//   is one of a fixed set (p11-kit's reasons, the NUL refusals), so no byte of
//   the URI, and so no PIN, ever reaches error text;
// - an accepted URI's label (at most 32 bytes) and serial (at most 16) have no
//   trailing blanks or NULs, and writing the parts back into a URI (every byte
//   percent-encoded) parses to the same parts, PIN included;
// - the PIN is exactly the pin-value the URI carries (percent-decoded), never
//   silently cut short;
// - a PIN appended to a URI that is then rejected appears in no error text.
#include "pool/token_uri.hpp"

#include <p11-kit/uri.h>

#include <optional>
#include <set>
#include <string>

#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_text.hpp"

namespace hsmactor {
namespace {

using fuzz::contains;

const std::set<std::string>& known_messages() {
  static const std::set<std::string> messages = [] {
    std::set<std::string> all{
        "not a valid pkcs11: URI: it contains a NUL",
        "not a valid pkcs11: URI: its query contains an encoded NUL (%00)",
        "not a valid pkcs11: URI: it has an empty attribute (\";;\")",
    };
    for (int code = -10; code < 0; ++code) {
      all.insert(std::string("not a valid pkcs11: URI: ") + p11_kit_uri_message(code));
    }
    return all;
  }();
  return messages;
}

std::string pin_text(const Pin& pin) {
  return pin.empty() ? std::string()
                     : std::string(reinterpret_cast<const char*>(pin.data()), pin.size());
}

// p11-kit drops white space inside names and values (RFC 3986, appendix C).
bool is_blank(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\v'; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Returns the percent-decoded value of the last "pin-value=" in the query of
/// `uri`, nothing if there is none or its encoding is broken.
std::optional<std::string> pin_value_of(std::string_view uri) {
  const std::size_t question = uri.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view query = uri.substr(question + 1);
  std::optional<std::string_view> raw;
  while (true) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    const std::size_t equals = item.find('=');
    std::string key;
    for (char c : item.substr(0, equals)) {
      if (!is_blank(c)) key += c;
    }
    if (equals != std::string_view::npos && key == "pin-value") raw = item.substr(equals + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  if (!raw) return std::nullopt;
  std::string value;
  for (std::size_t i = 0; i < raw->size(); ++i) {
    if (is_blank((*raw)[i])) continue;
    if ((*raw)[i] != '%') {
      value += (*raw)[i];
      continue;
    }
    if (i + 2 >= raw->size()) return std::nullopt;
    const int high = hex_digit((*raw)[i + 1]);
    const int low = hex_digit((*raw)[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    value += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return value;
}

void check_rejected(const Error& error, std::string_view uri) {
  FUZZ_CHECK(error.condition() == Condition::invalid_argument, "a bad URI is invalid_argument");
  FUZZ_CHECK(error.category() == Category::fix_input, "a bad URI is fix_input");
  FUZZ_CHECK(error.rv() == CKR_OK, "a bad URI carries no CK_RV");
  FUZZ_CHECK(known_messages().count(error.detail()) == 1,
             "the reason is a fixed text: no URI byte (no PIN) reaches it");
  FUZZ_CHECK(error.message() == "invalid_argument in open_token: " + error.detail(),
             "the message is the condition, operation and fixed reason");
}

std::string canonical(const TokenUri& parts) {
  std::string path;
  if (!parts.label.empty()) path += "token=" + fuzz::percent_encode_all(parts.label);
  if (!parts.serial.empty()) {
    if (!path.empty()) path += ';';
    path += "serial=" + fuzz::percent_encode_all(parts.serial);
  }
  std::string query;
  if (!parts.module_path.empty()) {
    query += "module-path=" + fuzz::percent_encode_all(parts.module_path);
  }
  if (!parts.pin.empty()) {
    if (!query.empty()) query += '&';
    query += "pin-value=" + fuzz::percent_encode_all(pin_text(parts.pin));
  }
  return "pkcs11:" + path + (query.empty() ? "" : "?" + query);
}

void check_accepted(const TokenUri& parts, std::string_view uri) {
  FUZZ_CHECK(parts.label.size() <= 32, "a label fits CK_TOKEN_INFO");
  FUZZ_CHECK(parts.serial.size() <= 16, "a serial fits CK_TOKEN_INFO");
  for (const std::string* field : {&parts.label, &parts.serial}) {
    FUZZ_CHECK(field->empty() || (field->back() != ' ' && field->back() != '\0'),
               "padding is stripped");
  }
  FUZZ_CHECK(parts.module_path.find('\0') == std::string::npos, "a module path has no NUL");
  FUZZ_CHECK(parts.pin.redacted() == "<redacted>", "a PIN renders as <redacted>");

  std::optional<std::string> pin = pin_value_of(uri);
  if (pin) FUZZ_CHECK(pin_text(parts.pin) == *pin, "the PIN is the URI's pin-value, whole");

  const std::string again_text = canonical(parts);
  Result<TokenUri> again = parse_token_uri(again_text);
  FUZZ_CHECK(again.ok(), "the parts written back are a valid URI");
  FUZZ_CHECK(again->label == parts.label, "the label round-trips");
  FUZZ_CHECK(again->serial == parts.serial, "the serial round-trips");
  FUZZ_CHECK(again->module_path == parts.module_path, "the module path round-trips");
  FUZZ_CHECK(again->pin.equals(parts.pin), "the PIN round-trips");
}

constexpr std::string_view kMarker = "Zq9pinMARKER7Xw";

}  // namespace
}  // namespace hsmactor

HSMACTOR_FUZZ_ENTRY(uri) {
  using namespace hsmactor;
  Result<TokenUri> parts = parse_token_uri(uri);
  if (parts) {
    check_accepted(*parts, uri);
  } else {
    check_rejected(parts.error(), uri);
  }

  std::string with_pin(uri);
  with_pin += uri.find('?') == std::string_view::npos ? "?" : "&";
  with_pin += "pin-value=";
  with_pin += kMarker;
  Result<TokenUri> secret = parse_token_uri(with_pin);
  if (secret) {
    check_accepted(*secret, with_pin);
  } else {
    check_rejected(secret.error(), with_pin);
    FUZZ_CHECK(!fuzz::contains(secret.error().message(), kMarker), "a PIN is never in error text");
  }
}
