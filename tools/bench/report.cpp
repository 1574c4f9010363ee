#include "tools/bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>

namespace hsmactor::bench {
namespace {

std::string printf_string(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

/// Returns the number of characters (UTF-8 code points) in `text`.
std::size_t display_width(const std::string& text) {
  std::size_t width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80;
  return width;
}

std::string pad_left(const std::string& text, std::size_t width) {
  std::size_t used = display_width(text);
  return used >= width ? text : std::string(width - used, ' ') + text;
}

std::string pad_right(const std::string& text, std::size_t width) {
  std::size_t used = display_width(text);
  return used >= width ? text : text + std::string(width - used, ' ');
}

std::string format_rate(double ops_per_second) {
  return printf_string(ops_per_second >= 100 ? "%.0f" : "%.1f", ops_per_second);
}

std::string format_us(std::uint64_t nanoseconds) {
  return printf_string("%.1f", nanoseconds / 1000.0);
}

std::string format_kib(double bytes) { return printf_string("%.1f KiB", bytes / 1024.0); }

/// Returns a short axis label: 950, 12k, 1.5M.
std::string format_si(double value) {
  auto scaled = [](double units, const char* suffix) {
    bool whole = std::fabs(units - std::round(units)) < 1e-9 || units >= 10;
    return printf_string(whole ? "%.0f" : "%.1f", units) + suffix;
  };
  if (value >= 1e6) return scaled(value / 1e6, "M");
  if (value >= 1e3) return scaled(value / 1e3, "k");
  return printf_string("%.0f", value);
}

std::string xml_escape(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&': escaped += "&amp;"; break;
      case '<': escaped += "&lt;"; break;
      case '>': escaped += "&gt;"; break;
      case '"': escaped += "&quot;"; break;
      default: escaped += c;
    }
  }
  return escaped;
}

/// Returns the operations present in `cells`, in report order.
std::vector<Operation> operations_in(const std::vector<CellResult>& cells) {
  std::vector<Operation> present;
  for (Operation operation : all_operations()) {
    for (const CellResult& cell : cells) {
      if (cell.operation == operation) {
        present.push_back(operation);
        break;
      }
    }
  }
  return present;
}

/// Returns the concurrency levels of `operation`'s cells, ascending.
std::vector<int> levels_of(const std::vector<CellResult>& cells, Operation operation) {
  std::set<int> levels;
  for (const CellResult& cell : cells) {
    if (cell.operation == operation) levels.insert(cell.concurrency);
  }
  return {levels.begin(), levels.end()};
}

struct Style {
  const char* color;
  const char* dash;
};

Style style_of(StrategyKind strategy) {
  switch (strategy) {
    case StrategyKind::raw_thread: return {"#222222", ""};
    case StrategyKind::raw_mutex: return {"#8c8c8c", "6,4"};
    case StrategyKind::raw_per_op: return {"#8c564b", "2,3"};
    case StrategyKind::hsm_future: return {"#1f77b4", ""};
    case StrategyKind::hsm_callback: return {"#2ca02c", ""};
    case StrategyKind::hsm_actor: return {"#d62728", ""};
    case StrategyKind::hsm_asio: return {"#9467bd", ""};
    case StrategyKind::hsm_cq: return {"#17becf", ""};
    case StrategyKind::hsm_batch: return {"#e377c2", "5,2"};
    case StrategyKind::openssl_engine: return {"#ff7f0e", "8,3,2,3"};
  }
  return {"#000000", ""};
}

/// The smallest ratio of `strategy` to `baseline` at the same concurrency.
struct MinRatio {
  double ratio = std::numeric_limits<double>::infinity();
  int concurrency = 0;
  bool found = false;
};

MinRatio min_ratio(const std::vector<CellResult>& cells, StrategyKind strategy,
                   StrategyKind baseline, Operation operation) {
  MinRatio worst;
  for (const CellResult& cell : cells) {
    if (cell.strategy != strategy || cell.operation != operation ||
        cell.status != CellStatus::measured) {
      continue;
    }
    const CellResult* base = find_cell(cells, baseline, operation, cell.concurrency);
    if (base == nullptr || base->ops_per_second() <= 0) continue;
    double ratio = cell.ops_per_second() / base->ops_per_second();
    if (!worst.found || ratio < worst.ratio) {
      worst.ratio = ratio;
      worst.concurrency = cell.concurrency;
      worst.found = true;
    }
  }
  return worst;
}

/// Returns the measured cell of `operation` with the highest throughput among
/// `strategies`, at `concurrency` only when it is above 0; null when none.
const CellResult* best_cell(const std::vector<CellResult>& cells, Operation operation,
                            const std::vector<StrategyKind>& strategies, int concurrency = 0) {
  const CellResult* best = nullptr;
  for (const CellResult& cell : cells) {
    if (cell.operation != operation || cell.status != CellStatus::measured ||
        (concurrency > 0 && cell.concurrency != concurrency) ||
        std::find(strategies.begin(), strategies.end(), cell.strategy) == strategies.end()) {
      continue;
    }
    if (best == nullptr || cell.ops_per_second() > best->ops_per_second()) best = &cell;
  }
  return best;
}

/// Returns "1 caller", "64 callers".
std::string callers(int concurrency) {
  return std::to_string(concurrency) + (concurrency == 1 ? " caller" : " callers");
}

/// Returns "hsm-cq 980/s at 64 callers".
std::string describe_cell(const CellResult& cell) {
  return std::string(to_string(cell.strategy)) + " " + format_rate(cell.ops_per_second()) +
         "/s at " + callers(cell.concurrency);
}

std::string strategy_list(const std::vector<StrategyKind>& strategies) {
  std::string names;
  for (StrategyKind strategy : strategies) {
    names += (names.empty() ? "" : "/") + std::string(to_string(strategy));
  }
  return names;
}

TargetCheck not_measured(std::string target) { return {std::move(target), "not measured", {}}; }

/// `strategy` >= `goal` x `baseline` at every concurrency measured for both.
TargetCheck worst_ratio_check(const std::vector<CellResult>& cells, Operation operation,
                              StrategyKind strategy, StrategyKind baseline, double goal,
                              const std::string& target) {
  MinRatio worst = min_ratio(cells, strategy, baseline, operation);
  if (!worst.found) return not_measured(target);
  return {target,
          printf_string("min %.2fx", worst.ratio) + " (at " + callers(worst.concurrency) + ")",
          worst.ratio >= goal};
}

/// The best pipelined figure of `operation` over all concurrencies against
/// its ceiling, raw-thread's best over all concurrencies: raw-thread's peak
/// and the pipelined peak need not be at the same concurrency.
TargetCheck pipelined_check(const std::vector<CellResult>& cells, Operation operation,
                            double goal, bool with_batching) {
  std::vector<StrategyKind> pipelined = {StrategyKind::hsm_cq, StrategyKind::hsm_asio};
  if (with_batching) pipelined.push_back(StrategyKind::hsm_batch);
  std::string target = std::string(to_string(operation)) + " pipelined: best of " +
                       strategy_list(pipelined) + printf_string(" >= %.2f", goal) +
                       " of raw-thread's best";
  const CellResult* ceiling = best_cell(cells, operation, {StrategyKind::raw_thread});
  const CellResult* best = best_cell(cells, operation, pipelined);
  if (ceiling == nullptr || best == nullptr || ceiling->ops_per_second() <= 0) {
    return not_measured(target);
  }
  double ratio = best->ops_per_second() / ceiling->ops_per_second();
  std::string measured = printf_string("%.2fx: ", ratio) + describe_cell(*best) +
                         "; ceiling " + describe_cell(*ceiling);
  // Batching does not count here, but a reader comparing with it should see it.
  const CellResult* batch = with_batching ? nullptr
                                          : best_cell(cells, operation, {StrategyKind::hsm_batch});
  if (batch != nullptr) {
    measured += printf_string(" (hsm-batch %.2fx, not counted)",
                              batch->ops_per_second() / ceiling->ops_per_second());
  }
  return {target, measured, ratio >= goal};
}

/// hsm-future's median at 1 caller less raw-thread's, on random (the cheapest
/// call, so the overhead shows).
TargetCheck added_latency_check(const std::vector<CellResult>& cells, double goal_us) {
  std::string target =
      "random, 1 caller: hsm-future p50 - raw-thread p50 <= " + printf_string("%.0f", goal_us) +
      " µs";
  const CellResult* hsm = find_cell(cells, StrategyKind::hsm_future, Operation::random, 1);
  const CellResult* raw = find_cell(cells, StrategyKind::raw_thread, Operation::random, 1);
  if (hsm == nullptr || raw == nullptr) return not_measured(target);
  double added_us =
      (static_cast<double>(hsm->latency.p50_ns) - static_cast<double>(raw->latency.p50_ns)) /
      1000.0;
  return {target,
          printf_string("%+.1f µs", added_us) + " (" + format_us(hsm->latency.p50_ns) + " vs " +
              format_us(raw->latency.p50_ns) + " µs)",
          added_us <= goal_us};
}

TargetCheck memory_check(const MemoryReport& memory) {
  std::string target = "<= 64 KiB per session actor (with its open session)";
  const MemoryMeasurement& m = memory.actors_with_sessions;
  if (!m.measured()) return not_measured(target);
  std::string measured = format_kib(m.per_session_bytes());
  if (memory.raw_sessions.measured()) {
    measured +=
        " (of which the module's session " + format_kib(memory.raw_sessions.per_session_bytes()) + ")";
  }
  return {target, measured, m.per_session_bytes() <= 64 * 1024};
}

}  // namespace

const CellResult* find_cell(const std::vector<CellResult>& cells, StrategyKind strategy,
                            Operation operation, int concurrency) {
  for (const CellResult& cell : cells) {
    if (cell.strategy == strategy && cell.operation == operation &&
        cell.concurrency == concurrency && cell.status == CellStatus::measured) {
      return &cell;
    }
  }
  return nullptr;
}

std::optional<double> ratio_to_raw_thread(const std::vector<CellResult>& cells,
                                          const CellResult& cell) {
  if (cell.status != CellStatus::measured) return std::nullopt;
  const CellResult* base =
      find_cell(cells, StrategyKind::raw_thread, cell.operation, cell.concurrency);
  if (base == nullptr || base->ops_per_second() <= 0) return std::nullopt;
  return cell.ops_per_second() / base->ops_per_second();
}

std::optional<double> ratio_to_ideal(const CellResult& cell, double ideal_ops_per_second) {
  if (cell.status != CellStatus::measured || !(ideal_ops_per_second > 0)) return std::nullopt;
  return cell.ops_per_second() / ideal_ops_per_second;
}

void sort_for_report(std::vector<CellResult>& cells) {
  auto rank = [](const auto& all, auto value) {
    return static_cast<std::size_t>(std::find(all.begin(), all.end(), value) - all.begin());
  };
  const std::vector<Operation> operations = all_operations();
  const std::vector<StrategyKind> strategies = all_strategies();
  std::stable_sort(cells.begin(), cells.end(), [&](const CellResult& a, const CellResult& b) {
    auto key = [&](const CellResult& cell) {
      return std::make_tuple(rank(operations, cell.operation), cell.concurrency,
                             rank(strategies, cell.strategy));
    };
    return key(a) < key(b);
  });
}

double nice_ceiling(double value) {
  if (!(value > 0)) return 1;
  double decade = std::pow(10.0, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 5.0, 10.0}) {
    // A little slack so that exact powers stay themselves despite rounding.
    if (step * decade >= value * (1 - 1e-12)) return step * decade;
  }
  return 10 * decade;
}

std::string csv_field(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string format_table(const std::vector<CellResult>& cells, const Reference& reference) {
  const bool to_ideal = reference.ideal_ops_per_second > 0;
  const std::vector<std::string> header = {
      "operation", "callers", "strategy",  "ops/s",  "p50 µs", "p99 µs",
      to_ideal ? "vs ideal" : "vs raw-thread", "CPU µs/op", "errors", "others", "note"};
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> group_starts;
  for (Operation operation : operations_in(cells)) {
    for (int level : levels_of(cells, operation)) {
      bool first = true;
      for (StrategyKind strategy : all_strategies()) {
        for (const CellResult& cell : cells) {
          if (cell.operation != operation || cell.concurrency != level ||
              cell.strategy != strategy) {
            continue;
          }
          std::vector<std::string> row = {to_string(operation), std::to_string(level),
                                          to_string(strategy)};
          if (cell.status == CellStatus::measured) {
            auto ratio = to_ideal ? ratio_to_ideal(cell, reference.ideal_ops_per_second)
                                  : ratio_to_raw_thread(cells, cell);
            row.push_back(format_rate(cell.ops_per_second()));
            row.push_back(format_us(cell.latency.p50_ns));
            row.push_back(format_us(cell.latency.p99_ns));
            row.push_back(ratio ? printf_string("%.2fx", *ratio) : "-");
            row.push_back(cell.cpu_us_per_op < 0 ? "?" : printf_string("%.1f", cell.cpu_us_per_op));
            row.push_back(std::to_string(cell.errors));
            row.push_back(cell.others_cpu < 0 ? "?" : printf_string("%.0f%%", cell.others_cpu * 100));
            std::string note = cell.errors > 0 ? cell.note.substr(0, 70) : "";
            if (!cell.caveat.empty()) note = cell.caveat + (note.empty() ? "" : "; " + note);
            if (cell.drain_seconds > kStallSeconds) {
              note = printf_string("stalled %.1f s after the window", cell.drain_seconds) +
                     (note.empty() ? "" : "; " + note);
            }
            row.push_back(note);
          } else {
            row.insert(row.end(), {"-", "-", "-", "-", "-", "-", "-"});
            row.push_back(std::string(to_string(cell.status)) +
                          (cell.note.empty() ? "" : ": " + cell.note.substr(0, 70)));
          }
          rows.push_back(std::move(row));
          group_starts.push_back(first);
          first = false;
        }
      }
    }
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (std::size_t c = 0; c < header.size(); ++c) widths[c] = display_width(header[c]);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], display_width(row[c]));
    }
  }
  // Text columns align left, numbers right; the note is last and unpadded.
  auto left_aligned = [](std::size_t column) { return column <= 2 || column == 10; };
  auto render = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      if (c + 1 == row.size()) {
        line += row[c];
      } else {
        line += left_aligned(c) ? pad_right(row[c], widths[c]) : pad_left(row[c], widths[c]);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string table = render(header);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (group_starts[r] && r > 0) table += "\n";
    table += render(rows[r]);
  }
  return table;
}

std::string format_csv(const std::vector<CellResult>& cells, const Reference& reference) {
  std::ostringstream out;
  out << "operation,strategy,concurrency,status,ops_per_second,p50_us,p99_us,mean_us,max_us,"
         "ratio_to_raw_thread,operations,errors,seconds,pool_p50_us,others_cpu_percent,runs,late,"
         "drain_seconds,cpu_us_per_op,ratio_to_ideal,note\n";
  for (const CellResult& cell : cells) {
    bool measured = cell.status == CellStatus::measured;
    auto ratio = ratio_to_raw_thread(cells, cell);
    auto ideal = ratio_to_ideal(cell, reference.ideal_ops_per_second);
    out << to_string(cell.operation) << ',' << to_string(cell.strategy) << ','
        << cell.concurrency << ',' << to_string(cell.status) << ',';
    if (measured) {
      out << printf_string("%.1f", cell.ops_per_second()) << ','
          << printf_string("%.3f", cell.latency.p50_ns / 1000.0) << ','
          << printf_string("%.3f", cell.latency.p99_ns / 1000.0) << ','
          << printf_string("%.3f", cell.latency.mean_ns / 1000.0) << ','
          << printf_string("%.3f", cell.latency.max_ns / 1000.0) << ','
          << (ratio ? printf_string("%.4f", *ratio) : "") << ',' << cell.operations << ','
          << cell.errors << ',' << printf_string("%.3f", cell.seconds) << ','
          << (cell.pool_latency.count ? printf_string("%.3f", cell.pool_latency.p50_ns / 1000.0)
                                      : "")
          << ',' << (cell.others_cpu >= 0 ? printf_string("%.1f", cell.others_cpu * 100) : "")
          << ',' << cell.runs << ',' << cell.late << ','
          << printf_string("%.3f", cell.drain_seconds) << ','
          << (cell.cpu_us_per_op >= 0 ? printf_string("%.2f", cell.cpu_us_per_op) : "") << ','
          << (ideal ? printf_string("%.4f", *ideal) : "") << ',';
    } else {
      out << ",,,,,,,,,,,,,,,,";
    }
    std::string note = cell.note;
    if (measured && !cell.caveat.empty()) note = cell.caveat + (note.empty() ? "" : "; " + note);
    out << csv_field(note) << '\n';
  }
  return out.str();
}

std::string render_svg(const std::vector<CellResult>& cells) {
  const std::vector<Operation> operations = operations_in(cells);
  const int chart_width = 420;
  const int chart_height = 290;
  const int legend_height = 56;
  const int columns = std::max<int>(1, std::min<int>(3, operations.size()));
  const int chart_rows = (static_cast<int>(operations.size()) + columns - 1) / columns;
  const int width = columns * chart_width;
  const int height = legend_height + std::max(1, chart_rows) * chart_height;

  std::vector<StrategyKind> strategies;
  for (StrategyKind strategy : all_strategies()) {
    for (const CellResult& cell : cells) {
      if (cell.strategy == strategy && cell.status == CellStatus::measured) {
        strategies.push_back(strategy);
        break;
      }
    }
  }

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
      << height << "\" viewBox=\"0 0 " << width << ' ' << height
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"12\" y=\"20\" font-size=\"14\" font-weight=\"bold\">"
         "hsmactor-bench: throughput (ops/s) against callers</text>\n";
  // Legend: one entry per strategy with numbers.
  int legend_x = 12;
  for (StrategyKind strategy : strategies) {
    Style style = style_of(strategy);
    svg << "<line x1=\"" << legend_x << "\" y1=\"40\" x2=\"" << legend_x + 24
        << "\" y2=\"40\" stroke=\"" << style.color << "\" stroke-width=\"2.5\""
        << (*style.dash ? std::string(" stroke-dasharray=\"") + style.dash + "\"" : "")
        << "/>\n";
    svg << "<text x=\"" << legend_x + 30 << "\" y=\"44\">" << to_string(strategy) << "</text>\n";
    legend_x += 38 + 7 * static_cast<int>(std::string(to_string(strategy)).size()) + 12;
  }

  for (std::size_t index = 0; index < operations.size(); ++index) {
    Operation operation = operations[index];
    const int x0 = static_cast<int>(index % columns) * chart_width;
    const int y0 = legend_height + static_cast<int>(index / columns) * chart_height;
    const double left = x0 + 62, right = x0 + chart_width - 18;
    const double top = y0 + 30, bottom = y0 + chart_height - 42;

    std::vector<int> levels = levels_of(cells, operation);
    double low = std::log2(levels.empty() ? 1 : levels.front());
    double high = std::log2(levels.empty() ? 2 : levels.back());
    if (high - low < 1e-9) {
      low -= 1;
      high += 1;
    }
    double peak = 0;
    double least = 0;
    for (const CellResult& cell : cells) {
      if (cell.operation == operation && cell.status == CellStatus::measured &&
          cell.ops_per_second() > 0) {
        peak = std::max(peak, cell.ops_per_second());
        least = least == 0 ? cell.ops_per_second() : std::min(least, cell.ops_per_second());
      }
    }
    // Strategies far apart (20x and more) would flatten the slow ones into the
    // axis on a linear scale: such charts use a log scale, and say so.
    const bool log_scale = least > 0 && peak / least >= 20;
    const double y_max = log_scale ? std::pow(10.0, std::ceil(std::log10(peak)))
                                   : nice_ceiling(peak * 1.05);
    const double y_min = log_scale ? std::pow(10.0, std::floor(std::log10(least))) : 0;
    auto x_of = [&](int level) { return left + (std::log2(level) - low) / (high - low) * (right - left); };
    auto y_of = [&](double value) {
      double share = log_scale ? (std::log10(value) - std::log10(y_min)) /
                                     (std::log10(y_max) - std::log10(y_min))
                               : value / y_max;
      return bottom - share * (bottom - top);
    };
    std::vector<double> y_ticks;
    if (log_scale) {
      for (double value = y_min; value <= y_max * 1.001; value *= 10) y_ticks.push_back(value);
    } else {
      for (int step = 0; step <= 5; ++step) y_ticks.push_back(y_max * step / 5);
    }

    svg << "<g>\n<text x=\"" << x0 + chart_width / 2 << "\" y=\"" << y0 + 18
        << "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">"
        << to_string(operation) << "</text>\n";
    for (double value : y_ticks) {
      double y = y_of(value);
      svg << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << right << "\" y2=\"" << y
          << "\" stroke=\"#e4e4e4\"/>\n";
      svg << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
          << format_si(value) << "</text>\n";
    }
    for (int level : levels) {
      double x = x_of(level);
      svg << "<line x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x << "\" y2=\"" << bottom
          << "\" stroke=\"#f0f0f0\"/>\n";
      svg << "<text x=\"" << x << "\" y=\"" << bottom + 15 << "\" text-anchor=\"middle\">"
          << level << "</text>\n";
    }
    svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left
        << "\" height=\"" << bottom - top << "\" fill=\"none\" stroke=\"#888888\"/>\n";
    svg << "<text x=\"" << (left + right) / 2 << "\" y=\"" << bottom + 32
        << "\" text-anchor=\"middle\">callers (log2 scale)</text>\n";
    svg << "<text transform=\"translate(" << x0 + 14 << ',' << (top + bottom) / 2
        << ") rotate(-90)\" text-anchor=\"middle\">"
        << (log_scale ? "ops/s (log scale)" : "ops/s") << "</text>\n";

    for (StrategyKind strategy : strategies) {
      Style style = style_of(strategy);
      std::string points;
      std::string dots;
      for (int level : levels) {
        const CellResult* cell = find_cell(cells, strategy, operation, level);
        if (cell == nullptr) continue;
        std::string x = printf_string("%.1f", x_of(level));
        std::string y = printf_string("%.1f", y_of(cell->ops_per_second()));
        points += (points.empty() ? "" : " ") + x + "," + y;
        dots += "<circle cx=\"" + x + "\" cy=\"" + y + "\" r=\"2.8\" fill=\"" + style.color +
                "\"><title>" + xml_escape(to_string(strategy)) + " @" + std::to_string(level) +
                ": " + format_rate(cell->ops_per_second()) + " ops/s</title></circle>\n";
      }
      if (points.empty()) continue;
      svg << "<polyline fill=\"none\" stroke=\"" << style.color << "\" stroke-width=\"2\""
          << (*style.dash ? std::string(" stroke-dasharray=\"") + style.dash + "\"" : "")
          << " points=\"" << points << "\"><title>" << to_string(strategy)
          << "</title></polyline>\n"
          << dots;
    }
    svg << "</g>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string format_breakdown(const std::vector<CellResult>& cells) {
  std::string text;
  for (const CellResult& cell : cells) {
    if (cell.status != CellStatus::measured || cell.pool_latency.count == 0) continue;
    if (text.empty()) {
      text =
          "Where hsmactor's median goes (caller p50 = caller<->pool + pool overhead + PKCS#11;\n"
          "PKCS#11 is raw-thread's p50 at the same callers; medians do not add exactly):\n" +
          pad_right("  operation", 12) + pad_left("callers", 8) + "  " +
          pad_right("strategy", 13) + pad_left("caller p50", 12) + pad_left("pool p50", 10) +
          pad_left("caller<->pool", 15) + pad_left("pool overhead", 15) + pad_left("PKCS#11", 10) +
          "   (µs)\n";
    }
    double caller = cell.latency.p50_ns / 1000.0;
    double pool = cell.pool_latency.p50_ns / 1000.0;
    const CellResult* raw =
        find_cell(cells, StrategyKind::raw_thread, cell.operation, cell.concurrency);
    text += pad_right(std::string("  ") + to_string(cell.operation), 12) +
            pad_left(std::to_string(cell.concurrency), 8) + "  " +
            pad_right(to_string(cell.strategy), 13) + pad_left(printf_string("%.1f", caller), 12) +
            pad_left(printf_string("%.1f", pool), 10) +
            pad_left(printf_string("%.1f", caller - pool), 15);
    if (raw != nullptr) {
      double call = raw->latency.p50_ns / 1000.0;
      text += pad_left(printf_string("%.1f", pool - call), 15) +
              pad_left(printf_string("%.1f", call), 10);
    }
    text += "\n";
  }
  return text;
}

std::string format_stalls(const std::vector<CellResult>& cells) {
  std::string text;
  for (const CellResult& cell : cells) {
    if (cell.status != CellStatus::measured || cell.drain_seconds <= kStallSeconds) continue;
    if (text.empty()) {
      text = "Stalls: requests in flight at the end of a window that took over " +
             printf_string("%.0f", kStallSeconds) + " s to be answered:\n";
    }
    text += std::string("  ") + to_string(cell.operation) + " x" +
            std::to_string(cell.concurrency) + " " + to_string(cell.strategy) + ": " +
            std::to_string(cell.late) + " late answers, the last " +
            printf_string("%.1f", cell.drain_seconds) + " s after the window" +
            (cell.late_error.empty() ? std::string(", all successful")
                                     : "; first late error: " + cell.late_error) +
            "\n";
    if (!cell.stall_detail.empty()) text += "    during the stall: " + cell.stall_detail + "\n";
  }
  return text;
}

std::string format_memory(const MemoryReport& memory) {
  std::ostringstream out;
  auto line = [&out](const char* what, const MemoryMeasurement& m, const char* remark) {
    out << "  " << pad_right(what, 52);
    if (m.measured()) {
      out << pad_left(format_kib(m.per_session_bytes()), 11) << "  (" << m.sessions
          << " sessions, RSS " << format_kib(static_cast<double>(m.rss_before)) << " -> "
          << format_kib(static_cast<double>(m.rss_after)) << ")" << remark;
    } else {
      out << "not measured" << (m.note.empty() ? "" : ": " + m.note);
    }
    out << "\n";
  };
  out << "Resident memory per session (RSS from /proc/self/statm before and after opening\n"
         "N sessions at once, divided by N):\n";
  line("raw PKCS#11 session (the module's own state)", memory.raw_sessions, "");
  line("hsmactor session actor, spawned, no PKCS#11 session", memory.actors_only, "");
  line("hsmactor session actor with its open session", memory.actors_with_sessions,
       "\n    includes the module's own per-session memory (the line above it), the\n"
       "    actor's thread stack pages and allocator arenas the new threads touched");
  return out.str();
}

std::vector<TargetCheck> check_targets(const std::vector<CellResult>& cells,
                                       const MemoryReport& memory) {
  std::vector<TargetCheck> checks;
  const std::tuple<Operation, double, bool> pipelined_goals[] = {
      {Operation::ecdsa, 0.97, false}, {Operation::rsa, 0.97, false},
      {Operation::hmac, 0.90, false},  {Operation::random, 0.80, true},
      {Operation::digest, 0.80, true}};
  for (auto [operation, goal, with_batching] : pipelined_goals) {
    checks.push_back(pipelined_check(cells, operation, goal, with_batching));
  }
  auto named = [](Operation operation, const char* target) {
    return std::string(to_string(operation)) + ": " + target + " at every concurrency";
  };
  // libp11's engine does only ECDSA and RSA with token keys.
  for (Operation operation : {Operation::ecdsa, Operation::rsa}) {
    checks.push_back(worst_ratio_check(cells, operation, StrategyKind::hsm_future,
                                       StrategyKind::openssl_engine, 1.0,
                                       named(operation, "hsm-future >= openssl-engine")));
  }
  for (Operation operation : {Operation::ecdsa, Operation::rsa}) {
    checks.push_back(worst_ratio_check(cells, operation, StrategyKind::hsm_future,
                                       StrategyKind::raw_thread, 0.90,
                                       named(operation, "hsm-future >= 0.90 of raw-thread")));
  }
  checks.push_back(added_latency_check(cells, 2.0));
  for (Operation operation : all_operations()) {
    checks.push_back(worst_ratio_check(cells, operation, StrategyKind::hsm_actor,
                                       StrategyKind::hsm_future, 0.90,
                                       named(operation, "hsm-actor >= 0.90 of hsm-future")));
  }
  checks.push_back(memory_check(memory));
  return checks;
}

namespace {

/// The best hsmactor strategy at kNetworkTargetCallers against the ideal.
TargetCheck network_check(const std::vector<CellResult>& cells, Operation operation,
                          double ideal_ops_per_second) {
  std::vector<StrategyKind> hsmactor_kinds;
  for (StrategyKind kind : all_strategies()) {
    if (is_hsmactor(kind)) hsmactor_kinds.push_back(kind);
  }
  std::string target = std::string(to_string(operation)) + ", " +
                       std::to_string(kNetworkTargetCallers) +
                       " callers: best hsm-* >= 0.95 of the ideal " +
                       format_rate(ideal_ops_per_second) + "/s";
  const CellResult* best = best_cell(cells, operation, hsmactor_kinds, kNetworkTargetCallers);
  if (best == nullptr || !(ideal_ops_per_second > 0)) return not_measured(target);
  double ratio = best->ops_per_second() / ideal_ops_per_second;
  return {target,
          printf_string("%.2fx: ", ratio) + describe_cell(*best) + ", p99 " +
              format_us(best->latency.p99_ns) + " µs",
          ratio >= 0.95};
}

}  // namespace

std::vector<TargetCheck> check_network_targets(const std::vector<CellResult>& cells,
                                               double ideal_ops_per_second) {
  // Only C_Sign is delayed, so the ideal applies to the signing operations.
  std::vector<TargetCheck> checks;
  for (Operation operation : operations_in(cells)) {
    if (operation == Operation::random || operation == Operation::digest) continue;
    checks.push_back(network_check(cells, operation, ideal_ops_per_second));
  }
  if (checks.empty()) {
    checks.push_back(network_check(cells, Operation::ecdsa, ideal_ops_per_second));
  }
  return checks;
}

std::string format_targets(const std::vector<TargetCheck>& checks) {
  std::size_t width = 0;
  for (const TargetCheck& check : checks) width = std::max(width, display_width(check.target));
  std::string text = "Targets:\n";
  for (const TargetCheck& check : checks) {
    const char* verdict = !check.met ? "n/a   " : *check.met ? "met   " : "MISSED";
    text += "  " + std::string(verdict) + "  " + pad_right(check.target, width) + "  " +
            check.measured + "\n";
  }
  return text;
}

}  // namespace hsmactor::bench
