// A small, strict HTTP/1.1 request parser and response writer for the
// signing server (Beast needs Boost.Asio; this server uses standalone Asio).
//
// Strict means: CRLF line ends only; a request line of exactly
// `METHOD SP target SP HTTP/1.x`; header names made of token characters with
// no space before the colon; no line folding; a Host header in HTTP/1.1; a
// body only by Content-Length (one value, digits only). Anything else is
// refused with a status and the connection is closed after the answer:
//   400 malformed, 413 body over the limit, 431 header section over the limit,
//   501 Transfer-Encoding (chunked bodies are not supported), 505 not HTTP/1.x.
// Keep-alive follows the version: HTTP/1.1 keeps the connection unless
// `Connection: close`, HTTP/1.0 closes it unless `Connection: keep-alive`.
// Pipelined requests are fine: parse_request reports how many bytes it used.
//
// Usage:
//   ParseResult parsed = parse_request(buffer, limits);
//   if (parsed.status == ParseStatus::complete) { handle(parsed.request); buffer.erase(0, parsed.consumed); }
//   write(format_response(200, "text/plain", "ok\n", parsed.request.keep_alive));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hsmactor::sign_server {

/// Limits on one request.
struct Limits {
  /// Bytes from the request line to the blank line that ends the headers.
  std::size_t max_header_bytes = 8 * 1024;
  /// Header fields per request.
  std::size_t max_header_count = 64;
  /// Bytes of body (Content-Length).
  std::size_t max_body_bytes = 64 * 1024;
};

/// One parsed request.
struct Request {
  std::string method;
  std::string target;
  int minor_version = 1;  ///< HTTP/1.<minor_version>
  /// Header fields in order, names as sent (compare case-insensitively).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;

  /// Returns the first value of header `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

enum class ParseStatus { incomplete, complete, error };

/// What parse_request found at the start of the buffer.
struct ParseResult {
  ParseStatus status = ParseStatus::incomplete;
  Request request;           ///< set when complete
  std::size_t consumed = 0;  ///< bytes of the buffer the request used, when complete
  int error_status = 0;      ///< 400, 413, 431, 501 or 505, when error
  std::string error_reason;  ///< a short text for the answer's body, when error
};

/// Parses the request at the start of `buffer`: complete (with the bytes it
/// used), incomplete (read more), or an error to answer before closing.
ParseResult parse_request(std::string_view buffer, const Limits& limits);

/// Returns the reason phrase of `status` ("OK", "Not Found", ...).
const char* reason_phrase(int status);

/// Returns a full HTTP/1.1 response; `extra_headers` are complete lines
/// without their CRLF ("Allow: POST").
std::string format_response(int status, std::string_view content_type, std::string_view body,
                            bool keep_alive,
                            const std::vector<std::string>& extra_headers = {});

}  // namespace hsmactor::sign_server
