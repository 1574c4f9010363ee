#include "tools/bench/machine.hpp"

#include <fstream>
#include <sstream>
#include <vector>

namespace hsmactor::bench {

bool parse_proc_stat_cpu(const std::string& line, CpuSample& sample) {
  std::istringstream in(line);
  std::string label;
  in >> label;
  if (label != "cpu") return false;
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  std::uint64_t field[8] = {};
  for (auto& value : field) {
    if (!(in >> value)) return false;
  }
  sample.machine_busy = field[0] + field[1] + field[2] + field[5] + field[6] + field[7];
  sample.machine_total = sample.machine_busy + field[3] + field[4];
  return true;
}

bool parse_proc_self_stat(const std::string& text, CpuSample& sample) {
  // The command name (field 2) is in parentheses and may contain spaces.
  auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream in(text.substr(close + 1));
  // Fields from 3 (state) on; utime and stime are fields 14 and 15.
  std::string skip;
  for (int field = 3; field < 14; ++field) {
    if (!(in >> skip)) return false;
  }
  std::uint64_t utime = 0;
  std::uint64_t stime = 0;
  if (!(in >> utime >> stime)) return false;
  sample.process = utime + stime;
  return true;
}

CpuSample sample_cpu() {
  CpuSample sample;
  std::ifstream stat("/proc/stat");
  std::string line;
  if (!std::getline(stat, line) || !parse_proc_stat_cpu(line, sample)) return sample;
  std::ifstream self("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  sample.valid = parse_proc_self_stat(text, sample);
  return sample;
}

double others_share(const CpuSample& before, const CpuSample& after) {
  if (!before.valid || !after.valid || after.machine_total <= before.machine_total) return -1;
  double total = static_cast<double>(after.machine_total - before.machine_total);
  double busy = static_cast<double>(after.machine_busy) - static_cast<double>(before.machine_busy);
  double ours = static_cast<double>(after.process) - static_cast<double>(before.process);
  double others = busy - ours;
  // Tick accounting of the two files is not exactly simultaneous.
  if (others < 0) others = 0;
  return others / total;
}

}  // namespace hsmactor::bench
