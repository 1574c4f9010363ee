// hsmactor-sign end to end: a private SoftHSM2 token, the real binary in a
// child process, its answers read back and every signature checked by OpenSSL.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pkcs11/session.hpp"
#include "tests/support/openssl_check.hpp"
#include "tests/support/softhsm_token.hpp"
#include "tools/sign/base64.hpp"
#include "tools/sign/json_lines.hpp"

namespace hsmactor::sign {
namespace {

namespace openssl = testing::openssl;

constexpr const char* kLabel = "signer";

/// The token and what the test needs to check its signatures outside it.
struct Setup {
  std::string binary;
  std::string tmp;
  pkcs11::PublicKey ec256;
  pkcs11::PublicKey ec384;
  pkcs11::PublicKey rsa2048;
  Bytes hmac_key;
};

const Setup& setup() {
  static const Setup made = [] {
    Setup s;
    testing::TestToken token = testing::create_test_token(kLabel);
    {
      // The session (and the module) must be gone before a child process
      // opens the same token directory.
      testing::LoggedInSession logged_in(token);
      testing::TestKeys keys = testing::create_test_keys(logged_in.session());
      auto& session = logged_in.session();
      s.ec256 = *session.export_public_key(keys.ec256.public_key);
      s.ec384 = *session.export_public_key(keys.ec384.public_key);
      s.rsa2048 = *session.export_public_key(keys.rsa2048.public_key);
      s.hmac_key = keys.hmac_value;
    }
    s.binary = testing::runfile("tools/sign/hsmactor-sign");
    const char* tmp = std::getenv("TEST_TMPDIR");
    s.tmp = tmp && *tmp ? tmp : "/tmp";
    return s;
  }();
  return made;
}

struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Runs hsmactor-sign with `arguments`, `stdin_text` on its stdin and the
/// environment `env` added (a value of nullptr removes the variable).
RunResult run_sign(const std::vector<std::string>& arguments, const std::string& stdin_text,
                   const std::map<std::string, const char*>& env = {{"HSMACTOR_PIN", "1234"}}) {
  static int runs = 0;
  const Setup& s = setup();
  std::string base = s.tmp + "/run" + std::to_string(++runs);
  std::ofstream(base + ".in", std::ios::binary) << stdin_text;

  std::vector<std::string> argv_text = {s.binary};
  argv_text.insert(argv_text.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& text : argv_text) argv.push_back(text.data());
  argv.push_back(nullptr);

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int in = ::open((base + ".in").c_str(), O_RDONLY);
    int out = ::open((base + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open((base + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (const auto& [name, value] : env) {
      if (value) {
        ::setenv(name.c_str(), value, 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  RunResult result;
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(base + ".out");
  result.err = read_file(base + ".err");
  return result;
}

/// One record of the generated input and what its answer must be.
struct Expectation {
  std::string name;  // "id:..." or "line:N"
  std::string line;
  // Good records: how to check the signature.
  enum class Check { none, ecdsa256, ecdsa384, rsa_pkcs, rsa_pss, hmac } check = Check::none;
  Bytes message;  // the digest for ECDSA, the data otherwise
  // Bad records: the answer's error.
  std::string condition;
  std::string category = "fix_input";
  std::string code;  // "" when the answer must have no code
};

Bytes random_bytes(std::mt19937& random, std::size_t size) {
  Bytes bytes(size);
  for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
  return bytes;
}

std::string record_line(const std::string& id, const std::string& key,
                        const std::string& mechanism, const std::string& payload_name,
                        const std::string& payload) {
  return JsonLine().add("id", id).add("key", key).add("mechanism", mechanism)
      .add(payload_name, payload).str();
}

/// Returns ~200 records: 160 good of every scheme and payload form, and bad
/// ones of every kind, interleaved.
std::vector<Expectation> make_input(int good_count = 160, bool with_bad = true) {
  std::mt19937 random(20240611);
  std::vector<Expectation> records;
  auto add_good = [&](int i) {
    Expectation e;
    std::string id = "g" + std::to_string(i);
    Bytes data = random_bytes(random, 1 + random() % 200);
    switch (i % 8) {
      case 0:
        e.message = random_bytes(random, 32);
        e.line = record_line(id, "ec256", "ecdsa", "digest_hex", to_hex(e.message));
        e.check = Expectation::Check::ecdsa256;
        break;
      case 1:
        e.message = openssl::sha256(data);
        e.line = record_line(id, "ec256", "ecdsa", "data", to_base64(data));
        e.check = Expectation::Check::ecdsa256;
        break;
      case 2:
        e.message = openssl::sha256(data);
        e.line = record_line(id, "ec384", "ecdsa-sha256", "data_hex", to_hex(data));
        e.check = Expectation::Check::ecdsa384;
        break;
      case 3:
        e.message = random_bytes(random, 48);
        e.line = record_line(id, "ec384", "ecdsa", "digest", to_base64(e.message));
        e.check = Expectation::Check::ecdsa384;
        break;
      case 4:
        e.message = data;
        e.line = record_line(id, "rsa2048", "rsa-pkcs-sha256", "data", to_base64(data));
        e.check = Expectation::Check::rsa_pkcs;
        break;
      case 5:
        e.message = data;
        e.line = record_line(id, "rsa2048", "rsa-pss-sha256", "data_hex", to_hex(data));
        e.check = Expectation::Check::rsa_pss;
        break;
      case 6:
        e.message = data;
        e.line = record_line(id, "hmac", "hmac-sha256", "data", to_base64(data));
        e.check = Expectation::Check::hmac;
        break;
      default:
        // A numeric id is answered as a string.
        id = std::to_string(100000 + i);
        e.message = random_bytes(random, 32);
        e.line = R"({"id": )" + id + R"(, "key": "ec256", "mechanism": "ecdsa-sha256", )" +
                 R"("digest_hex": ")" + to_hex(e.message) + "\"}";
        e.check = Expectation::Check::ecdsa256;
        break;
    }
    e.name = "id:" + id;
    records.push_back(e);
  };
  auto add_bad = [&](int i) {
    Expectation e;
    std::string id = "b" + std::to_string(i);
    e.name = "id:" + id;
    e.condition = "invalid_argument";
    switch (i % 12) {
      case 0:
        e.line = R"({"id": ")" + id + R"(", "key": "ec256", )";  // cut short
        e.name = "";  // named by line, filled in below
        break;
      case 1:
        e.line = record_line(id, "no-such-key", "ecdsa", "data", "YWJj");
        e.condition = "object_not_found";
        break;
      case 2:
        e.line = record_line(id, "ec256", "ecdsa-sha1", "data", "YWJj");
        break;
      case 3:
        e.line = record_line(id, "ec256", "ecdsa", "data", "not*base64");
        break;
      case 4:
        e.line = record_line(id, "ec256", "ecdsa", "digest_hex", "xyz0");
        break;
      case 5:
        e.line = R"({"key": "ec256", "mechanism": "ecdsa", "data": "YWJj"})";
        e.name = "";
        break;
      case 6:
        e.line = record_line(id, "rsa2048", "rsa-pss-sha256", "digest_hex", std::string(64, '0'));
        break;
      case 7:
        e.line = R"({"id": ")" + id + R"(", "key": "ec256", "mechanism": "ecdsa", "data": ["YWJj"]})";
        e.name = "";  // the parser stops before it knows the id
        break;
      case 8:
        e.line = R"({"id": ")" + id + R"(", "id": "again", "key": "ec256"})";
        e.name = "";
        break;
      case 9:
        e.line = record_line(id, "ec256", "ecdsa-sha256", "digest_hex", std::string(40, 'a'));
        break;
      case 10:
        // An RSA key asked for ECDSA: the token itself refuses. SoftHSM2 2.6
        // accepts C_SignInit and fails C_Sign with CKR_GENERAL_ERROR.
        e.line = record_line(id, "rsa2048", "ecdsa", "data", "YWJj");
        e.condition = "pkcs11_error";
        e.code = "CKR_GENERAL_ERROR";
        e.category = "give_up";
        break;
      default:
        // HMAC looks for a secret key; "ec256" is no secret key.
        e.line = record_line(id, "ec256", "hmac-sha256", "data", "YWJj");
        e.condition = "object_not_found";
        break;
    }
    records.push_back(e);
  };
  int bad = 0;
  for (int i = 0; i < good_count; ++i) {
    add_good(i);
    if (with_bad && i % 4 == 3) add_bad(bad++);
  }
  for (std::size_t line = 0; line < records.size(); ++line) {
    if (records[line].name.empty()) records[line].name = "line:" + std::to_string(line + 1);
  }
  return records;
}

std::string input_text(const std::vector<Expectation>& records) {
  std::string text;
  for (const auto& record : records) text += record.line + "\n";
  return text;
}

/// Checks that `output` answers every record exactly once, correctly; returns
/// the answer names in output order.
std::vector<std::string> check_answers(const std::vector<Expectation>& records,
                                       const std::string& output) {
  const Setup& s = setup();
  std::map<std::string, const Expectation*> expected;
  for (const auto& record : records) expected[record.name] = &record;
  REQUIRE(expected.size() == records.size());

  std::vector<std::string> order;
  std::set<std::string> answered;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    INFO(line);
    auto answer = parse_json_object(line, 1);
    REQUIRE(answer.ok());
    std::string name = answer->find("id") ? "id:" + answer->find("id")->text
                                          : "line:" + answer->find("line")->text;
    REQUIRE(expected.count(name) == 1);
    REQUIRE(answered.insert(name).second);  // exactly once
    order.push_back(name);
    const Expectation& e = *expected[name];
    INFO(e.line);
    if (e.check == Expectation::Check::none) {
      REQUIRE(answer->find("error"));
      const JsonObject& error = *answer->find("error")->object;
      CHECK(error.find("condition")->text == e.condition);
      CHECK_FALSE(error.find("message")->text.empty());
      CHECK(error.find("category")->text == e.category);
      if (e.code.empty()) {
        CHECK(error.find("code") == nullptr);
      } else {
        REQUIRE(error.find("code"));
        CHECK(error.find("code")->text == e.code);
      }
      continue;
    }
    REQUIRE(answer->find("signature"));
    auto signature = from_base64(answer->find("signature")->text);
    REQUIRE(signature);
    switch (e.check) {
      case Expectation::Check::ecdsa256:
        CHECK(openssl::verify_ecdsa(s.ec256, e.message, *signature));
        break;
      case Expectation::Check::ecdsa384:
        CHECK(openssl::verify_ecdsa(s.ec384, e.message, *signature));
        break;
      case Expectation::Check::rsa_pkcs:
        CHECK(openssl::verify_rsa_pkcs1_sha256(s.rsa2048, e.message, *signature));
        break;
      case Expectation::Check::rsa_pss:
        CHECK(openssl::verify_rsa_pss_sha256(s.rsa2048, e.message, *signature));
        break;
      case Expectation::Check::hmac:
        CHECK(*signature == openssl::hmac_sha256(s.hmac_key, e.message));
        break;
      case Expectation::Check::none:
        break;
    }
  }
  CHECK(answered.size() == records.size());
  return order;
}

TEST_CASE("a mixed stream: every record answered once, good ones verify, bad ones are typed") {
  auto records = make_input();
  REQUIRE(records.size() == 200);
  std::string output = setup().tmp + "/mixed.jsonl";
  RunResult run = run_sign({"--token=signer", "--input=" + setup().tmp + "/mixed.in.jsonl",
                            "--output=" + output, "--max-in-flight=16"},
                           "");
  // --input names a file that does not exist yet: a set-up error.
  CHECK(run.status == 2);
  CHECK(run.err.find("cannot open --input file") != std::string::npos);

  std::ofstream(setup().tmp + "/mixed.in.jsonl") << input_text(records);
  run = run_sign({"--token=signer", "--input=" + setup().tmp + "/mixed.in.jsonl",
                  "--output=" + output, "--max-in-flight=16"},
                 "");
  INFO(run.err);
  CHECK(run.status == 1);
  CHECK(run.out.empty());
  CHECK(run.err.empty());  // not a terminal: no progress
  check_answers(records, read_file(output));
}

TEST_CASE("--ordered answers in input order") {
  auto records = make_input();
  RunResult run = run_sign({"--token=signer", "--ordered", "--max-in-flight=32",
                            "--max-sessions=3"},
                           input_text(records));
  INFO(run.err);
  CHECK(run.status == 1);
  std::vector<std::string> order = check_answers(records, run.out);
  REQUIRE(order.size() == records.size());
  for (std::size_t i = 0; i < records.size(); ++i) CHECK(order[i] == records[i].name);
}

TEST_CASE("a stream of good records exits 0, from stdin to stdout, also with a PIN file") {
  auto records = make_input(40, false);
  RunResult run = run_sign({"--token=signer"}, input_text(records));
  INFO(run.err);
  CHECK(run.status == 0);
  check_answers(records, run.out);

  std::string pin_file = setup().tmp + "/pin";
  std::ofstream(pin_file) << "1234\n";
  run = run_sign({"--token=signer", "--pin-file=" + pin_file, "--max-in-flight=1"},
                 input_text(records), {{"HSMACTOR_PIN", nullptr}});
  INFO(run.err);
  CHECK(run.status == 0);
  check_answers(records, run.out);
}

// p11-kit leaves unset URI fields as NUL bytes; this used to ask for a token
// whose serial was 16 NULs and find none.
TEST_CASE("a URI naming only the token label finds the token") {
  auto records = make_input(8, false);
  RunResult run = run_sign({"--uri=pkcs11:token=signer"}, input_text(records));
  INFO(run.err);
  CHECK(run.status == 0);
  check_answers(records, run.out);
}

TEST_CASE("empty input exits 0 with no output") {
  RunResult run = run_sign({"--token=signer"}, "\n\n");
  CHECK(run.status == 0);
  CHECK(run.out.empty());
}

TEST_CASE("usage and set-up errors exit 2 with a typed message") {
  RunResult run = run_sign({"--token=signer", "--bogus=1"}, "");
  CHECK(run.status == 2);
  CHECK(run.err.find("unknown flag --bogus") != std::string::npos);

  run = run_sign({"--token=signer", "--pin=1234"}, "");
  CHECK(run.status == 2);
  CHECK(run.err.find("a PIN never goes on the command line") != std::string::npos);
  CHECK(run.err.find("1234") == std::string::npos);

  run = run_sign({"--token=signer"}, "", {{"HSMACTOR_PIN", nullptr}});
  CHECK(run.status == 2);
  CHECK(run.err.find("HSMACTOR_PIN is not set") != std::string::npos);

  run = run_sign({"--token=no-such-token"}, "");
  CHECK(run.status == 2);
  CHECK(run.err.find("cannot open the token: token_not_found") != std::string::npos);

  run = run_sign({"--token=signer", "--module=/nonexistent/module.so"}, "");
  CHECK(run.status == 2);
  CHECK(run.err.find("module_load_failed") != std::string::npos);

  run = run_sign({"--help"}, "");
  CHECK(run.status == 0);
  CHECK(run.out.find("Exit status") != std::string::npos);
}

TEST_CASE("a wrong PIN exits 2 with CKR_PIN_INCORRECT and never shows the PIN") {
  RunResult run = run_sign({"--token=signer"}, "", {{"HSMACTOR_PIN", "975310"}});
  INFO(run.err);
  CHECK(run.status == 2);
  CHECK(run.err.find("CKR_PIN_INCORRECT") != std::string::npos);
  CHECK(run.err.find("reauthenticate") != std::string::npos);
  CHECK(run.err.find("975310") == std::string::npos);
}

}  // namespace
}  // namespace hsmactor::sign
