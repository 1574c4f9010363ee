#include "pkcs11/module.hpp"

#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "pkcs11/fork_gate.hpp"

namespace hsmactor::pkcs11 {
namespace {

// Makes one C_* call inside the fork gate (see fork_gate.hpp).
template <class F>
CK_RV gated(F&& c_call) {
  ForkGateScope gate;
  return c_call();
}

template <std::size_t N>
std::string trimmed(const unsigned char (&field)[N]) {
  std::string text(reinterpret_cast<const char*>(field), N);
  // Some modules NUL-terminate inside the blank-padded field; cut there first
  // so blanks before the NUL are trimmed too.
  auto nul = text.find('\0');
  if (nul != std::string::npos) text.erase(nul);
  auto end = text.find_last_not_of(' ');
  text.erase(end == std::string::npos ? 0 : end + 1);
  return text;
}

std::optional<CK_ULONG> session_limit(CK_ULONG reported) {
  if (reported == CK_EFFECTIVELY_INFINITE || reported == CK_UNAVAILABLE_INFORMATION) {
    return std::nullopt;
  }
  return reported;
}

}  // namespace

TokenSelector TokenSelector::by_label(std::string label) {
  TokenSelector selector;
  selector.label = std::move(label);
  return selector;
}

TokenSelector TokenSelector::by_serial(std::string serial) {
  TokenSelector selector;
  selector.serial = std::move(serial);
  return selector;
}

TokenSelector TokenSelector::by_slot(CK_SLOT_ID slot) {
  TokenSelector selector;
  selector.slot = slot;
  return selector;
}

std::string TokenSelector::describe() const {
  std::string text;
  auto add = [&text](const std::string& part) {
    if (!text.empty()) text += ", ";
    text += part;
  };
  if (label) add("label=\"" + *label + "\"");
  if (serial) add("serial=\"" + *serial + "\"");
  if (slot) add("slot=" + std::to_string(*slot));
  return text.empty() ? "any token" : text;
}

Module::Module(std::string path, CK_FUNCTION_LIST* functions)
    : path_(std::move(path)), functions_(functions) {}

Result<std::string> Module::real_path(const std::string& path) {
  if (path.empty()) {
    return Error::make(Condition::module_load_failed, "empty module path", "load_module");
  }
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    return Error::make(Condition::module_load_failed,
                       "cannot resolve \"" + path + "\": " + std::strerror(errno),
                       "load_module");
  }
  std::string result(resolved);
  ::free(resolved);
  return result;
}

Result<std::shared_ptr<Module>> Module::load(const std::string& path) {
  auto resolved = real_path(path);
  if (!resolved) return resolved.error();
  // RTLD_NODELETE: the module stays mapped for the life of the process.
  void* library = ::dlopen(resolved->c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library == nullptr) {
    const char* why = ::dlerror();
    return Error::make(Condition::module_load_failed,
                       "\"" + *resolved + "\" is not a loadable shared library: " +
                           (why ? why : "unknown dlopen error"),
                       "load_module");
  }
  auto get_function_list =
      reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    ::dlclose(library);
    return Error::make(Condition::module_load_failed,
                       "\"" + *resolved + "\" has no C_GetFunctionList: not a PKCS#11 module",
                       "load_module");
  }
  CK_FUNCTION_LIST* functions = nullptr;
  CK_RV rv = get_function_list(&functions);
  if (rv != CKR_OK) return Error::from_rv(rv, "C_GetFunctionList", "load_module");
  if (functions == nullptr) {
    return Error::make(Condition::module_load_failed,
                       "C_GetFunctionList returned no function list", "load_module");
  }
  if (functions->version.major != 2) {
    return Error::make(Condition::module_load_failed,
                       "unsupported Cryptoki version " + std::to_string(functions->version.major) +
                           "." + std::to_string(functions->version.minor),
                       "load_module");
  }
  // The handle is deliberately not closed: see RTLD_NODELETE above.
  return std::shared_ptr<Module>(new Module(*resolved, functions));
}

Result<InitOutcome> Module::initialize() {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = gated([&] { return functions_->C_Initialize(&args); });
  if (rv == CKR_OK) return InitOutcome::initialized;
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return InitOutcome::already_initialized;
  return Error::from_rv(rv, "C_Initialize", "initialize");
}

Result<void> Module::finalize() {
  CK_RV rv = gated([&] { return functions_->C_Finalize(nullptr); });
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_NOT_INITIALIZED) {
    return Error::from_rv(rv, "C_Finalize", "finalize");
  }
  return success();
}

Result<std::vector<CK_SLOT_ID>> Module::slots(bool token_present) {
  // The slot count can change between the two calls (hot-plug): retry.
  for (int attempt = 0; attempt < 4; ++attempt) {
    CK_ULONG count = 0;
    CK_RV rv = gated([&] {
      return functions_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, nullptr, &count);
    });
    if (rv != CKR_OK) return Error::from_rv(rv, "C_GetSlotList", "slots");
    std::vector<CK_SLOT_ID> slots(count);
    if (count == 0) return slots;
    rv = gated([&] {
      return functions_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, slots.data(), &count);
    });
    if (rv == CKR_BUFFER_TOO_SMALL) continue;
    if (rv != CKR_OK) return Error::from_rv(rv, "C_GetSlotList", "slots");
    slots.resize(count);
    return slots;
  }
  return Error::from_rv(CKR_BUFFER_TOO_SMALL, "C_GetSlotList", "slots");
}

Result<TokenInfo> Module::token_info(CK_SLOT_ID slot) {
  CK_TOKEN_INFO raw{};
  CK_RV rv = gated([&] { return functions_->C_GetTokenInfo(slot, &raw); });
  if (rv != CKR_OK) return Error::from_rv(rv, "C_GetTokenInfo", "token_info");
  TokenInfo info;
  info.slot = slot;
  info.label = trimmed(raw.label);
  info.manufacturer = trimmed(raw.manufacturerID);
  info.model = trimmed(raw.model);
  info.serial = trimmed(raw.serialNumber);
  info.flags = raw.flags;
  info.max_sessions = session_limit(raw.ulMaxSessionCount);
  info.max_rw_sessions = session_limit(raw.ulMaxRwSessionCount);
  info.session_count = raw.ulSessionCount;
  info.rw_session_count = raw.ulRwSessionCount;
  info.min_pin_length = raw.ulMinPinLen;
  info.max_pin_length = raw.ulMaxPinLen;
  return info;
}

Result<CK_SLOT_ID> Module::find_token(const TokenSelector& selector) {
  auto present = slots(true);
  if (!present) return present.error().in_operation("find_token");
  for (CK_SLOT_ID slot : *present) {
    if (selector.slot && *selector.slot != slot) continue;
    auto info = token_info(slot);
    if (!info) continue;  // removed between the two calls
    if (!info->initialized()) continue;
    if (selector.label && *selector.label != info->label) continue;
    if (selector.serial && *selector.serial != info->serial) continue;
    return slot;
  }
  return Error::make(Condition::token_not_found, "no token with " + selector.describe(),
                     "find_token");
}

Result<std::vector<CK_MECHANISM_TYPE>> Module::mechanisms(CK_SLOT_ID slot) {
  CK_ULONG count = 0;
  CK_RV rv = gated([&] { return functions_->C_GetMechanismList(slot, nullptr, &count); });
  if (rv != CKR_OK) return Error::from_rv(rv, "C_GetMechanismList", "mechanisms");
  std::vector<CK_MECHANISM_TYPE> list(count);
  rv = gated([&] { return functions_->C_GetMechanismList(slot, list.data(), &count); });
  if (rv != CKR_OK) return Error::from_rv(rv, "C_GetMechanismList", "mechanisms");
  list.resize(count);
  return list;
}

Result<void> Module::init_token(CK_SLOT_ID slot, const Pin& so_pin, const std::string& label) {
  unsigned char padded[32];
  std::memset(padded, ' ', sizeof padded);
  std::memcpy(padded, label.data(), std::min(label.size(), sizeof padded));
  CK_RV rv = gated([&] {
    return functions_->C_InitToken(slot, const_cast<CK_UTF8CHAR_PTR>(so_pin.data()), so_pin.size(),
                                   padded);
  });
  if (rv != CKR_OK) return Error::from_rv(rv, "C_InitToken", "init_token");
  return success();
}

Result<Session> Module::open_session(CK_SLOT_ID slot, SessionMode mode,
                                     CallObserver* observer) {
  CK_FLAGS flags = CKF_SERIAL_SESSION;
  if (mode == SessionMode::read_write) flags |= CKF_RW_SESSION;
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  std::chrono::steady_clock::time_point start;
  if (observer != nullptr) start = std::chrono::steady_clock::now();
  CK_RV rv =
      gated([&] { return functions_->C_OpenSession(slot, flags, nullptr, nullptr, &handle); });
  if (observer != nullptr) {
    const auto duration = std::chrono::steady_clock::now() - start;
    observer->on_call(CallRecord{"C_OpenSession", rv == CKR_OK ? handle : CK_INVALID_HANDLE, slot,
                                 std::chrono::duration_cast<std::chrono::nanoseconds>(duration),
                                 rv});
  }
  if (rv != CKR_OK) return Error::from_rv(rv, "C_OpenSession", "open_session");
  Session session(functions_, handle, slot);
  session.set_observer(observer);
  return session;
}

Result<void> Module::close_all_sessions(CK_SLOT_ID slot) {
  CK_RV rv = gated([&] { return functions_->C_CloseAllSessions(slot); });
  if (rv != CKR_OK) return Error::from_rv(rv, "C_CloseAllSessions", "close_all_sessions");
  return success();
}

}  // namespace hsmactor::pkcs11
