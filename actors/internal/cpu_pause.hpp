// A spin-wait hint for the CPU.
#pragma once

namespace hsmactor::internal {

/// A pause that lets the sibling hyper-thread have the core while we spin.
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace hsmactor::internal
