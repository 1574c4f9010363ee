#include "actors/operations.hpp"

#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

struct OperationRow {
  const char* name;
  KeyUse key;
  StaleRetry retry;
  Result<void> (*run)(const OperationCall&);
};

// Generated from the rows: adding an operation never touches this file.
constexpr OperationRow kOperations[] = {
#define HSMACTOR_OPERATION_ROW(name, key, retry) {#name, key, retry, &run<Op::name>},
    HSMACTOR_OPERATIONS(HSMACTOR_OPERATION_ROW)
#undef HSMACTOR_OPERATION_ROW
};

static_assert(sizeof(kOperations) / sizeof(kOperations[0]) == kOperationCount);

const OperationRow* row_of(Op op) {
  auto index = static_cast<std::size_t>(op);
  return index < kOperationCount ? &kOperations[index] : nullptr;
}

}  // namespace

const char* to_string(Op op) {
  const auto* row = row_of(op);
  return row != nullptr ? row->name : "unknown";
}

KeyUse key_use(Op op) {
  const auto* row = row_of(op);
  return row != nullptr ? row->key : KeyUse::none;
}

bool may_retry_after_stale_session(Op op) {
  const auto* row = row_of(op);
  return row != nullptr && row->retry == StaleRetry::yes;
}

bool fails_whole_batch(CK_RV rv) {
  return pkcs11::is_stale_session_rv(rv) || rv == CKR_KEY_HANDLE_INVALID ||
         rv == CKR_OBJECT_HANDLE_INVALID;
}

Result<void> run_operation(const OperationCall& call) {
  const auto* row = row_of(call.job.op);
  if (row == nullptr) {
    return Error::make(Condition::invalid_argument, "an operation hsmactor does not know");
  }
  return row->run(call);
}

}  // namespace hsmactor
