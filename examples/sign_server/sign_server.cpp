// sign_server: an HTTP/1.1 signing server on standalone Asio.
//
//   POST /sign      body: the message (up to --max-body bytes). The server
//                   hashes it with SHA-256 (OpenSSL) and signs the digest with
//                   the token's ECDSA P-256 key (CKM_ECDSA). Answer: 200,
//                   text/plain, the raw signature r || s (64 bytes) as 128
//                   lower-case hex digits and a newline. (PKCS#11's raw form,
//                   not DER: `openssl dgst -verify` needs it converted.)
//   GET /healthz    200 "ok".
//   Errors: 400/413/431/501/505 from the parser (then the connection closes),
//   404 unknown path, 405 /sign without POST (with Allow: POST), 503 when the
//   token says retry (overloaded, deadline), 500 for other token errors; the
//   body is the error's one-line message (never a PIN or payload).
//
// --mode=hsmactor | sync-loop | raw-pool chooses how the token is reached
// (signers.hpp). The PIN comes from $HSMACTOR_PIN, never the command line.
//
// Usage:
//   HSMACTOR_PIN=1234 sign_server --mode=hsmactor --token=bench --port=8080
//   curl --data-binary 'hello' http://127.0.0.1:8080/sign
#include <openssl/evp.h>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "asio/hsmactor_error_code.hpp"
#include "examples/sign_server/http.hpp"
#include "examples/sign_server/signers.hpp"

namespace hsmactor::sign_server {
namespace {

using asio::ip::tcp;

struct Flags {
  SignerConfig signer;
  std::string address = "127.0.0.1";
  unsigned short port = 0;
  std::string port_file;
  std::size_t threads = 1;
  long max_seconds = 0;
  Limits limits;
};

const char* const kUsage =
    "usage: sign_server --mode=hsmactor|sync-loop|raw-pool --token=LABEL [--key=ec256]\n"
    "         [--module=PATH] [--address=127.0.0.1] [--port=0] [--port-file=PATH]\n"
    "         [--threads=1] [--sessions=2] [--completion=loop|pool] [--max-seconds=0]\n"
    "         [--max-body=65536] [--max-header=8192]\n"
    "  The user PIN is read from $HSMACTOR_PIN.\n";

std::optional<unsigned long> number(std::string_view text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  unsigned long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  return value;
}

// Returns the flags, or nothing after printing what is wrong.
std::optional<Flags> parse_flags(int argc, char** argv) {
  Flags flags;
  const char* module = std::getenv("HSMACTOR_SOFTHSM2");
  flags.signer.module_path = module && *module ? module : "/usr/lib/softhsm/libsofthsm2.so";
  flags.signer.key_label = "ec256";
  bool have_mode = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::size_t equals = arg.find('=');
    if (arg.substr(0, 2) != "--" || equals == std::string_view::npos) {
      std::fprintf(stderr, "sign_server: bad argument %s\n%s", argv[i], kUsage);
      return std::nullopt;
    }
    std::string_view name = arg.substr(2, equals - 2);
    std::string_view value = arg.substr(equals + 1);
    std::optional<unsigned long> n = number(value);
    bool ok = true;
    if (name == "mode") {
      have_mode = true;
      if (value == "hsmactor") {
        flags.signer.mode = Mode::hsmactor;
      } else if (value == "sync-loop") {
        flags.signer.mode = Mode::sync_loop;
      } else if (value == "raw-pool") {
        flags.signer.mode = Mode::raw_pool;
      } else {
        ok = false;
      }
    } else if (name == "token") {
      flags.signer.token_label = std::string(value);
    } else if (name == "key") {
      flags.signer.key_label = std::string(value);
    } else if (name == "module") {
      flags.signer.module_path = std::string(value);
    } else if (name == "address") {
      flags.address = std::string(value);
    } else if (name == "port-file") {
      flags.port_file = std::string(value);
    } else if (name == "completion") {
      ok = value == "loop" || value == "pool";
      flags.signer.loop_executor = value == "loop";
    } else if (name == "port") {
      ok = n && *n <= 65535;
      if (ok) flags.port = static_cast<unsigned short>(*n);
    } else if (name == "threads") {
      ok = n && *n >= 1 && *n <= 64;
      if (ok) flags.threads = *n;
    } else if (name == "sessions") {
      ok = n && *n >= 1 && *n <= 256;
      if (ok) flags.signer.sessions = *n;
    } else if (name == "max-seconds") {
      ok = n.has_value();
      if (ok) flags.max_seconds = static_cast<long>(*n);
    } else if (name == "max-body") {
      ok = n && *n >= 1 && *n <= (64u << 20);
      if (ok) flags.limits.max_body_bytes = *n;
    } else if (name == "max-header") {
      ok = n && *n >= 64 && *n <= (1u << 20);
      if (ok) flags.limits.max_header_bytes = *n;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "sign_server: bad flag %s\n%s", argv[i], kUsage);
      return std::nullopt;
    }
  }
  if (!have_mode || flags.signer.token_label.empty()) {
    std::fprintf(stderr, "sign_server: --mode and --token are required\n%s", kUsage);
    return std::nullopt;
  }
  flags.signer.pin = Pin::from_env("HSMACTOR_PIN");
  return flags;
}

Bytes sha256(std::string_view data) {
  Bytes digest(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  digest.resize(length);
  return digest;
}

// One client connection: read, parse, sign, write, and again. At most one
// operation is outstanding per connection, so its handlers never run at once
// even on a multi-threaded loop, and it needs no strand.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Signer& signer, const Limits& limits)
      : socket_(std::move(socket)), signer_(signer), limits_(limits) {}

  void start() {
    std::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    process();
  }

 private:
  // Answers the request at the front of in_, or reads more of it.
  void process() {
    ParseResult parsed = parse_request(in_, limits_);
    switch (parsed.status) {
      case ParseStatus::incomplete:
        return read();
      case ParseStatus::error:
        // The stream cannot be trusted past a bad request: answer and close.
        return respond(parsed.error_status, parsed.error_reason + "\n", false);
      case ParseStatus::complete:
        in_.erase(0, parsed.consumed);
        return handle(parsed.request);
    }
  }

  void read() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (ec) return self->close();
                              self->in_.append(self->chunk_.data(), n);
                              self->process();
                            });
  }

  void handle(const Request& request) {
    bool keep_alive = request.keep_alive;
    if (request.target == "/healthz" && request.method == "GET") {
      return respond(200, "ok\n", keep_alive);
    }
    if (request.target != "/sign") return respond(404, "no such path\n", keep_alive);
    if (request.method != "POST") {
      return respond(405, "use POST\n", keep_alive, {"Allow: POST"});
    }
    Bytes digest = sha256(request.body);
    if (digest.empty()) return respond(500, "SHA-256 failed\n", keep_alive);
    signer_.sign(std::move(digest), socket_.get_executor(),
                 [self = shared_from_this(), keep_alive](std::error_code ec, Bytes signature,
                                                         std::string reason) {
                   if (!ec) return self->respond(200, to_hex(signature) + "\n", keep_alive);
                   int status = ec == Category::retry ? 503 : 500;
                   self->respond(status, reason + "\n", keep_alive);
                 });
  }

  void respond(int status, std::string body, bool keep_alive,
               const std::vector<std::string>& extra_headers = {}) {
    out_ = format_response(status, "text/plain", body, keep_alive, extra_headers);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), keep_alive](std::error_code ec, std::size_t) {
                        if (ec || !keep_alive) return self->close();
                        self->process();  // a pipelined request may be waiting
                      });
  }

  void close() {
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  Signer& signer_;
  const Limits& limits_;
  std::string in_;
  std::string out_;
  std::array<char, 16 * 1024> chunk_{};
};

class Server {
 public:
  Server(asio::io_context& io, tcp::acceptor& acceptor, Signer& signer, const Limits& limits)
      : io_(io), acceptor_(acceptor), signer_(signer), limits_(limits) {}

  void accept() {
    // Sockets on the io_context's own executor, not a strand: a connection
    // needs none (see Connection), and an answer drained by a LoopExecutor on
    // this io_context then reaches its connection inline instead of through
    // one more post.
    acceptor_.async_accept(io_, [this](std::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;  // closed: stopping
      if (!ec) std::make_shared<Connection>(std::move(socket), signer_, limits_)->start();
      accept();
    });
  }

 private:
  asio::io_context& io_;
  tcp::acceptor& acceptor_;
  Signer& signer_;
  const Limits& limits_;
};

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::hsmactor: return "hsmactor";
    case Mode::sync_loop: return "sync-loop";
    case Mode::raw_pool: return "raw-pool";
  }
  return "?";
}

int run(const Flags& flags) {
  asio::io_context io(static_cast<int>(flags.threads));
  Result<std::unique_ptr<Signer>> signer = make_signer(flags.signer, io);
  if (!signer) {
    std::fprintf(stderr, "sign_server: %s\n", signer.error().message().c_str());
    return 1;
  }

  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(flags.address, ec);
  if (ec) {
    std::fprintf(stderr, "sign_server: bad address %s\n", flags.address.c_str());
    return 2;
  }
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint(address, flags.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "sign_server: cannot listen on %s:%u: %s\n", flags.address.c_str(),
                 flags.port, ec.message().c_str());
    return 1;
  }
  unsigned short port = acceptor.local_endpoint().port();
  if (!flags.port_file.empty()) {
    // Written whole and then renamed, so a reader never sees half a number.
    std::string partial = flags.port_file + ".partial";
    std::ofstream(partial) << port << "\n";
    std::rename(partial.c_str(), flags.port_file.c_str());
  }
  std::printf("sign_server: mode=%s completion=%s threads=%zu sessions=%zu listening on %s:%u\n",
              mode_name(flags.signer.mode), flags.signer.loop_executor ? "loop" : "pool",
              flags.threads, flags.signer.sessions, flags.address.c_str(), port);
  std::fflush(stdout);

  Server server(io, acceptor, **signer, flags.limits);
  server.accept();

  // Stops on SIGINT/SIGTERM, or after --max-seconds (a benchmark that loses
  // its driver still ends).
  auto stop = [&] {
    std::error_code ignored;
    acceptor.close(ignored);
    io.stop();
  };
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code e, int) {
    if (!e) stop();
  });
  asio::steady_timer lifetime(io);
  if (flags.max_seconds > 0) {
    lifetime.expires_after(std::chrono::seconds(flags.max_seconds));
    lifetime.async_wait([&](std::error_code e) {
      if (!e) stop();
    });
  }

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < flags.threads; ++i) threads.emplace_back([&] { io.run(); });
  io.run();
  for (auto& thread : threads) thread.join();
  (*signer)->stop();
  std::string stats = (*signer)->stats();
  if (!stats.empty()) std::printf("sign_server: %s\n", stats.c_str());
  return 0;
}

}  // namespace
}  // namespace hsmactor::sign_server

int main(int argc, char** argv) {
  auto flags = hsmactor::sign_server::parse_flags(argc, argv);
  if (!flags) return 2;
  return hsmactor::sign_server::run(*flags);
}
