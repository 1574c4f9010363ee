// Built with -Wno-deprecated-declarations: the ENGINE API is deprecated in
// OpenSSL 3, and it is exactly what this strategy measures.
#include "tools/bench/strategy_engine.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace hsmactor::bench {
namespace {

/// Returns OpenSSL's pending errors on this thread as one line, and clears them.
std::string openssl_errors(const std::string& what) {
  std::string text = what;
  while (unsigned long code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    text += text == what ? ": " : "; ";
    text += buffer.data();
  }
  return text;
}

/// Returns `text` percent-encoded for a pkcs11: URI path attribute.
std::string uri_escape(const std::string& text) {
  std::string escaped;
  for (unsigned char c : text) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      escaped += static_cast<char>(c);
    } else {
      char code[4];
      std::snprintf(code, sizeof(code), "%%%02X", c);
      escaped += code;
    }
  }
  return escaped;
}

/// A caller thread's OpenSSL contexts, freed on that thread.
struct EngineCaller {
  EVP_PKEY_CTX* sign_ctx = nullptr;
  EVP_MD_CTX* digest_sign_ctx = nullptr;
  std::array<unsigned char, 512> signature{};

  ~EngineCaller() {
    EVP_PKEY_CTX_free(sign_ctx);
    EVP_MD_CTX_free(digest_sign_ctx);
  }
};

class EngineStrategy final : public Strategy {
 public:
  explicit EngineStrategy(const EngineConfig& config) { load(config); }

  // The engine is deliberately not finished here: libp11 finalises the module
  // when its engine finishes, and BenchToken and hsmactor still use that module.
  // OpenSSL's exit-time cleanup releases it after everything else is done.
  ~EngineStrategy() override {
    EVP_PKEY_free(ec_key_);
    EVP_PKEY_free(rsa_key_);
  }

  StrategyKind kind() const override { return StrategyKind::openssl_engine; }

  std::string unavailable() const override { return unavailable_; }

  std::string unsupported(Operation operation) const override {
    if (operation == Operation::ecdsa || operation == Operation::rsa) return {};
    return "libp11's engine offers no HMAC, random or digest with token keys";
  }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    bool is_ecdsa = workload.operation == Operation::ecdsa;
    EVP_PKEY* key = is_ecdsa ? ec_key_ : rsa_key_;
    return run_closed_loop(
        kind(), workload.operation, concurrency, timing,
        [&](int, std::string& error) -> RequestFn {
          auto caller = std::make_shared<EngineCaller>();
          if (is_ecdsa) {
            caller->sign_ctx = EVP_PKEY_CTX_new(key, nullptr);
            if (caller->sign_ctx == nullptr || EVP_PKEY_sign_init(caller->sign_ctx) != 1) {
              error = openssl_errors("EVP_PKEY_sign_init");
              return {};
            }
            return [caller, &workload](std::string& error) {
              std::size_t length = caller->signature.size();
              if (EVP_PKEY_sign(caller->sign_ctx, caller->signature.data(), &length,
                                workload.data.data(), workload.data.size()) != 1) {
                error = openssl_errors("EVP_PKEY_sign");
                return false;
              }
              return true;
            };
          }
          caller->digest_sign_ctx = EVP_MD_CTX_new();
          if (caller->digest_sign_ctx == nullptr) {
            error = openssl_errors("EVP_MD_CTX_new");
            return {};
          }
          return [caller, key, &workload](std::string& error) {
            std::size_t length = caller->signature.size();
            bool ok = EVP_DigestSignInit(caller->digest_sign_ctx, nullptr, EVP_sha256(), nullptr,
                                         key) == 1 &&
                      EVP_DigestSign(caller->digest_sign_ctx, caller->signature.data(), &length,
                                     workload.data.data(), workload.data.size()) == 1;
            if (!ok) error = openssl_errors("EVP_DigestSign");
            EVP_MD_CTX_reset(caller->digest_sign_ctx);
            return ok;
          };
        });
  }

 private:
  void load(const EngineConfig& config) {
    if (::access(config.engine_path.c_str(), R_OK) != 0) {
      unavailable_ = "engine not installed (no " + config.engine_path +
                     "; apt-get install libengine-pkcs11-openssl)";
      return;
    }
    ENGINE_load_dynamic();
    ENGINE* engine = ENGINE_by_id("dynamic");
    if (engine == nullptr) {
      unavailable_ = openssl_errors("ENGINE_by_id(\"dynamic\")");
      return;
    }
    std::string pin(reinterpret_cast<const char*>(config.pin.data()), config.pin.size());
    bool ok = ENGINE_ctrl_cmd_string(engine, "SO_PATH", config.engine_path.c_str(), 0) == 1 &&
              ENGINE_ctrl_cmd_string(engine, "ID", "pkcs11", 0) == 1 &&
              ENGINE_ctrl_cmd_string(engine, "LIST_ADD", "1", 0) == 1 &&
              ENGINE_ctrl_cmd_string(engine, "LOAD", nullptr, 0) == 1 &&
              ENGINE_ctrl_cmd_string(engine, "MODULE_PATH", config.module_path.c_str(), 0) == 1 &&
              ENGINE_ctrl_cmd_string(engine, "PIN", pin.c_str(), 0) == 1 &&
              ENGINE_init(engine) == 1;
    OPENSSL_cleanse(pin.data(), pin.size());
    if (!ok) {
      unavailable_ = openssl_errors("loading the pkcs11 engine");
      ENGINE_free(engine);
      return;
    }
    std::string token = "pkcs11:token=" + uri_escape(config.token_label);
    ec_key_ = ENGINE_load_private_key(engine, (token + ";object=ec256;type=private").c_str(),
                                      nullptr, nullptr);
    rsa_key_ = ENGINE_load_private_key(engine, (token + ";object=rsa2048;type=private").c_str(),
                                       nullptr, nullptr);
    if (ec_key_ == nullptr || rsa_key_ == nullptr) {
      unavailable_ = openssl_errors("ENGINE_load_private_key");
    }
    // The structural reference from ENGINE_by_id is no longer needed; the
    // functional one from ENGINE_init (and the keys) keep the engine loaded.
    ENGINE_free(engine);
  }

  EVP_PKEY* ec_key_ = nullptr;
  EVP_PKEY* rsa_key_ = nullptr;
  std::string unavailable_;
};

}  // namespace

std::unique_ptr<Strategy> make_engine_strategy(const EngineConfig& config) {
  return std::make_unique<EngineStrategy>(config);
}

}  // namespace hsmactor::bench
