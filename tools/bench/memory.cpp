#include "tools/bench/memory.hpp"

#include <unistd.h>

#include <fstream>
#include <vector>

namespace hsmactor::bench {

std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size_pages = 0;
  std::int64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

MemoryMeasurement measure_raw_sessions(pkcs11::Module& module, CK_SLOT_ID slot,
                                       std::size_t count) {
  MemoryMeasurement measurement;
  std::vector<pkcs11::Session> sessions;
  // Reserved first, so the vector's own growth is not counted.
  sessions.reserve(count);
  measurement.rss_before = resident_bytes();
  for (std::size_t i = 0; i < count; ++i) {
    auto session = module.open_session(slot);
    if (!session) {
      measurement.note = "C_OpenSession failed: " + session.error().message();
      return measurement;
    }
    sessions.push_back(std::move(*session));
  }
  measurement.rss_after = resident_bytes();
  measurement.sessions = count;
  return measurement;
}

}  // namespace hsmactor::bench
