#include "tools/sign/json_lines.hpp"

#include <cstdio>

namespace hsmactor::sign {
namespace {

/// Returns the length of the well-formed UTF-8 sequence starting at `pos`
/// (1 to 4), or 0 when the bytes there are not one (overlong forms,
/// surrogates and code points above U+10FFFF are not).
std::size_t utf8_length(std::string_view text, std::size_t pos) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  std::uint32_t code = 0;
  std::uint32_t smallest = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code = lead & 0x07, smallest = 0x10000;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(pos + i) & 0x3F);
  }
  if (code < smallest || code > 0x10FFFF) return 0;
  if (code >= 0xD800 && code <= 0xDFFF) return 0;
  return length;
}

void append_utf8(std::string& out, std::uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// A recursive-descent reader of one flat object; `error_` holds the first
/// failure and every step after it is a no-op returning false.
class Parser {
 public:
  Parser(std::string_view text, int nesting) : text_(text), nesting_(nesting) {}

  Result<JsonObject> top() {
    skip_space();
    if (peek() != '{') return fail("expected '{' (a record is one JSON object)");
    Result<JsonObject> result = object(0);
    if (!result) return result;
    skip_space();
    if (pos_ != text_.size()) return fail("unexpected text after the object");
    return result;
  }

 private:
  Result<JsonObject> object(int depth) {
    JsonObject result;
    ++pos_;  // the opening brace
    skip_space();
    if (peek() == '}') {
      ++pos_;
    } else {
      while (true) {
        std::size_t name_at = pos_;
        std::string name;
        if (peek() != '"') return fail("expected a member name in double quotes");
        if (!string(name)) return failure();
        skip_space();
        if (!expect(':', "':' after the member name")) return failure();
        skip_space();
        JsonScalar value;
        if (!scalar(name, depth, value)) return failure();
        if (!result.add(name, std::move(value))) {
          pos_ = name_at;
          return fail("duplicate member \"" + printable(name) + "\"");
        }
        skip_space();
        if (peek() == ',') {
          ++pos_;
          skip_space();
          continue;
        }
        if (!expect('}', "',' or '}' after a member")) return failure();
        break;
      }
    }
    return result;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\r' || peek() == '\n')) {
      ++pos_;
    }
  }

  bool expect(char c, const char* what) {
    if (peek() == c) {
      ++pos_;
      return true;
    }
    fail(std::string("expected ") + what);
    return false;
  }

  Error fail(const std::string& why) {
    error_ = Error::make(Condition::invalid_argument,
                         "bad JSON at column " + std::to_string(pos_ + 1) + ": " + why,
                         "parse");
    return error_;
  }

  Error failure() const { return error_; }

  bool scalar(const std::string& name, int depth, JsonScalar& value) {
    char c = peek();
    if (c == '{' && depth < nesting_) {
      Result<JsonObject> inner = object(depth + 1);
      if (!inner) return false;
      value.kind = JsonScalar::Kind::object;
      value.object = std::make_shared<const JsonObject>(std::move(*inner));
      return true;
    }
    if (c == '"') {
      value.kind = JsonScalar::Kind::string;
      return string(value.text);
    }
    if (c == '-' || is_digit(c)) {
      value.kind = JsonScalar::Kind::number;
      return number(value.text);
    }
    if (at_end()) {
      fail("expected a value");
    } else if (c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n') {
      fail("member \"" + printable(name) + "\" must be a string (objects, arrays, true, "
           "false and null are not accepted)");
    } else {
      fail("expected a value");
    }
    return false;
  }

  bool number(std::string& out) {
    std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      fail("expected a digit");
      return false;
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) {
        fail("expected a digit after '.'");
        return false;
      }
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) {
        fail("expected a digit in the exponent");
        return false;
      }
      while (is_digit(peek())) ++pos_;
    }
    out.assign(text_.substr(start, pos_ - start));
    return true;
  }

  bool hex4(std::uint32_t& code) {
    if (pos_ + 4 > text_.size()) {
      fail("\\u needs four hex digits");
      return false;
    }
    code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        --pos_;
        fail("\\u needs four hex digits");
        return false;
      }
      code = (code << 4) | digit;
    }
    return true;
  }

  bool escape(std::string& out) {
    char c = peek();
    ++pos_;
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default:
        --pos_;
        fail("unknown escape");
        return false;
    }
    std::uint32_t code = 0;
    if (!hex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) {
      fail("\\u escape is a lone low surrogate");
      return false;
    }
    if (code >= 0xD800 && code <= 0xDBFF) {
      // A high surrogate is only half a code point: the low half must follow.
      std::uint32_t low = 0;
      if (text_.substr(pos_, 2) != "\\u") {
        fail("\\u escape is a high surrogate without its low half");
        return false;
      }
      pos_ += 2;
      if (!hex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) {
        fail("\\u escape is a high surrogate without its low half");
        return false;
      }
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, code);
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // the opening quote
    out.clear();
    while (true) {
      if (at_end()) {
        fail("unterminated string");
        return false;
      }
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        ++pos_;
        if (!escape(out)) return false;
        continue;
      }
      if (c < 0x20) {
        fail("control character in a string (escape it)");
        return false;
      }
      std::size_t length = utf8_length(text_, pos_);
      if (length == 0) {
        fail("invalid UTF-8 in a string");
        return false;
      }
      out.append(text_.substr(pos_, length));
      pos_ += length;
    }
  }

  // Member names go into error messages; keep them short and printable.
  static std::string printable(const std::string& name) {
    std::string quoted = json_quote(name.size() > 40 ? name.substr(0, 40) + "..." : name);
    return quoted.substr(1, quoted.size() - 2);
  }

  std::string_view text_;
  int nesting_ = 0;
  std::size_t pos_ = 0;
  Error error_;
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
  return Parser(line, nesting).top();
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  std::size_t pos = 0;
  while (pos < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[pos]);
    switch (c) {
      case '"': out += "\\\""; ++pos; continue;
      case '\\': out += "\\\\"; ++pos; continue;
      case '\b': out += "\\b"; ++pos; continue;
      case '\f': out += "\\f"; ++pos; continue;
      case '\n': out += "\\n"; ++pos; continue;
      case '\r': out += "\\r"; ++pos; continue;
      case '\t': out += "\\t"; ++pos; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
      ++pos;
      continue;
    }
    std::size_t length = utf8_length(text, pos);
    if (length == 0) {
      out += "\\ufffd";
      ++pos;
      continue;
    }
    out.append(text.substr(pos, length));
    pos += length;
  }
  out += '"';
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
