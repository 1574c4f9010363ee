#include <cstdio>
#include <vector>

#include "hsmactor.hpp"

int main() {
  hsmactor::Hsm hsm;  // owns its actor system; or Hsm(existing_caf_system)
  hsmactor::TokenOptions options;
  options.uri = "pkcs11:token=demo?module-path=/usr/lib/softhsm/libsofthsm2.so";
  options.pin = hsmactor::Pin::from_env("HSMACTOR_PIN");  // never on the command line
  options.max_sessions = 4;

  hsmactor::Result<hsmactor::Token> token = hsm.open_token(options);
  if (!token) {  // e.g. "C_Login returned CKR_PIN_INCORRECT (0xa0) in login"
    std::fprintf(stderr, "%s\n", token.error().message().c_str());
    return 2;
  }
  hsmactor::Key key = token->private_key("ec256");  // looked up once, cached, revalidated
  hsmactor::Bytes digest(32, 0x42);

  // Futures: many requests in flight from one thread.
  std::vector<hsmactor::Future<hsmactor::Bytes>> signatures;
  for (int i = 0; i < 100; ++i) {
    signatures.push_back(token->sign(key, hsmactor::Mechanism::ecdsa(), digest));
  }
  for (auto& pending : signatures) {
    hsmactor::Result<hsmactor::Bytes> signature = pending.get(std::chrono::seconds(10));
    if (!signature) std::fprintf(stderr, "%s\n", signature.error().message().c_str());
  }

  // Callbacks, for async servers: runs once on hsmactor's completion pool
  // (or the executor given in TokenOptions), never on a session thread.
  token->sign(key, hsmactor::Mechanism::ecdsa(), digest,
              [](hsmactor::Result<hsmactor::Bytes> signature) {
                std::printf("callback: %s\n", signature ? "signed" : "failed");
              });

  auto metrics = token->metrics();
  if (metrics) std::printf("requests: %llu\n", static_cast<unsigned long long>(metrics->requests));
  return 0;
}
