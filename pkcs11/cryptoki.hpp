// The one place that includes the PKCS#11 header.
//
// hsmactor compiles against p11-kit's copy of the OASIS header (Cryptoki 2.40
// names, CRYPTOKI_COMPAT mode). Every other file includes this one, so a change
// of header or version is caught here once.
#pragma once

#include <p11-kit/pkcs11.h>

static_assert(CRYPTOKI_VERSION_MAJOR == 2 && CRYPTOKI_VERSION_MINOR >= 40,
              "hsmactor needs a Cryptoki 2.40 (or later 2.x) header");
static_assert(sizeof(CK_ULONG) == sizeof(unsigned long),
              "CK_ULONG must be the platform's unsigned long");
