// Property checks for the fuzz targets in tests/fuzz/.
//
// A failed check prints what was expected and aborts, so libFuzzer saves the
// input as a crash reproducer and the corpus replay test (replay_main.cpp)
// fails. HSMACTOR_FUZZ_ENTRY turns an exception that escapes the code under
// test into the same kind of failure: parsers return Errors, they never throw.
//
// Usage:
//   HSMACTOR_FUZZ_ENTRY(text) {
//     Result<X> parsed = parse_x(text);
//     FUZZ_CHECK(parsed || !parsed.error().message().empty(), "an error says why");
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

namespace hsmactor::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* condition,
                                      const char* why) {
  std::fprintf(stderr, "%s:%d: property violated: %s\n  check: %s\n", file, line, why,
               condition);
  std::abort();
}

}  // namespace hsmactor::fuzz

#define FUZZ_CHECK(condition, why)                                                  \
  do {                                                                              \
    if (!(condition)) ::hsmactor::fuzz::check_failed(__FILE__, __LINE__, #condition, \
                                                     why);                          \
  } while (false)

// Defines LLVMFuzzerTestOneInput around a body that sees the input as
// `std::string_view name`; any exception escaping the body is a failure.
#define HSMACTOR_FUZZ_ENTRY(name)                                                   \
  static void hsmactor_fuzz_body(std::string_view name);                            \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    try {                                                                           \
      hsmactor_fuzz_body(std::string_view(reinterpret_cast<const char*>(data), size)); \
    } catch (const std::exception& e) {                                             \
      std::fprintf(stderr, "exception escaped: %s\n", e.what());                    \
      std::abort();                                                                 \
    } catch (...) {                                                                 \
      std::fprintf(stderr, "exception escaped (not a std::exception)\n");          \
      std::abort();                                                                 \
    }                                                                               \
    return 0;                                                                       \
  }                                                                                 \
  static void hsmactor_fuzz_body(std::string_view name)
