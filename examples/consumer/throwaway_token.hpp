// A SoftHSM2 token that lives as long as one object: a private directory
// (under $TEST_TMPDIR, else $TMPDIR, else /tmp) with its own SoftHSM2 config,
// which SOFTHSM2_CONF points at, and a token made with softhsm2-util
// (hsmactor opens tokens; it does not create them).
//
// Usage:
//   ThrowawayToken softhsm("consumer");          // before anything loads SoftHSM2
//   options.label = softhsm.label();
//   options.pin = hsmactor::Pin(ThrowawayToken::kUserPin);
#pragma once

#include <filesystem>
#include <string>

class ThrowawayToken {
 public:
  /// Throwaway PINs of a token that is gone when the object is.
  static constexpr const char* kSoPin = "12345678";
  static constexpr const char* kUserPin = "1234";

  /// Makes the directory and the token labelled `label`; throws
  /// std::runtime_error saying which step failed.
  explicit ThrowawayToken(std::string label);
  /// Removes the directory, token included.
  ~ThrowawayToken();

  ThrowawayToken(const ThrowawayToken&) = delete;
  ThrowawayToken& operator=(const ThrowawayToken&) = delete;

  const std::string& label() const { return label_; }

 private:
  std::string label_;
  std::filesystem::path directory_;
};
