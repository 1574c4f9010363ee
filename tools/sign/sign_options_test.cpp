#include "tools/sign/sign_options.hpp"

#include <stdlib.h>

#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

namespace hsmactor::sign {
namespace {

std::string error_of(const std::vector<std::string>& arguments) {
  auto options = parse_sign_options(arguments);
  REQUIRE_FALSE(options.ok());
  CHECK(options.error().condition() == Condition::invalid_argument);
  return options.error().detail();
}

TEST_CASE("defaults: SoftHSM2, PIN from HSMACTOR_PIN, 64 in flight, completion order") {
  auto options = parse_sign_options({"--token=signer"});
  REQUIRE(options.ok());
  CHECK(options->token_label == "signer");
  CHECK(options->module_path == "/usr/lib/softhsm/libsofthsm2.so");
  CHECK(options->pin_env == "HSMACTOR_PIN");
  CHECK(options->pin_file.empty());
  CHECK(options->max_in_flight == 64);
  CHECK(options->max_sessions == 4);
  CHECK(options->deadline == std::chrono::milliseconds(30000));
  CHECK_FALSE(options->ordered);
  CHECK(options->input_path.empty());
  CHECK(options->output_path.empty());
}

TEST_CASE("every flag is read") {
  auto options = parse_sign_options({"--uri=pkcs11:token=t;serial=1", "--module=/m.so",
                                     "--pin-file=/p", "--input=/in", "--output=/out", "--ordered",
                                     "--max-in-flight=7", "--max-sessions=3", "--deadline-ms=250",
                                     "--batch=8"});
  REQUIRE(options.ok());
  CHECK(options->uri == "pkcs11:token=t;serial=1");
  CHECK(options->module_path == "/m.so");
  CHECK(options->pin_file == "/p");
  CHECK(options->pin_env.empty());
  CHECK(options->input_path == "/in");
  CHECK(options->output_path == "/out");
  CHECK(options->ordered);
  CHECK(options->max_in_flight == 7);
  CHECK(options->max_sessions == 3);
  CHECK(options->deadline == std::chrono::milliseconds(250));
  CHECK(options->batch == 8);
}

TEST_CASE("--help needs nothing else") {
  auto options = parse_sign_options({"--help"});
  REQUIRE(options.ok());
  CHECK(options->help);
  CHECK(sign_usage().find("--max-in-flight") != std::string::npos);
}

TEST_CASE("a PIN on the command line is refused without echoing it") {
  for (std::string flag : {"--pin=s3cret", "--PIN=s3cret", "--so-pin=s3cret", "--pin"}) {
    std::string detail = error_of({"--token=t", flag});
    CHECK(detail.rfind("a PIN never goes on the command line", 0) == 0);
    CHECK(detail.find("s3cret") == std::string::npos);
  }
  std::string detail = error_of({"--uri=pkcs11:token=t?pin-value=s3cret"});
  CHECK(detail.find("must not carry pin-value") != std::string::npos);
  CHECK(detail.find("s3cret") == std::string::npos);
  CHECK(error_of({"--uri=pkcs11:token=t?PIN-SOURCE=file:/x"}).find("pin-source") !=
        std::string::npos);
}

TEST_CASE("unknown flags and stray arguments are named, their values are not") {
  CHECK(error_of({"--token=t", "--colour=s3cret"}) == "unknown flag --colour (see --help)");
  CHECK(error_of({"--token=t", "s3cret"}) ==
        "unexpected argument #2 (flags look like --name=value)");
}

TEST_CASE("the token is named exactly once") {
  CHECK(error_of({}).find("exactly one of --token") != std::string::npos);
  CHECK(error_of({"--token=a", "--uri=pkcs11:token=a"}).find("exactly one of") != std::string::npos);
  CHECK(error_of({"--uri=file:/x"}) == "--uri must start with pkcs11:");
}

TEST_CASE("a batch holds 1 to 1024 records") {
  CHECK(error_of({"--token=t", "--batch=0"}).find("1 to 1024") != std::string::npos);
  CHECK(error_of({"--token=t", "--batch=1025"}).find("1 to 1024") != std::string::npos);
  auto options = parse_sign_options({"--token=t"});
  REQUIRE(options.ok());
  CHECK(options->batch == 16);
}

TEST_CASE("malformed values are refused") {
  CHECK(error_of({"--token=t", "--max-in-flight=0"}) ==
        "--max-in-flight takes a whole number from 1 to 1000000");
  CHECK(error_of({"--token=t", "--max-in-flight=-3"}).find("whole number") != std::string::npos);
  CHECK(error_of({"--token=t", "--max-sessions=x"}).find("whole number") != std::string::npos);
  CHECK(error_of({"--token=t", "--deadline-ms=99999999999999"}).find("whole number") !=
        std::string::npos);
  CHECK(error_of({"--token=t", "--input"}) == "--input needs a value: --input=...");
  CHECK(error_of({"--token=t", "--ordered=yes"}) == "--ordered takes no value");
  CHECK(error_of({"--token=t", "--ordered", "--ordered"}) == "--ordered is given twice");
  CHECK(error_of({"--token=t", "--pin-env=A", "--pin-file=/p"}) ==
        "give at most one of --pin-env and --pin-file");
}

TEST_CASE("the PIN comes from the variable, or from the file without its line end") {
  SignOptions options;
  options.pin_env = "HSMACTOR_SIGN_TEST_PIN";
  ::unsetenv("HSMACTOR_SIGN_TEST_PIN");
  auto unset = read_pin(options);
  REQUIRE_FALSE(unset.ok());
  CHECK(unset.error().detail().rfind("environment variable HSMACTOR_SIGN_TEST_PIN is not set", 0) == 0);

  ::setenv("HSMACTOR_SIGN_TEST_PIN", "4321", 1);
  auto from_env = read_pin(options);
  REQUIRE(from_env.ok());
  CHECK(from_env->equals(Pin("4321")));
  ::setenv("HSMACTOR_SIGN_TEST_PIN", "", 1);
  auto empty = read_pin(options);
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/sign_options_test.pin";
  std::ofstream(path) << "98765\r\n";
  options.pin_file = path;
  auto from_file = read_pin(options);
  REQUIRE(from_file.ok());
  CHECK(from_file->equals(Pin("98765")));

  std::ofstream(path) << "\n";
  auto blank = read_pin(options);
  REQUIRE_FALSE(blank.ok());
  CHECK(blank.error().detail().find("is empty") != std::string::npos);

  options.pin_file = path + ".missing";
  auto missing = read_pin(options);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().detail().rfind("cannot read the PIN file", 0) == 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace hsmactor::sign
