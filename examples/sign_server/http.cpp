#include "examples/sign_server/http.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

namespace hsmactor::sign_server {
namespace {

constexpr std::string_view kCrlf = "\r\n";

// RFC 9110 tchar.
bool is_token_char(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

// Field values: visible ASCII, space, tab and obs-text; never CR, LF or NUL.
bool is_field_value(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

// Request targets: visible ASCII only.
bool is_target(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Returns whether the comma-separated list `value` holds `option`.
bool has_option(std::string_view value, std::string_view option) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), option)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

ParseResult fail(int status, std::string reason) {
  ParseResult result;
  result.status = ParseStatus::error;
  result.error_status = status;
  result.error_reason = std::move(reason);
  return result;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& field : headers) {
    if (iequals(field.first, name)) return &field.second;
  }
  return nullptr;
}

ParseResult parse_request(std::string_view buffer, const Limits& limits) {
  // RFC 9112 2.2: a server SHOULD ignore empty lines before the request line
  // (some clients send one after a POST body).
  std::size_t start = 0;
  while (buffer.substr(start, 2) == kCrlf) start += 2;
  std::string_view rest = buffer.substr(start);

  std::size_t head_end = rest.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (rest.size() > limits.max_header_bytes) return fail(431, "header section too large");
    // A bare LF anywhere means the sender does not speak strict HTTP: say so
    // now instead of waiting for a CRLF CRLF that never comes.
    std::size_t lf = rest.find('\n');
    if (lf != std::string_view::npos && (lf == 0 || rest[lf - 1] != '\r')) {
      return fail(400, "lines must end with CRLF");
    }
    return ParseResult{};
  }
  if (head_end + 4 > limits.max_header_bytes) return fail(431, "header section too large");
  std::string_view head = rest.substr(0, head_end + 2);  // each line keeps its CRLF

  ParseResult result;
  Request& request = result.request;

  // Request line.
  std::size_t line_end = head.find(kCrlf);
  std::string_view line = head.substr(0, line_end);
  head.remove_prefix(line_end + 2);
  if (line.find('\n') != std::string_view::npos) return fail(400, "lines must end with CRLF");
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method");
  if (!is_target(target)) return fail(400, "malformed request target");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(version[5])) ||
      !std::isdigit(static_cast<unsigned char>(version[7]))) {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1') return fail(505, "only HTTP/1.x is served");
  request.method = std::string(method);
  request.target = std::string(target);
  request.minor_version = version[7] - '0';

  // Header fields.
  while (!head.empty()) {
    line_end = head.find(kCrlf);
    line = head.substr(0, line_end);
    head.remove_prefix(line_end + 2);
    if (line.find('\n') != std::string_view::npos) return fail(400, "lines must end with CRLF");
    if (line.front() == ' ' || line.front() == '\t') return fail(400, "obsolete line folding");
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header field without colon");
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (!is_token(name)) return fail(400, "malformed header field name");
    if (!is_field_value(value)) return fail(400, "malformed header field value");
    if (request.headers.size() == limits.max_header_count) {
      return fail(431, "too many header fields");
    }
    request.headers.emplace_back(std::string(name), std::string(value));
  }

  if (request.minor_version >= 1 && request.header("Host") == nullptr) {
    return fail(400, "HTTP/1.1 requests need a Host header");
  }
  if (request.header("Transfer-Encoding") != nullptr) {
    return fail(501, "Transfer-Encoding is not supported; send Content-Length");
  }

  // Content-Length: every occurrence must agree (RFC 9112 6.3).
  std::size_t body_length = 0;
  bool have_length = false;
  for (const auto& field : request.headers) {
    if (!iequals(field.first, "Content-Length")) continue;
    const std::string& value = field.second;
    std::uint64_t parsed = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    bool all_digits = !value.empty() && end == value.data() + value.size();
    if (all_digits && error == std::errc::result_out_of_range) return fail(413, "body too large");
    if (!all_digits || error != std::errc()) return fail(400, "malformed Content-Length");
    if (have_length && parsed != body_length) return fail(400, "conflicting Content-Length");
    if (parsed > limits.max_body_bytes) return fail(413, "body too large");
    body_length = static_cast<std::size_t>(parsed);
    have_length = true;
  }

  const std::string* connection = request.header("Connection");
  if (request.minor_version == 0) {
    request.keep_alive = connection != nullptr && has_option(*connection, "keep-alive");
  } else {
    request.keep_alive = connection == nullptr || !has_option(*connection, "close");
  }

  std::size_t body_start = start + head_end + 4;
  if (buffer.size() - body_start < body_length) return ParseResult{};
  request.body = std::string(buffer.substr(body_start, body_length));
  result.status = ParseStatus::complete;
  result.consumed = body_start + body_length;
  return result;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string format_response(int status, std::string_view content_type, std::string_view body,
                            bool keep_alive, const std::vector<std::string>& extra_headers) {
  std::string out;
  out.reserve(128 + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
  for (const std::string& line : extra_headers) {
    out += line;
    out += kCrlf;
  }
  out += kCrlf;
  out += body;
  return out;
}

}  // namespace hsmactor::sign_server
