// hsmactor: PKCS#11 HSMs from many threads and async servers, safely and fast.
//
// Each PKCS#11 session is owned by one actor; a supervisor per module
// initialises it once and heals stale sessions; a pool per token dispatches
// requests and holds the token's single login. Callers get Futures (or
// callbacks) that always resolve. This header and what it includes are the
// whole public API, free of CAF; actor callers add hsmactor_caf.hpp.
//
// Usage:
//   hsmactor::Hsm hsm;
//   hsmactor::TokenOptions options;
//   options.uri = "pkcs11:token=signer?module-path=/usr/lib/softhsm/libsofthsm2.so";
//   options.pin = hsmactor::Pin::from_env("HSM_PIN");
//   hsmactor::Token token = hsm.open_token(options).take();   // or check .ok()
//   auto signature = token.sign(token.private_key("ec256"), hsmactor::Mechanism::ecdsa(), digest).get();
#pragma once

#include "actors/completion_queue.hpp"
#include "actors/executor.hpp"
#include "actors/future.hpp"
#include "actors/options.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/rv.hpp"
#include "pool/hsm.hpp"
#include "pool/key.hpp"
#include "pool/metrics.hpp"
#include "pool/stream.hpp"
#include "pool/token.hpp"
#include "pool/token_options.hpp"
