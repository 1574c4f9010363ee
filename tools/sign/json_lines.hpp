// The small, strict JSON that hsmactor-sign reads and writes, one object a line.
//
// Input records are flat objects whose values are strings (numbers are kept as
// their literal text, for ids). Anything else (nested objects, arrays, true,
// false, null, duplicate names, trailing text, invalid UTF-8) is an error for
// that line, never for the stream. Output lines are built with JsonLine; a
// reader of answers allows one level of nesting for their "error" object.
// nlohmann-json does the lexing, UTF-8 checks and escaping; this layer adds
// the record rules and keeps every number's text exactly as written, however
// large (a line may hold up to 16 beyond a double's range).
//
// Usage:
//   Result<JsonObject> record = parse_json_object(R"({"id": "7", "key": "ec256"})");
//   if (record) use(record->find("key")->text);
//   std::string line = JsonLine().add("id", "7").add("signature", "MEUC...").str();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pkcs11/error.hpp"

namespace hsmactor::sign {

class JsonObject;

/// One member value: a string (unescaped), a number (its literal text), or,
/// only where the caller allows nesting, an object.
struct JsonScalar {
  enum class Kind : std::uint8_t { string, number, object };
  Kind kind = Kind::string;
  std::string text;
  std::shared_ptr<const JsonObject> object;
};

/// The members of one flat JSON object, in input order, names unique.
class JsonObject {
 public:
  /// Returns the value named `name`, or nullptr when there is none.
  const JsonScalar* find(std::string_view name) const;

  /// Appends a member; returns false (and changes nothing) if `name` is taken.
  bool add(std::string name, JsonScalar value);

  const std::vector<std::pair<std::string, JsonScalar>>& members() const { return members_; }

 private:
  std::vector<std::pair<std::string, JsonScalar>> members_;
};

/// Returns the object `line` holds, or an invalid_argument Error saying where
/// and why it is not a JSON object of string and number values. Records are
/// flat (`nesting` 0); reading answers, which carry an "error" object, takes 1.
Result<JsonObject> parse_json_object(std::string_view line, int nesting = 0);

/// Returns `text` as a quoted JSON string (control characters escaped; UTF-8
/// passes through; invalid UTF-8 bytes become U+FFFD so the output stays JSON).
std::string json_quote(std::string_view text);

/// Builds one JSON object on one line, members in the order added.
class JsonLine {
 public:
  /// Adds a string member.
  JsonLine& add(std::string_view name, std::string_view value);
  /// Adds an unsigned number member.
  JsonLine& add_number(std::string_view name, std::uint64_t value);
  /// Adds a nested object member.
  JsonLine& add_object(std::string_view name, const JsonLine& value);

  /// Returns the object's text, without a newline.
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void add_name(std::string_view name);
  std::string body_;
};

}  // namespace hsmactor::sign
