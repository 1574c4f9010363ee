#include "pool/token_uri.hpp"

#include <p11-kit/uri.h>

#include <cstddef>
#include <memory>

namespace hsmactor {
namespace {

template <std::size_t N>
std::string padded_field(const unsigned char (&field)[N]) {
  std::string text(reinterpret_cast<const char*>(field), N);
  // p11-kit leaves fields the URI does not set as NUL bytes, not blanks.
  auto end = text.find_last_not_of(std::string(" \0", 2));
  text.erase(end == std::string::npos ? 0 : end + 1);
  return text;
}

struct UriDeleter {
  void operator()(P11KitUri* uri) const { p11_kit_uri_free(uri); }
};

}  // namespace

Result<TokenUri> parse_token_uri(std::string_view text) {
  // p11-kit wants a NUL-terminated string; an embedded NUL would cut it short.
  if (text.find('\0') != std::string_view::npos) {
    return Error::make(Condition::invalid_argument, "not a valid pkcs11: URI: it contains a NUL",
                       "open_token");
  }
  std::unique_ptr<P11KitUri, UriDeleter> uri(p11_kit_uri_new());
  if (!uri) return Error::make(Condition::internal_error, "out of memory", "open_token");
  const std::string terminated(text);
  int code = p11_kit_uri_parse(terminated.c_str(), P11_KIT_URI_FOR_ANY, uri.get());
  if (code != P11_KIT_URI_OK) {
    return Error::make(Condition::invalid_argument,
                       std::string("not a valid pkcs11: URI: ") + p11_kit_uri_message(code),
                       "open_token");
  }
  TokenUri parts;
  CK_TOKEN_INFO* token = p11_kit_uri_get_token_info(uri.get());
  parts.label = padded_field(token->label);
  parts.serial = padded_field(token->serialNumber);
  if (const char* path = p11_kit_uri_get_module_path(uri.get())) parts.module_path = path;
  if (const char* pin = p11_kit_uri_get_pin_value(uri.get())) {
    parts.pin = Pin(pin);
    // p11-kit frees its copy without wiping it.
    volatile char* bytes = const_cast<char*>(pin);
    for (std::size_t i = 0; bytes[i] != '\0'; ++i) bytes[i] = '\0';
  }
  return parts;
}

}  // namespace hsmactor
