// The signing server as a client sees it: a real process on loopback with a
// throwaway SoftHSM2 token, real sockets, every mode, signatures checked with
// OpenSSL, and the parser's refusals on the wire.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pkcs11/bytes.hpp"
#include "tests/support/openssl_check.hpp"
#include "tests/support/softhsm_token.hpp"

extern char** environ;

namespace hsmactor::sign_server {
namespace {

namespace fs = std::filesystem;
namespace openssl = testing::openssl;
using asio::ip::tcp;

struct ServerToken {
  testing::TestToken token;
  pkcs11::PublicKey ec256_public;
};

const ServerToken& server_token() {
  static const ServerToken instance = [] {
    ServerToken made;
    made.token = testing::create_test_token("sign-server-test");
    testing::LoggedInSession session(made.token);
    testing::TestKeys keys = testing::create_test_keys(session.session());
    auto ec = session.session().export_public_key(keys.ec256.public_key);
    if (!ec) throw std::runtime_error("cannot export the EC key: " + ec.error().message());
    made.ec256_public = *ec;
    return made;
  }();
  return instance;
}

// Starts sign_server with `args` and the PIN in its environment.
pid_t spawn_server(const std::vector<std::string>& args, const std::string& pin) {
  std::string binary = testing::runfile("examples/sign_server/sign_server");
  std::vector<std::string> argv_storage{binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("HSMACTOR_PIN=", 0) != 0) env_storage.emplace_back(*e);
  }
  env_storage.push_back("HSMACTOR_PIN=" + pin);
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) {
    throw std::runtime_error("cannot start " + binary);
  }
  return pid;
}

// A running server; stopped with SIGTERM, and its exit status checked.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& extra) {
    static int serial = 0;
    const char* tmp = std::getenv("TEST_TMPDIR");
    port_file_ = (fs::path(tmp ? tmp : "/tmp") /
                  ("sign-server-port-" + std::to_string(::getpid()) + "-" +
                   std::to_string(serial++)))
                     .string();
    std::vector<std::string> args{"--token=sign-server-test", "--key=ec256", "--port=0",
                                  "--port-file=" + port_file_, "--max-seconds=300"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_token();  // the token exists before the server looks for it
    pid_ = spawn_server(args, "1234");
    // Waits for the port; a server that exits first fails the test at once.
    // The limit only turns a hang into a failure.
    for (int i = 0; i < 6000; ++i) {
      std::ifstream in(port_file_);
      unsigned port = 0;
      if (in >> port && port != 0) {
        port_ = static_cast<unsigned short>(port);
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        throw std::runtime_error("sign_server exited at start, status " + std::to_string(status));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("sign_server did not report its port");
  }

  ~ServerProcess() {
    if (pid_ != 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  /// Stops the server and returns its exit code (-1 if it did not exit normally).
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  unsigned short port() const { return port_; }

 private:
  std::string port_file_;
  pid_t pid_ = 0;
  unsigned short port_ = 0;
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// A blocking HTTP client over one connection.
class Client {
 public:
  explicit Client(unsigned short port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  void send(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  Response receive() {
    std::size_t head_end = asio::read_until(socket_, asio::dynamic_buffer(in_), "\r\n\r\n");
    std::string head = in_.substr(0, head_end);
    in_.erase(0, head_end);
    Response response;
    response.status = std::stoi(head.substr(9, 3));
    std::size_t at = head.find("\r\n") + 2;
    while (at < head.size() - 2) {
      std::size_t end = head.find("\r\n", at);
      std::string line = head.substr(at, end - at);
      std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      at = end + 2;
    }
    std::size_t length = std::stoul(response.headers.at("content-length"));
    if (in_.size() < length) {
      asio::read(socket_, asio::dynamic_buffer(in_), asio::transfer_exactly(length - in_.size()));
    }
    response.body = in_.substr(0, length);
    in_.erase(0, length);
    return response;
  }

  Response request(const std::string& bytes) {
    send(bytes);
    return receive();
  }

  /// Returns true when the server has closed the connection (after what it sent).
  bool closed_by_server() {
    std::error_code ec;
    char byte = 0;
    std::size_t n = socket_.read_some(asio::buffer(&byte, 1), ec);
    return n == 0 && ec == asio::error::eof;
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  std::string in_;
};

std::string sign_request(const std::string& message, bool close = false) {
  return "POST /sign HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n" +
         std::string(close ? "Connection: close\r\n" : "") +
         "Content-Length: " + std::to_string(message.size()) + "\r\n\r\n" + message;
}

// Returns true when `response` is a 200 whose body is a hex signature of
// SHA-256(`message`) by the token's EC key.
bool signs(const Response& response, const std::string& message) {
  if (response.status != 200 || response.body.size() != 129 || response.body.back() != '\n') {
    return false;
  }
  auto signature = from_hex(std::string_view(response.body).substr(0, 128));
  return signature && openssl::verify_ecdsa(server_token().ec256_public,
                                            openssl::sha256(bytes_of(message)), *signature);
}

TEST_CASE("every mode signs request bodies with signatures OpenSSL accepts") {
  std::vector<std::string> mode = GENERATE(
      std::vector<std::string>{"--mode=hsmactor"},
      std::vector<std::string>{"--mode=hsmactor", "--completion=pool"},
      std::vector<std::string>{"--mode=hsmactor", "--threads=2"},
      std::vector<std::string>{"--mode=sync-loop"},
      std::vector<std::string>{"--mode=sync-loop", "--threads=2"},
      std::vector<std::string>{"--mode=raw-pool"});
  INFO(mode[0] << (mode.size() > 1 ? " " + mode[1] : ""));
  ServerProcess server(mode);

  SECTION("on one keep-alive connection") {
    Client client(server.port());
    for (int i = 0; i < 20; ++i) {
      std::string message = "message number " + std::to_string(i);
      CHECK(signs(client.request(sign_request(message)), message));
    }
  }
  SECTION("with pipelined requests answered in order") {
    Client client(server.port());
    client.send(sign_request("first") + sign_request("second") + sign_request(""));
    CHECK(signs(client.receive(), "first"));
    CHECK(signs(client.receive(), "second"));
    CHECK(signs(client.receive(), ""));
  }
  SECTION("from several connections at once") {
    constexpr int kClients = 6;
    constexpr int kEach = 15;
    std::atomic<int> good{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        Client client(server.port());
        for (int i = 0; i < kEach; ++i) {
          std::string message = "client " + std::to_string(c) + " request " + std::to_string(i);
          if (signs(client.request(sign_request(message)), message)) good.fetch_add(1);
        }
      });
    }
    for (auto& client : clients) client.join();
    CHECK(good.load() == kClients * kEach);
  }
  SECTION("and closes when the client asks") {
    Client client(server.port());
    Response response = client.request(sign_request("last one", true));
    CHECK(signs(response, "last one"));
    CHECK(response.headers["connection"] == "close");
    CHECK(client.closed_by_server());
  }
  CHECK(server.stop() == 0);
}

TEST_CASE("the server answers wrong methods paths and malformed requests") {
  ServerProcess server({"--mode=hsmactor", "--max-body=1024", "--max-header=512"});

  SECTION("health and unknown paths keep the connection") {
    Client client(server.port());
    Response health = client.request("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(health.status == 200);
    CHECK(health.body == "ok\n");
    CHECK(client.request("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").status == 404);
    Response wrong_method = client.request("GET /sign HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(wrong_method.status == 405);
    CHECK(wrong_method.headers["allow"] == "POST");
    CHECK(signs(client.request(sign_request("still fine")), "still fine"));
  }
  SECTION("a malformed request is 400 and closes") {
    Client client(server.port());
    Response response = client.request("POST /sign HTTP/1.1\r\nHost : t\r\n\r\n");
    CHECK(response.status == 400);
    CHECK(response.headers["connection"] == "close");
    CHECK(client.closed_by_server());
  }
  SECTION("a body over the limit is 413 before it is sent") {
    Client client(server.port());
    Response response =
        client.request("POST /sign HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    CHECK(response.status == 413);
    CHECK(client.closed_by_server());
  }
  SECTION("a header section over the limit is 431") {
    Client client(server.port());
    Response response = client.request("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " +
                                       std::string(600, 'p') + "\r\n\r\n");
    CHECK(response.status == 431);
    CHECK(client.closed_by_server());
  }
  SECTION("chunked bodies are 501") {
    Client client(server.port());
    CHECK(client.request("POST /sign HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
              .status == 501);
  }
  SECTION("HTTP/1.0 closes unless asked to keep alive") {
    Client once(server.port());
    CHECK(once.request("GET /healthz HTTP/1.0\r\n\r\n").status == 200);
    CHECK(once.closed_by_server());
    Client kept(server.port());
    CHECK(kept.request("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status == 200);
    CHECK(kept.request("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status == 200);
  }
  CHECK(server.stop() == 0);
}

TEST_CASE("a wrong PIN stops the server at start") {
  std::string mode = GENERATE(std::string("--mode=hsmactor"), std::string("--mode=raw-pool"));
  server_token();
  pid_t pid = spawn_server({mode, "--token=sign-server-test", "--port=0"}, "0000");
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
}

}  // namespace
}  // namespace hsmactor::sign_server
