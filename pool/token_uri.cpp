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

/// Returns true when the path of `text` (up to `query`) has an attribute that
/// is empty or only white space, other than one empty attribute at its end.
/// p11-kit 0.24 stops parsing at such an attribute (it skips white space the
/// way RFC 3986 appendix C allows) and reports success, silently dropping the
/// serial, module-path or pin-value written after it.
bool has_empty_attribute(std::string_view text, std::size_t query) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon >= query) return false;
  std::string_view path = text.substr(colon + 1, query == std::string_view::npos
                                                     ? std::string_view::npos
                                                     : query - colon - 1);
  if (path.empty()) return false;
  while (true) {
    const std::size_t semicolon = path.find(';');
    const std::string_view attribute = path.substr(0, semicolon);
    const bool last = semicolon == std::string_view::npos;
    if (attribute.find_first_not_of(" \n\r\v") == std::string_view::npos &&
        !(last && attribute.empty())) {
      return true;
    }
    if (last) return false;
    path.remove_prefix(semicolon + 1);
  }
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
  // p11-kit returns query values (pin-value, module-path, ...) as C strings, so
  // an encoded NUL there would silently cut the PIN or the path short.
  const std::size_t query = text.find('?');
  if (query != std::string_view::npos && text.find("%00", query) != std::string_view::npos) {
    return Error::make(Condition::invalid_argument,
                       "not a valid pkcs11: URI: its query contains an encoded NUL (%00)",
                       "open_token");
  }
  if (has_empty_attribute(text, query)) {
    return Error::make(Condition::invalid_argument,
                       "not a valid pkcs11: URI: it has an empty attribute (\";;\")",
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
