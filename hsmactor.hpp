// hsmactor: PKCS#11 HSMs from many threads and async servers, safely and fast.
//
// Each PKCS#11 session is owned by one actor; a supervisor per module
// initialises it once and heals stale sessions; a pool per token dispatches
// requests and holds the token's single login. Callers get Futures (or
// callbacks, or the pool's typed actor handle) that always resolve.
//
// Usage:
//   hsmactor::Hsm hsm;
//   hsmactor::TokenOptions options;
//   options.uri = "pkcs11:token=signer?module-path=/usr/lib/softhsm/libsofthsm2.so";
//   options.pin = hsmactor::Pin::from_env("HSM_PIN");
//   auto token = hsm.open_token(options);
//   auto signature = token->sign(token->key("ec256"), hsmactor::Mechanism::ecdsa(), digest).get();
#pragma once

#include "actors/future.hpp"
#include "actors/protocol.hpp"
#include "actors/runtime.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/rv.hpp"
#include "pkcs11/session.hpp"
#include "pool/hsm.hpp"
#include "pool/metrics.hpp"
