#include "tools/sign/json_lines.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::sign {
namespace {

std::string error_of(std::string_view line) {
  Result<JsonObject> parsed = parse_json_object(line);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().condition() == Condition::invalid_argument);
  CHECK(parsed.error().category() == Category::fix_input);
  return parsed.error().detail();
}

TEST_CASE("a flat object of strings parses in order, with escapes undone") {
  auto parsed = parse_json_object(R"(  {"id": "a\"b", "key":"k\\\/\n", "x" : "\u00e9\ud83d\ude00"} )");
  REQUIRE(parsed.ok());
  const auto& members = parsed->members();
  REQUIRE(members.size() == 3);
  CHECK(members[0].first == "id");
  CHECK(members[0].second.text == "a\"b");
  CHECK(members[1].second.text == "k\\/\n");
  CHECK(members[2].second.text == "\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(parsed->find("key") == &members[1].second);
  CHECK(parsed->find("missing") == nullptr);
}

TEST_CASE("numbers are kept as their literal text") {
  auto parsed = parse_json_object(R"({"id": 42, "b": -0.5e+3, "c": 0})");
  REQUIRE(parsed.ok());
  CHECK(parsed->find("id")->kind == JsonScalar::Kind::number);
  CHECK(parsed->find("id")->text == "42");
  CHECK(parsed->find("b")->text == "-0.5e+3");
  CHECK(parsed->find("c")->text == "0");
}

TEST_CASE("numbers of any size keep their exact text") {
  std::string huge(400, '9');
  std::string line = R"({"a": -0, "b": 18446744073709551616, "c": -9223372036854775809, )"
                     R"("d": 1e999, "e": -1E-999, "f": )" + huge + "}";
  auto parsed = parse_json_object(line);
  REQUIRE(parsed.ok());
  CHECK(parsed->find("a")->text == "-0");
  CHECK(parsed->find("b")->text == "18446744073709551616");
  CHECK(parsed->find("c")->text == "-9223372036854775809");
  CHECK(parsed->find("d")->text == "1e999");
  CHECK(parsed->find("e")->text == "-1E-999");
  CHECK(parsed->find("f")->text == huge);
  CHECK(parse_json_object(R"({"a": 18446744073709551615, "b": -9223372036854775808})")
            ->find("b")
            ->text == "-9223372036854775808");
}

TEST_CASE("a line with more than 16 numbers beyond a double is refused") {
  std::string line = "{";
  for (int i = 0; i < 17; ++i) line += (i ? ", \"n" : "\"n") + std::to_string(i) + "\": 1e999";
  CHECK(error_of(line + "}").find("more than 16 numbers beyond the range of a double") !=
        std::string::npos);
  line.resize(line.rfind(','));
  CHECK(parse_json_object(line + "}").ok());
}

TEST_CASE("the empty object and UTF-8 outside escapes are accepted") {
  CHECK(parse_json_object("{}").ok());
  auto parsed = parse_json_object("{\"k\": \"caf\xc3\xa9\"}");
  REQUIRE(parsed.ok());
  CHECK(parsed->find("k")->text == "caf\xc3\xa9");
}

TEST_CASE("anything but a flat object of strings and numbers is rejected with its column") {
  CHECK(error_of("") == "bad JSON at column 1: expected '{' (a record is one JSON object)");
  CHECK(error_of("[1]").find("expected '{'") != std::string::npos);
  CHECK(error_of(R"({"a": {"b": "c"}})").find("member \"a\" must be a string") != std::string::npos);
  CHECK(error_of(R"({"a": ["x"]})").find("must be a string") != std::string::npos);
  CHECK(error_of(R"({"a": true})").find("must be a string") != std::string::npos);
  CHECK(error_of(R"({"a": null})").find("must be a string") != std::string::npos);
  CHECK(error_of(R"({"a": "b"} x)") == "bad JSON at column 12: unexpected text after the object");
  CHECK(error_of(R"({"a": "b",})").find("expected a member name") != std::string::npos);
  CHECK(error_of(R"({"a": "b" "c": "d"})").find("expected ',' or '}'") != std::string::npos);
  CHECK(error_of(R"({a: "b"})").find("expected a member name") != std::string::npos);
  CHECK(error_of(R"({"a" "b"})").find("expected ':'") != std::string::npos);
  CHECK(error_of(R"({"a": "b)").find("unterminated string") != std::string::npos);
  CHECK(error_of(R"({"a": "b"})" "}").find("unexpected text") != std::string::npos);
  CHECK(error_of(std::string_view("{}\0{}", 5)) ==
        "bad JSON at column 3: unexpected text after the object");
  CHECK(error_of(R"({"a": 01})").find("expected ',' or '}'") != std::string::npos);
  CHECK(error_of(R"({"a": 1.})").find("digit after '.'") != std::string::npos);
  CHECK(error_of(R"({"a": -})").find("expected a digit") != std::string::npos);
  CHECK(error_of(R"({"a": 1e})").find("exponent") != std::string::npos);
  CHECK(error_of(R"({"a": })").find("expected a value") != std::string::npos);
}

TEST_CASE("a duplicate member name is rejected at the duplicate") {
  CHECK(error_of(R"({"id": "1", "id": "2"})") ==
        "bad JSON at column 13: duplicate member \"id\"");
  CHECK(error_of(R"({"a\u0022\\": "1", "a\"\\": 2})") ==
        "bad JSON at column 20: duplicate member \"a\\\"\\\\\"");
  CHECK_FALSE(parse_json_object(R"({"e": {"x": "1", "x": "2"}})", 1).ok());
}

TEST_CASE("a byte order mark or a bare value is not a record") {
  CHECK(error_of("\xef\xbb\xbf{}") ==
        "bad JSON at column 1: expected '{' (a record is one JSON object)");
  CHECK(error_of("  \"a\"") == "bad JSON at column 3: expected '{' (a record is one JSON object)");
}

TEST_CASE("bad escapes, raw control characters and invalid UTF-8 are rejected") {
  CHECK(error_of(R"({"a": "\x"})").find("unknown escape") != std::string::npos);
  CHECK(error_of(R"({"a": "\u12"})").find("four hex digits") != std::string::npos);
  CHECK(error_of(R"({"a": "\udc00"})").find("lone low surrogate") != std::string::npos);
  CHECK(error_of(R"({"a": "\ud83d"})").find("without its low half") != std::string::npos);
  CHECK(error_of(R"({"a": "\ud83d\u0041"})").find("without its low half") != std::string::npos);
  CHECK(error_of("{\"a\": \"tab\there\"}").find("control character") != std::string::npos);
  CHECK(error_of("{\"a\": \"\xff\"}").find("invalid UTF-8") != std::string::npos);
  CHECK(error_of("{\"a\": \"\xc0\xaf\"}").find("invalid UTF-8") != std::string::npos);  // overlong
  CHECK(error_of("{\"a\": \"\xed\xa0\x80\"}").find("invalid UTF-8") != std::string::npos);  // surrogate
  CHECK(error_of("{\"a\": \"\xe2\x82\"}").find("invalid UTF-8") != std::string::npos);  // cut short
}

TEST_CASE("nested objects are read only as deep as the caller allows") {
  std::string answer = R"({"id": "1", "error": {"code": "CKR_X", "n": 2}})";
  CHECK(error_of(answer).find("member \"error\" must be a string") != std::string::npos);
  auto parsed = parse_json_object(answer, 1);
  REQUIRE(parsed.ok());
  const JsonScalar* error = parsed->find("error");
  REQUIRE(error->kind == JsonScalar::Kind::object);
  CHECK(error->object->find("code")->text == "CKR_X");
  CHECK(error->object->find("n")->text == "2");
  CHECK_FALSE(parse_json_object(R"({"a": {"b": {"c": "d"}}})", 1).ok());
  CHECK_FALSE(parse_json_object(R"({"a": {"b": "c"})", 1).ok());
  CHECK(parse_json_object(R"({"a": {}})", 1).ok());
}

TEST_CASE("json_quote escapes what JSON requires and replaces invalid UTF-8") {
  CHECK(json_quote("plain") == "\"plain\"");
  CHECK(json_quote("a\"b\\c\n\t\r\b\f") == R"("a\"b\\c\n\t\r\b\f")");
  CHECK(json_quote(std::string_view("\x01\x1f\x7f", 3)) == R"("\u0001\u001f\u007f")");
  CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(json_quote("bad\xff") == "\"bad\xef\xbf\xbd\"");  // U+FFFD
}

TEST_CASE("a written line parses back to what was written") {
  std::string nasty = "quote\" backslash\\ newline\n \xf0\x9f\x98\x80";
  JsonLine inner;
  inner.add("code", "CKR_KEY_HANDLE_INVALID");
  std::string line = JsonLine().add("id", nasty).add_number("line", 7).str();
  CHECK(line.find('\n') == std::string::npos);
  auto parsed = parse_json_object(line);
  REQUIRE(parsed.ok());
  CHECK(parsed->find("id")->text == nasty);
  CHECK(parsed->find("line")->text == "7");
  CHECK(JsonLine().add("id", "1").add_object("error", inner).str() ==
        R"({"id":"1","error":{"code":"CKR_KEY_HANDLE_INVALID"}})");
}

}  // namespace
}  // namespace hsmactor::sign
