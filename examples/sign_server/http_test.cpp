#include "examples/sign_server/http.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace hsmactor::sign_server {
namespace {

const Limits kLimits{};

ParseResult parse(const std::string& text) { return parse_request(text, kLimits); }

int error_of(const std::string& text) {
  ParseResult result = parse(text);
  return result.status == ParseStatus::error ? result.error_status : 0;
}

TEST_CASE("a POST with a body parses with the bytes it used") {
  std::string text = "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET";
  ParseResult result = parse(text);
  REQUIRE(result.status == ParseStatus::complete);
  CHECK(result.request.method == "POST");
  CHECK(result.request.target == "/sign");
  CHECK(result.request.body == "hello");
  CHECK(result.request.keep_alive);
  CHECK(result.consumed == text.size() - 3);
  REQUIRE(result.request.header("content-length") != nullptr);
  CHECK(*result.request.header("CONTENT-LENGTH") == "5");
}

TEST_CASE("a request arriving in pieces is incomplete until its last byte") {
  std::string text = "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
  for (std::size_t cut = 0; cut < text.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(parse(text.substr(0, cut)).status == ParseStatus::incomplete);
  }
  CHECK(parse(text).status == ParseStatus::complete);
}

TEST_CASE("two pipelined requests parse one after the other") {
  std::string text =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz";
  ParseResult first = parse(text);
  REQUIRE(first.status == ParseStatus::complete);
  CHECK(first.request.target == "/a");
  ParseResult second = parse(text.substr(first.consumed));
  REQUIRE(second.status == ParseStatus::complete);
  CHECK(second.request.target == "/b");
  CHECK(second.request.body == "z");
  CHECK(first.consumed + second.consumed == text.size());
}

TEST_CASE("keep-alive follows the HTTP version and the Connection header") {
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").request.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n")
                  .request.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
  CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.keep_alive);
  CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").request.keep_alive);
}

TEST_CASE("an empty line before the request line is ignored") {
  ParseResult result = parse("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(result.status == ParseStatus::complete);
  CHECK(result.request.target == "/");
}

TEST_CASE("malformed requests are 400") {
  CHECK(error_of("GET / HTTP/1.1\nHost: x\n\n") == 400);                // bare LF
  CHECK(error_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n") == 400);         // two spaces
  CHECK(error_of("GET / HTTP/1.1 \r\nHost: x\r\n\r\n") == 400);         // trailing space
  CHECK(error_of("G(T / HTTP/1.1\r\nHost: x\r\n\r\n") == 400);          // not a token
  CHECK(error_of("GET / HTTP/1.1\r\nHost : x\r\n\r\n") == 400);         // space before colon
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nno colon\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n") == 400);        // bare CR
  CHECK(error_of("GET / HTTP/1.1\r\n\r\n") == 400);                      // no Host
  CHECK(error_of("GET / HTTP/1\r\nHost: x\r\n\r\n") == 400);
  CHECK(error_of("GET / http/1.1\r\nHost: x\r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") ==
        400);
}

TEST_CASE("repeated equal Content-Length headers are accepted") {
  ParseResult result =
      parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nq");
  REQUIRE(result.status == ParseStatus::complete);
  CHECK(result.request.body == "q");
}

TEST_CASE("a body over the limit is 413 before it is read") {
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n") == 413);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n") ==
        413);
  CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n").status ==
        ParseStatus::incomplete);
}

TEST_CASE("a header section over the limit is 431 also while incomplete") {
  std::string big(kLimits.max_header_bytes + 1, 'a');
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n") == 431);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big) == 431);
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (std::size_t i = 0; i < kLimits.max_header_count; ++i) many += "X-A: b\r\n";
  CHECK(error_of(many + "\r\n") == 431);
}

TEST_CASE("chunked bodies are 501 and other HTTP versions 505") {
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 501);
  CHECK(error_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n") == 505);
}

TEST_CASE("responses carry their length and connection state") {
  std::string response = format_response(405, "text/plain", "no\n", false, {"Allow: POST"});
  CHECK(response ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
        "Connection: close\r\nAllow: POST\r\n\r\nno\n");
}

}  // namespace
}  // namespace hsmactor::sign_server
