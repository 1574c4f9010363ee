#include "pkcs11/mechanism.hpp"

#include <cstdio>

namespace hsmactor::pkcs11 {

Mechanism Mechanism::of(CK_MECHANISM_TYPE type) {
  Mechanism mechanism;
  mechanism.type = type;
  return mechanism;
}

Mechanism Mechanism::with_raw_parameter(CK_MECHANISM_TYPE type, Bytes parameter) {
  Mechanism mechanism = of(type);
  mechanism.param_kind = ParamKind::raw;
  mechanism.raw = std::move(parameter);
  return mechanism;
}

Mechanism Mechanism::rsa_pss_sha256(CK_ULONG salt_length) {
  Mechanism mechanism = of(CKM_SHA256_RSA_PKCS_PSS);
  mechanism.param_kind = ParamKind::pss;
  mechanism.hash = CKM_SHA256;
  mechanism.mgf = CKG_MGF1_SHA256;
  mechanism.salt_length = salt_length;
  return mechanism;
}

Mechanism Mechanism::aes_gcm(Bytes iv, Bytes aad, CK_ULONG tag_bits) {
  Mechanism mechanism = of(CKM_AES_GCM);
  mechanism.param_kind = ParamKind::gcm;
  mechanism.raw = std::move(iv);
  mechanism.aad = std::move(aad);
  mechanism.tag_bits = tag_bits;
  return mechanism;
}

Mechanism Mechanism::rsa_oaep_sha256(Bytes label) {
  Mechanism mechanism = of(CKM_RSA_PKCS_OAEP);
  mechanism.param_kind = ParamKind::oaep;
  mechanism.hash = CKM_SHA256;
  mechanism.mgf = CKG_MGF1_SHA256;
  mechanism.raw = std::move(label);
  return mechanism;
}

Mechanism Mechanism::rsa_oaep_sha1(Bytes label) {
  Mechanism mechanism = rsa_oaep_sha256(std::move(label));
  mechanism.hash = CKM_SHA_1;
  mechanism.mgf = CKG_MGF1_SHA1;
  return mechanism;
}

bool Mechanism::operator==(const Mechanism& other) const {
  return type == other.type && param_kind == other.param_kind && raw == other.raw &&
         aad == other.aad && tag_bits == other.tag_bits && hash == other.hash &&
         mgf == other.mgf && salt_length == other.salt_length;
}

std::string mechanism_name(CK_MECHANISM_TYPE type) {
  switch (type) {
    case CKM_RSA_PKCS: return "CKM_RSA_PKCS";
    case CKM_RSA_PKCS_KEY_PAIR_GEN: return "CKM_RSA_PKCS_KEY_PAIR_GEN";
    case CKM_RSA_PKCS_OAEP: return "CKM_RSA_PKCS_OAEP";
    case CKM_RSA_PKCS_PSS: return "CKM_RSA_PKCS_PSS";
    case CKM_SHA256_RSA_PKCS: return "CKM_SHA256_RSA_PKCS";
    case CKM_SHA384_RSA_PKCS: return "CKM_SHA384_RSA_PKCS";
    case CKM_SHA256_RSA_PKCS_PSS: return "CKM_SHA256_RSA_PKCS_PSS";
    case CKM_EC_KEY_PAIR_GEN: return "CKM_EC_KEY_PAIR_GEN";
    case CKM_ECDSA: return "CKM_ECDSA";
    case CKM_ECDSA_SHA256: return "CKM_ECDSA_SHA256";
    case CKM_SHA256: return "CKM_SHA256";
    case CKM_SHA384: return "CKM_SHA384";
    case CKM_SHA512: return "CKM_SHA512";
    case CKM_SHA256_HMAC: return "CKM_SHA256_HMAC";
    case CKM_GENERIC_SECRET_KEY_GEN: return "CKM_GENERIC_SECRET_KEY_GEN";
    case CKM_AES_KEY_GEN: return "CKM_AES_KEY_GEN";
    case CKM_AES_GCM: return "CKM_AES_GCM";
    case CKM_AES_CBC_PAD: return "CKM_AES_CBC_PAD";
    default: break;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "CKM_0x%lx", static_cast<unsigned long>(type));
  return buffer;
}

namespace {

// PKCS#11 takes non-const pointers to parameters it only reads.
CK_BYTE_PTR mutable_bytes(const Bytes& bytes) {
  return bytes.empty() ? nullptr : const_cast<CK_BYTE_PTR>(bytes.data());
}

}  // namespace

CkMechanism::CkMechanism(const Mechanism& mechanism) {
  mechanism_.mechanism = mechanism.type;
  switch (mechanism.param_kind) {
    case ParamKind::none:
      break;
    case ParamKind::raw:
      mechanism_.pParameter = mutable_bytes(mechanism.raw);
      mechanism_.ulParameterLen = mechanism.raw.size();
      break;
    case ParamKind::gcm:
      params_.gcm.pIv = mutable_bytes(mechanism.raw);
      params_.gcm.ulIvLen = mechanism.raw.size();
      params_.gcm.ulIvBits = mechanism.raw.size() * 8;
      params_.gcm.pAAD = mutable_bytes(mechanism.aad);
      params_.gcm.ulAADLen = mechanism.aad.size();
      params_.gcm.ulTagBits = mechanism.tag_bits;
      mechanism_.pParameter = &params_.gcm;
      mechanism_.ulParameterLen = sizeof params_.gcm;
      break;
    case ParamKind::pss:
      params_.pss.hashAlg = mechanism.hash;
      params_.pss.mgf = mechanism.mgf;
      params_.pss.sLen = mechanism.salt_length;
      mechanism_.pParameter = &params_.pss;
      mechanism_.ulParameterLen = sizeof params_.pss;
      break;
    case ParamKind::oaep:
      params_.oaep.hashAlg = mechanism.hash;
      params_.oaep.mgf = mechanism.mgf;
      params_.oaep.source = CKZ_DATA_SPECIFIED;
      params_.oaep.pSourceData = mutable_bytes(mechanism.raw);
      params_.oaep.ulSourceDataLen = mechanism.raw.size();
      mechanism_.pParameter = &params_.oaep;
      mechanism_.ulParameterLen = sizeof params_.oaep;
      break;
  }
}

}  // namespace hsmactor::pkcs11
