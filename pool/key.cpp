#include "pool/key.hpp"

#include <atomic>

#include "pool/internal/key_access.hpp"

namespace hsmactor {

// The cached handle is read and written by every request that uses the key,
// from many threads: a sequence lock keeps that free of mutexes, and a write
// happens only when the handle actually changed.
struct Key::State {
  pkcs11::AttributeList query;
  std::atomic<std::uint32_t> version{0};  // odd while a writer is inside
  std::atomic<std::uint64_t> handle{0};
  std::atomic<std::uint64_t> generation{0};

  void read(std::uint64_t& h, std::uint64_t& g) const {
    for (;;) {
      std::uint32_t before = version.load(std::memory_order_acquire);
      if (before & 1u) continue;
      // Acquire loads keep the version re-read below from moving above them.
      h = handle.load(std::memory_order_acquire);
      g = generation.load(std::memory_order_acquire);
      if (version.load(std::memory_order_relaxed) == before) return;
    }
  }

  void write(std::uint64_t h, std::uint64_t g) {
    std::uint64_t old_handle = 0;
    std::uint64_t old_generation = 0;
    read(old_handle, old_generation);
    if (old_handle == h && old_generation == g) return;
    std::uint32_t current = version.load(std::memory_order_relaxed);
    do {
      current &= ~1u;
    } while (!version.compare_exchange_weak(current, current + 1, std::memory_order_acquire));
    // Release: a reader that sees either value also sees the odd version.
    handle.store(h, std::memory_order_release);
    generation.store(g, std::memory_order_release);
    version.store(current + 2, std::memory_order_release);
  }
};

Key Key::matching(pkcs11::AttributeList query) {
  Key key;
  key.state_ = std::make_shared<State>();
  key.state_->query = std::move(query);
  return key;
}

Key Key::private_key(const std::string& label) {
  return matching(pkcs11::AttributeList().set_ulong(CKA_CLASS, CKO_PRIVATE_KEY).set_string(CKA_LABEL, label));
}

Key Key::public_key(const std::string& label) {
  return matching(pkcs11::AttributeList().set_ulong(CKA_CLASS, CKO_PUBLIC_KEY).set_string(CKA_LABEL, label));
}

Key Key::secret_key(const std::string& label) {
  return matching(pkcs11::AttributeList().set_ulong(CKA_CLASS, CKO_SECRET_KEY).set_string(CKA_LABEL, label));
}

Key Key::by_id(CK_OBJECT_CLASS object_class, Bytes id) {
  return matching(pkcs11::AttributeList().set_ulong(CKA_CLASS, object_class).set_bytes(CKA_ID, std::move(id)));
}

const pkcs11::AttributeList& Key::query() const {
  static const pkcs11::AttributeList empty;
  return state_ ? state_->query : empty;
}

namespace internal {

KeyRef KeyAccess::ref(const Key& key) {
  KeyRef ref;
  if (!key.state_) return ref;
  ref.query = key.state_->query;
  key.state_->read(ref.handle, ref.generation);
  return ref;
}

void KeyAccess::remember(const Key& key, std::uint64_t handle, std::uint64_t generation) {
  if (!key.state_ || handle == 0) return;
  key.state_->write(handle, generation);
}

}  // namespace internal
}  // namespace hsmactor
