// Fuzzes the strict JSON reader and writer of hsmactor-sign (json_lines).
//
// Properties, for any input bytes:
// - parsing never throws; a rejected line is an invalid_argument Error whose
//   message names a column inside the line (or just past its end);
// - every string the parser hands out is well-formed UTF-8;
// - an accepted object, written back member by member, parses to the same
//   members (names, kinds, texts, nested objects) in the same order;
// - a flat object accepted with nesting 0 is accepted the same with nesting 1;
// - json_quote of any bytes is one JSON string that parses back to the bytes
//   themselves when they are UTF-8, and contains no raw control character.
#include "tools/sign/json_lines.hpp"

#include <string>

#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_text.hpp"

namespace hsmactor::sign {
namespace {

using fuzz::contains;
using fuzz::is_utf8;
using fuzz::starts_with;

std::string write(const JsonObject& object) {
  std::string out = "{";
  for (const auto& [name, value] : object.members()) {
    if (out.size() > 1) out += ',';
    out += json_quote(name) + ':';
    switch (value.kind) {
      case JsonScalar::Kind::string: out += json_quote(value.text); break;
      case JsonScalar::Kind::number: out += value.text; break;
      case JsonScalar::Kind::object: out += write(*value.object); break;
    }
  }
  return out + "}";
}

bool same(const JsonObject& a, const JsonObject& b) {
  if (a.members().size() != b.members().size()) return false;
  for (std::size_t i = 0; i < a.members().size(); ++i) {
    const auto& [name_a, value_a] = a.members()[i];
    const auto& [name_b, value_b] = b.members()[i];
    if (name_a != name_b || value_a.kind != value_b.kind || value_a.text != value_b.text) {
      return false;
    }
    if (value_a.kind == JsonScalar::Kind::object &&
        !(value_a.object && value_b.object && same(*value_a.object, *value_b.object))) {
      return false;
    }
  }
  return true;
}

void check_strings(const JsonObject& object, int depth) {
  for (const auto& [name, value] : object.members()) {
    FUZZ_CHECK(is_utf8(name), "a member name is UTF-8");
    FUZZ_CHECK(object.find(name) == &value, "member names are unique");
    if (value.kind == JsonScalar::Kind::object) {
      FUZZ_CHECK(value.object != nullptr, "an object member holds an object");
      FUZZ_CHECK(depth < 1, "nesting is at most what was allowed");
      FUZZ_CHECK(value.text.empty(), "an object member has no text");
      check_strings(*value.object, depth + 1);
    } else {
      FUZZ_CHECK(value.object == nullptr, "a scalar holds no object");
      FUZZ_CHECK(is_utf8(value.text), "a string value is UTF-8");
      if (value.kind == JsonScalar::Kind::number) {
        FUZZ_CHECK(!value.text.empty(), "a number has digits");
      }
    }
  }
}

void check_rejection(const Error& error, std::string_view line) {
  FUZZ_CHECK(error.condition() == Condition::invalid_argument, "bad JSON is invalid_argument");
  FUZZ_CHECK(error.category() == Category::fix_input, "bad JSON is fix_input");
  FUZZ_CHECK(error.rv() == CKR_OK, "bad JSON carries no CK_RV");
  const std::string message = error.message();
  const std::string_view prefix = "invalid_argument in parse: bad JSON at column ";
  FUZZ_CHECK(starts_with(message, prefix), "the message says where");
  std::size_t column = 0;
  for (std::size_t i = prefix.size(); i < message.size() && message[i] >= '0' && message[i] <= '9';
       ++i) {
    column = column * 10 + static_cast<std::size_t>(message[i] - '0');
  }
  FUZZ_CHECK(column >= 1 && column <= line.size() + 1, "the column is inside the line");
}

void check_parse(std::string_view line, int nesting) {
  Result<JsonObject> parsed = parse_json_object(line, nesting);
  if (!parsed) {
    check_rejection(parsed.error(), line);
    return;
  }
  check_strings(*parsed, nesting == 0 ? 1 : 0);
  const std::string written = write(*parsed);
  Result<JsonObject> again = parse_json_object(written, nesting);
  FUZZ_CHECK(again.ok(), "a written object parses");
  FUZZ_CHECK(same(*parsed, *again), "a written object parses to the same members");
  FUZZ_CHECK(write(*again) == written, "writing is stable");
}

void check_quote(std::string_view bytes) {
  const std::string quoted = json_quote(bytes);
  for (char c : quoted) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F,
               "json_quote leaves no raw control character");
  }
  FUZZ_CHECK(is_utf8(quoted), "json_quote gives UTF-8");
  Result<JsonObject> parsed = parse_json_object("{\"v\":" + quoted + "}");
  FUZZ_CHECK(parsed.ok(), "json_quote gives one JSON string");
  const JsonScalar* value = parsed->find("v");
  FUZZ_CHECK(value != nullptr && value->kind == JsonScalar::Kind::string,
             "the quoted value is a string");
  if (is_utf8(bytes)) {
    FUZZ_CHECK(value->text == bytes, "UTF-8 survives json_quote unchanged");
  } else {
    FUZZ_CHECK(contains(value->text, "\xEF\xBF\xBD"), "invalid UTF-8 becomes U+FFFD");
  }
}

}  // namespace
}  // namespace hsmactor::sign

HSMACTOR_FUZZ_ENTRY(line) {
  using namespace hsmactor;
  using namespace hsmactor::sign;
  check_parse(line, 0);
  check_parse(line, 1);
  Result<JsonObject> flat = parse_json_object(line, 0);
  if (flat) {
    Result<JsonObject> nested = parse_json_object(line, 1);
    FUZZ_CHECK(nested.ok() && same(*flat, *nested), "nesting 1 accepts every flat object");
  }
  check_quote(line);
}
