#include "tools/sign/json_lines.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

namespace hsmactor::sign {
namespace {

using Json = nlohmann::json;

/// How many numbers beyond a double's range one line may hold; each costs
/// one more pass over the line (see parse_json_object).
constexpr std::size_t kMaxWideNumbers = 16;

Error bad_json(std::size_t column, const std::string& why) {
  return Error::make(Condition::invalid_argument,
                     "bad JSON at column " + std::to_string(column) + ": " + why, "parse");
}

// Member names go into error messages; keep them short and printable.
std::string printable(const std::string& name) {
  std::string quoted = json_quote(name.size() > 40 ? name.substr(0, 40) + "..." : name);
  return quoted.substr(1, quoted.size() - 2);
}

struct Phrase {
  std::string_view theirs;
  const char* ours;
};

// nlohmann-json 3.11's lexer messages (by prefix), in the words hsmactor-sign
// has always answered with; its own wording names its internals ("string
// literal", "U+0009 (HT)") rather than what to fix.
constexpr Phrase kLexerPhrases[] = {
    {"invalid string: missing closing quote", "unterminated string"},
    {"invalid string: ill-formed UTF-8 byte", "invalid UTF-8 in a string"},
    {"invalid string: control character", "control character in a string (escape it)"},
    {"invalid string: forbidden character after backslash", "unknown escape"},
    {"invalid string: '\\u' must be followed by 4 hex digits", "\\u needs four hex digits"},
    {"invalid string: surrogate U+DC00..U+DFFF must follow", "\\u escape is a lone low surrogate"},
    {"invalid string: surrogate U+D800..U+DBFF must be followed",
     "\\u escape is a high surrogate without its low half"},
    {"invalid number; expected digit after '.'", "expected a digit after '.'"},
    {"invalid number; expected digit after '-'", "expected a digit"},
    {"invalid number; expected '+', '-', or digit after exponent",
     "expected a digit in the exponent"},
    {"invalid number; expected digit after exponent sign", "expected a digit in the exponent"},
};

// What the parser was looking for, by the context its messages name.
constexpr Phrase kContextPhrases[] = {
    {"object key", "expected a member name in double quotes"},
    {"object separator", "expected ':' after the member name"},
    {"object", "expected ',' or '}' after a member"},
    {"value", "expected a value"},
};

/// Returns why nlohmann-json rejected a line, from its exception text
/// ("... syntax error while parsing CONTEXT - DETAIL"); a message it does not
/// know is passed on as written, less the input it quotes.
std::string why_rejected(std::string_view what) {
  constexpr std::string_view kSyntax = "syntax error while parsing ";
  std::size_t syntax = what.find(kSyntax);
  std::size_t dash = what.find(" - ", syntax);
  if (syntax == std::string_view::npos || dash == std::string_view::npos) {
    std::size_t tag = what.find("] ");
    return std::string(tag == std::string_view::npos ? what : what.substr(tag + 2));
  }
  std::string_view context = what.substr(syntax + kSyntax.size(), dash - syntax - kSyntax.size());
  std::string_view detail = what.substr(dash + 3);
  std::size_t last_read = detail.find("; last read: ");
  if (last_read != std::string_view::npos) {
    std::string_view lexer = detail.substr(0, last_read);
    // An unknown word where a token should be: say which token was wanted.
    if (lexer != "invalid literal") {
      for (const Phrase& phrase : kLexerPhrases) {
        if (lexer.substr(0, phrase.theirs.size()) == phrase.theirs) return phrase.ours;
      }
      return std::string(lexer);
    }
  }
  for (const Phrase& phrase : kContextPhrases) {
    if (context == phrase.theirs) return phrase.ours;
  }
  return std::string(detail.substr(0, last_read));
}

/// A `const char*` that records how far the parser has read: its SAX events
/// carry no position, and a duplicate name or a nested value needs a column.
class TrackedChar {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackedChar(const char* at, const char** reached) : at_(at), reached_(reached) {}

  reference operator*() const { return *at_; }
  TrackedChar& operator++() {
    *reached_ = ++at_;
    return *this;
  }
  TrackedChar operator++(int) {
    TrackedChar before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackedChar& other) const { return at_ == other.at_; }
  bool operator!=(const TrackedChar& other) const { return at_ != other.at_; }

 private:
  const char* at_;
  const char** reached_;
};

/// A number too large for a double, which nlohmann-json refuses: the `index`th
/// number of the line, `length` bytes from byte `start`.
struct WideNumber {
  std::size_t index = 0;
  std::size_t start = 0;
  std::size_t length = 0;
};

/// Builds the JsonObject from nlohmann-json's SAX events, refusing what a
/// record may not hold as it arrives; keeps the first reason.
class ObjectReader {
 public:
  /// Reads `line` (or its patched copy, which starts at `begin`; the parser
  /// has read up to `reached`).
  ObjectReader(std::string_view line, const char* begin, const char* const& reached, int nesting,
               const std::map<std::size_t, std::string>& wide_numbers)
      : line_(line),
        begin_(begin),
        reached_(reached),
        nesting_(nesting),
        wide_numbers_(wide_numbers) {}

  bool null() { return not_a_string(4); }
  bool boolean(bool value) { return not_a_string(value ? 4 : 5); }
  bool number_integer(Json::number_integer_t value) {
    // Only a literal with a minus sign arrives here, so 0 was written "-0".
    return number(value == 0 ? "-0" : std::to_string(value));
  }
  bool number_unsigned(Json::number_unsigned_t value) { return number(std::to_string(value)); }
  bool number_float(Json::number_float_t, const std::string& literal) {
    std::string text = literal;
    // The lexer writes the locale's decimal point into its copy of the literal.
    for (char& c : text) {
      bool kept = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E';
      if (!kept) c = '.';
    }
    return number(std::move(text));
  }
  bool string(std::string& value) {
    return add(JsonScalar{JsonScalar::Kind::string, std::move(value), nullptr});
  }
  bool binary(Json::binary_t&) { return false; }  // JSON text has no binary values

  bool start_object(std::size_t) {
    // parse_json_object made sure the line starts with the record's brace.
    if (open_.empty() || static_cast<int>(open_.size()) - 1 < nesting_) {
      if (!open_.empty()) names_.push_back(std::move(name_));
      open_.emplace_back();
      return true;
    }
    return not_a_string(1);
  }
  bool key(std::string& name) {
    if (open_.back().find(name) != nullptr) {
      return fail(column_of_name(), "duplicate member \"" + printable(name) + "\"");
    }
    name_ = std::move(name);
    return true;
  }
  bool end_object() {
    JsonObject object = std::move(open_.back());
    open_.pop_back();
    if (open_.empty()) {
      record_ = std::move(object);
      closed_at_ = reached();
      return true;
    }
    name_ = std::move(names_.back());
    names_.pop_back();
    return add(JsonScalar{JsonScalar::Kind::object, "",
                          std::make_shared<const JsonObject>(std::move(object))});
  }
  bool start_array(std::size_t) { return not_a_string(1); }
  bool end_array() { return false; }

  bool parse_error(std::size_t position, const std::string& token, const Json::exception& error) {
    if (record_) return trailing_text();
    constexpr int kNumberOverflow = 406;
    if (error.id == kNumberOverflow && token.size() >= 3 && position >= token.size()) {
      wide_ = WideNumber{numbers_, position - token.size(), token.size()};
      return false;
    }
    // The position counts the offending byte itself, so it is its column.
    std::size_t column = std::min(std::max<std::size_t>(position, 1), line_.size() + 1);
    // A word where a value goes: if it starts like true, false or null, the
    // member is most likely meant to hold one, which a record may not.
    std::string_view what = error.what();
    if (what.find("while parsing value - invalid literal") != std::string_view::npos) {
      std::size_t start = column - 1;  // the byte that broke the word, or the end
      auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
      while (start > 0 && letter(line_[start - 1])) --start;
      char first = start < line_.size() ? line_[start] : '\0';
      if (first == 't' || first == 'f' || first == 'n') return not_a_string_at(start + 1);
    }
    return fail(column, why_rejected(what));
  }

  /// Returns the record, or why the line is not one.
  Result<JsonObject> result() {
    // The lexer takes a NUL byte for the end of the input: what follows is
    // still text after the object.
    if (record_ && !error_) trailing_text();
    if (error_) return *error_;
    if (!record_) return bad_json(line_.size() + 1, "expected '}' after the last member");
    return std::move(*record_);
  }
  const std::optional<WideNumber>& wide_number() const { return wide_; }

 private:
  std::size_t reached() const { return static_cast<std::size_t>(reached_ - begin_); }

  bool fail(std::size_t column, const std::string& why) {
    if (!error_) error_ = bad_json(column, why);
    return false;
  }

  bool add(JsonScalar value) {
    open_.back().add(name_, std::move(value));  // key() has refused a duplicate
    return true;
  }

  bool number(std::string text) {
    auto wide = wide_numbers_.find(numbers_++);
    if (wide != wide_numbers_.end()) text = wide->second;
    return add(JsonScalar{JsonScalar::Kind::number, std::move(text), nullptr});
  }

  /// Refuses the value that ends where the parser is and is `length` long.
  bool not_a_string(std::size_t length) { return not_a_string_at(reached() - length + 1); }

  bool not_a_string_at(std::size_t column) {
    return fail(column, "member \"" + printable(name_) +
                            "\" must be a string (objects, arrays, true, false and null are "
                            "not accepted)");
  }

  /// Refuses anything but white space after the record's closing brace.
  bool trailing_text() {
    std::size_t next = line_.find_first_not_of(" \t\r\n", closed_at_);
    if (next == std::string_view::npos) return true;
    return fail(next + 1, "unexpected text after the object");
  }

  /// Returns the column of the opening quote of the name just read: the
  /// nearest quote before its closing one not escaped by a backslash.
  std::size_t column_of_name() const {
    std::size_t at = reached() - 1;
    while (at > 0) {
      --at;
      if (line_[at] != '"') continue;
      std::size_t backslashes = 0;
      while (backslashes < at && line_[at - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return at + 1;
    }
    return 1;
  }

  std::string_view line_;
  const char* begin_;
  const char* const& reached_;
  int nesting_;
  const std::map<std::size_t, std::string>& wide_numbers_;
  std::vector<JsonObject> open_;
  std::vector<std::string> names_;  // of the open nested objects, in their parents
  std::string name_;                // of the member whose value comes next
  std::size_t numbers_ = 0;
  std::optional<JsonObject> record_;
  std::size_t closed_at_ = 0;
  std::optional<Error> error_;
  std::optional<WideNumber> wide_;
};

}  // namespace

const JsonScalar* JsonObject::find(std::string_view name) const {
  for (const auto& member : members_) {
    if (member.first == name) return &member.second;
  }
  return nullptr;
}

bool JsonObject::add(std::string name, JsonScalar value) {
  if (find(name) != nullptr) return false;
  members_.emplace_back(std::move(name), std::move(value));
  return true;
}

Result<JsonObject> parse_json_object(std::string_view line, int nesting) {
  // nlohmann-json would read any JSON value and skip a byte order mark.
  std::size_t first = line.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || line[first] != '{') {
    return bad_json(std::min(first, line.size()) + 1, "expected '{' (a record is one JSON object)");
  }
  // nlohmann-json refuses a number beyond a double's range, though its text
  // is all a record keeps. Each such number is replaced by a zero of the same
  // length ("0e000") and the line read again, the zero's text taken back from
  // the line: columns stay right and every literal comes out as written.
  std::string patched;
  std::map<std::size_t, std::string> wide_numbers;
  while (true) {
    std::string_view text = wide_numbers.empty() ? line : std::string_view(patched);
    const char* reached = text.data();
    ObjectReader reader(line, text.data(), reached, nesting, wide_numbers);
    Json::sax_parse(TrackedChar(text.data(), &reached),
                    TrackedChar(text.data() + text.size(), &reached), &reader);
    const std::optional<WideNumber>& wide = reader.wide_number();
    if (!wide) return reader.result();
    if (wide_numbers.size() == kMaxWideNumbers) {
      return bad_json(wide->start + 1, "more than " + std::to_string(kMaxWideNumbers) +
                                           " numbers beyond the range of a double");
    }
    if (patched.empty()) patched.assign(line);
    wide_numbers[wide->index] = std::string(line.substr(wide->start, wide->length));
    patched.replace(wide->start, wide->length, "0e" + std::string(wide->length - 2, '0'));
  }
}

std::string json_quote(std::string_view text) {
  std::string quoted =
      Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
  // nlohmann-json leaves DEL raw; escape it so no control character reaches a terminal.
  if (quoted.find('\x7f') == std::string::npos) return quoted;
  std::string out;
  out.reserve(quoted.size() + 8);
  for (char c : quoted) {
    if (c == '\x7f') {
      out += "\\u007f";
    } else {
      out += c;
    }
  }
  return out;
}

void JsonLine::add_name(std::string_view name) {
  if (!body_.empty()) body_ += ',';
  body_ += json_quote(name);
  body_ += ':';
}

JsonLine& JsonLine::add(std::string_view name, std::string_view value) {
  add_name(name);
  body_ += json_quote(value);
  return *this;
}

JsonLine& JsonLine::add_number(std::string_view name, std::uint64_t value) {
  add_name(name);
  body_ += std::to_string(value);
  return *this;
}

JsonLine& JsonLine::add_object(std::string_view name, const JsonLine& value) {
  add_name(name);
  body_ += value.str();
  return *this;
}

}  // namespace hsmactor::sign
