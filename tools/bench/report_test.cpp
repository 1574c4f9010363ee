#include "tools/bench/report.hpp"

#include <sstream>

#include <catch2/catch.hpp>

namespace hsmactor::bench {
namespace {

CellResult measured(StrategyKind strategy, Operation operation, int concurrency,
                    std::uint64_t operations, std::uint64_t p50_ns = 1000) {
  CellResult cell;
  cell.strategy = strategy;
  cell.operation = operation;
  cell.concurrency = concurrency;
  cell.seconds = 2.0;
  cell.operations = operations;
  cell.latency.count = operations;
  cell.latency.p50_ns = p50_ns;
  cell.latency.p99_ns = p50_ns * 3;
  cell.others_cpu = 0.04;
  cell.cpu_us_per_op = 123.4;
  return cell;
}

CellResult unmeasured(StrategyKind strategy, Operation operation, int concurrency,
                      CellStatus status, std::string note) {
  CellResult cell;
  cell.strategy = strategy;
  cell.operation = operation;
  cell.concurrency = concurrency;
  cell.status = status;
  cell.note = std::move(note);
  return cell;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST_CASE("ratio compares with raw-thread at the same operation and concurrency") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 4, 2000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 4, 1900),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 8, 1900),
      measured(StrategyKind::raw_thread, Operation::rsa, 4, 100),
  };
  CHECK(*ratio_to_raw_thread(cells, cells[1]) == Approx(0.95));
  CHECK(*ratio_to_raw_thread(cells, cells[0]) == Approx(1.0));
  CHECK_FALSE(ratio_to_raw_thread(cells, cells[2]));  // no raw-thread at 8
  CHECK_FALSE(ratio_to_raw_thread(
      cells, unmeasured(StrategyKind::openssl_engine, Operation::ecdsa, 4,
                        CellStatus::unavailable, "no engine")));
}

TEST_CASE("the table aligns its columns and groups by operation and callers") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 1, 20000, 95500),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 1, 19000, 101200),
      unmeasured(StrategyKind::openssl_engine, Operation::ecdsa, 1, CellStatus::unavailable,
                 "engine not installed"),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 16, 40000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 16, 39000),
  };
  std::string table = format_table(cells);
  auto lines = lines_of(table);
  REQUIRE(lines.size() == 7);  // header, 3 rows, blank, 2 rows
  CHECK(lines[0].find("ops/s") != std::string::npos);
  CHECK(lines[0].find("p50 µs") != std::string::npos);
  CHECK(lines[4].empty());
  // Right-aligned numbers end in the same column on every measured row.
  auto end_of = [](const std::string& line, const std::string& value) {
    return line.find(value) + value.size();
  };
  CHECK(end_of(lines[1], "10000") == end_of(lines[2], "9500"));
  CHECK(lines[1].find("95.5") != std::string::npos);
  CHECK(lines[2].find("0.95x") != std::string::npos);
  CHECK(lines[2].find("4%") != std::string::npos);
  CHECK(lines[2].find("123.4") != std::string::npos);
  CHECK(lines[0].find("CPU µs/op") != std::string::npos);
  CHECK(lines[3].find("unavailable: engine not installed") != std::string::npos);
  CHECK(lines[6].find("0.97x") != std::string::npos);
}

TEST_CASE("csv has one line per cell and quotes notes that need it") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::random, 2, 5000, 2500),
      unmeasured(StrategyKind::openssl_engine, Operation::hmac, 2, CellStatus::unsupported,
                 "no HMAC, \"really\""),
  };
  auto lines = lines_of(format_csv(cells));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind("operation,strategy,concurrency,status,ops_per_second,p50_us", 0) == 0);
  CHECK(lines[1].rfind("random,raw-thread,2,measured,2500.0,2.500,7.500,", 0) == 0);
  CHECK(lines[2] == "hmac,openssl-engine,2,unsupported,,,,,,,,,,,,,,,,,\"no HMAC, \"\"really\"\"\"");
  CHECK(count_of(lines[1], ",") == count_of(lines[0], ","));
  CHECK(count_of(lines[2], ",") == count_of(lines[0], ",") + 1);  // the comma inside the quotes
}

TEST_CASE("against an ideal, every measured cell is divided by it") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::hsm_asio, Operation::ecdsa, 64, 2 * 16000),  // 16000/s over 2 s
      measured(StrategyKind::raw_thread, Operation::ecdsa, 64, 2 * 24000),
      unmeasured(StrategyKind::openssl_engine, Operation::ecdsa, 64, CellStatus::unavailable,
                 "no engine"),
  };
  CHECK(*ratio_to_ideal(cells[0], 32000) == Approx(0.5));
  CHECK(*ratio_to_ideal(cells[1], 32000) == Approx(0.75));
  CHECK_FALSE(ratio_to_ideal(cells[2], 32000));
  CHECK_FALSE(ratio_to_ideal(cells[0], 0));

  Reference ideal{32000};
  auto table = lines_of(format_table(cells, ideal));
  REQUIRE(table.size() == 4);
  CHECK(table[0].find("vs ideal") != std::string::npos);
  CHECK(table[0].find("vs raw-thread") == std::string::npos);
  CHECK(table[1].find("raw-thread") != std::string::npos);  // report order: raw first
  CHECK(table[1].find("0.75x") != std::string::npos);
  CHECK(table[2].find("0.50x") != std::string::npos);

  auto csv = lines_of(format_csv(cells, ideal));
  REQUIRE(csv.size() == 4);
  CHECK(csv[0].find(",ratio_to_ideal,note") != std::string::npos);
  CHECK(csv[1].find(",0.5000,") != std::string::npos);
  CHECK(csv[1].find(",0.6667,") != std::string::npos);  // still also to raw-thread
  CHECK(lines_of(format_csv(cells))[1].find(",0.5000,") == std::string::npos);
}

TEST_CASE("a measured cell's caveat shows in the table's note and the csv's") {
  std::vector<CellResult> cells = {measured(StrategyKind::raw_thread, Operation::ecdsa, 256, 100)};
  cells[0].caveat = "63 threads (token cap)";
  CHECK(format_table(cells).find("63 threads (token cap)") != std::string::npos);
  cells[0].errors = 1;
  cells[0].note = "CKR_SESSION_COUNT";
  CHECK(format_table(cells).find("63 threads (token cap); CKR_SESSION_COUNT") !=
        std::string::npos);
  CHECK(lines_of(format_csv(cells))[1].find(",63 threads (token cap); CKR_SESSION_COUNT") !=
        std::string::npos);
}

TEST_CASE("cells sort into report order: operation, callers, strategy") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::openssl_engine, Operation::ecdsa, 16, 1),
      measured(StrategyKind::hsm_asio, Operation::rsa, 16, 2),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 64, 3),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 16, 4),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 16, 5),
  };
  sort_for_report(cells);
  std::vector<std::uint64_t> order;
  for (const CellResult& cell : cells) order.push_back(cell.operations);
  CHECK(order == std::vector<std::uint64_t>{4, 5, 1, 3, 2});
}

TEST_CASE("csv fields are quoted only when needed") {
  CHECK(csv_field("plain") == "plain");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
}

TEST_CASE("nice ceilings are 1, 2 or 5 times a power of ten") {
  CHECK(nice_ceiling(0) == 1);
  CHECK(nice_ceiling(1) == 1);
  CHECK(nice_ceiling(1.2) == 2);
  CHECK(nice_ceiling(3) == 5);
  CHECK(nice_ceiling(7) == 10);
  CHECK(nice_ceiling(1000) == 1000);
  CHECK(nice_ceiling(12345) == 20000);
  CHECK(nice_ceiling(0.03) == Approx(0.05));
}

TEST_CASE("the plot has a chart per operation and a line per measured strategy") {
  std::vector<CellResult> cells;
  for (int level : {1, 2, 4, 16}) {
    cells.push_back(measured(StrategyKind::raw_thread, Operation::ecdsa, level, 1000 * level));
    cells.push_back(measured(StrategyKind::hsm_actor, Operation::ecdsa, level, 900 * level));
    cells.push_back(measured(StrategyKind::raw_thread, Operation::rsa, level, 100 * level));
    cells.push_back(unmeasured(StrategyKind::openssl_engine, Operation::rsa, level,
                               CellStatus::unavailable, "none"));
  }
  std::string svg = render_svg(cells);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(count_of(svg, "<polyline") == 3);  // ecdsa: 2 lines, rsa: 1
  CHECK(count_of(svg, "<circle") == 12);
  CHECK(svg.find(">ecdsa</text>") != std::string::npos);
  CHECK(svg.find(">rsa</text>") != std::string::npos);
  CHECK(svg.find("openssl-engine") == std::string::npos);  // never measured: not in the legend
  CHECK(svg.find("log2") != std::string::npos);
  CHECK(count_of(svg, "<g>") == count_of(svg, "</g>"));
}

TEST_CASE("the plot spaces concurrency levels by their logarithm") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::digest, 1, 100),
      measured(StrategyKind::raw_thread, Operation::digest, 2, 100),
      measured(StrategyKind::raw_thread, Operation::digest, 16, 100),
  };
  std::string svg = render_svg(cells);
  auto points_at = svg.find("points=\"");
  REQUIRE(points_at != std::string::npos);
  std::istringstream points(svg.substr(points_at + 8));
  double x1, x2, x16, y;
  char comma;
  points >> x1 >> comma >> y >> x2 >> comma >> y >> x16 >> comma >> y;
  // log2: 1 -> 0, 2 -> 1, 16 -> 4: the gap 2..16 is three times 1..2.
  CHECK((x16 - x2) == Approx(3 * (x2 - x1)).epsilon(0.01));
}

TEST_CASE("a chart whose strategies are 20x apart or more uses a log scale") {
  std::vector<CellResult> close = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 1, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 1, 400),
  };
  CHECK(render_svg(close).find("log scale)") == std::string::npos);
  std::vector<CellResult> apart = {
      measured(StrategyKind::raw_thread, Operation::random, 1, 2000000),
      measured(StrategyKind::hsm_future, Operation::random, 1, 10000),
  };
  std::string svg = render_svg(apart);
  CHECK(svg.find("ops/s (log scale)") != std::string::npos);
  CHECK(svg.find(">1M</text>") != std::string::npos);  // decade ticks
  CHECK(svg.find(">10k</text>") != std::string::npos);
}

/// Returns the check whose target starts with `start`.
const TargetCheck& find_check(const std::vector<TargetCheck>& checks, const std::string& start) {
  for (const TargetCheck& check : checks) {
    if (check.target.rfind(start, 0) == 0) return check;
  }
  FAIL("no target starting with " << start);
  return checks.front();
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("targets are met or missed or not measured") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 4, 2000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 4, 1900),
      measured(StrategyKind::raw_thread, Operation::random, 1, 100000, 10000),
      measured(StrategyKind::hsm_future, Operation::random, 1, 90000, 14000),
  };
  MemoryReport memory;
  memory.actors_with_sessions.sessions = 64;
  memory.actors_with_sessions.rss_before = 1 << 20;
  memory.actors_with_sessions.rss_after = (1 << 20) + 64 * 40 * 1024;
  auto checks = check_targets(cells, memory);
  // 5 pipelined, 2 against the engine, 2 against raw-thread, latency, 5 actor, memory.
  CHECK(checks.size() == 16);
  CHECK(*find_check(checks, "ecdsa: hsm-future >= 0.90 of raw-thread").met);  // 0.95
  const TargetCheck& latency = find_check(checks, "random, 1 caller");
  REQUIRE(latency.met);
  CHECK_FALSE(*latency.met);  // +4.0 µs against 2
  CHECK(contains(latency.target, "<= 2 µs"));
  CHECK(contains(latency.measured, "+4.0"));
  CHECK(*find_check(checks, "<= 64 KiB").met);  // 40 KiB
  for (const char* start : {"ecdsa pipelined", "hmac pipelined", "ecdsa: hsm-future >= openssl",
                            "rsa: hsm-future >= 0.90", "ecdsa: hsm-actor"}) {
    const TargetCheck& check = find_check(checks, start);
    CHECK_FALSE(check.met);
    CHECK(check.measured == "not measured");
  }

  std::string text = format_targets(checks);
  CHECK(contains(text, "MISSED"));
  CHECK(contains(text, "met   "));
  CHECK(contains(text, "n/a"));
  CHECK_FALSE(contains(format_targets(check_targets({}, {})), "met   "));
}

TEST_CASE("pipelined targets divide the best over concurrency by raw-thread's best") {
  std::vector<CellResult> cells = {
      // ecdsa: the ceiling is raw-thread at 16 (1000/s), the best pipelined
      // cell hsm-cq at 64 (980/s), where raw-thread itself made only 900/s.
      measured(StrategyKind::raw_thread, Operation::ecdsa, 1, 1000),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 16, 2000),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 64, 1800),
      measured(StrategyKind::hsm_asio, Operation::ecdsa, 16, 1900),
      measured(StrategyKind::hsm_cq, Operation::ecdsa, 64, 1960),
      measured(StrategyKind::hsm_batch, Operation::ecdsa, 16, 2400),
      // hmac: 0.85, and hsm-batch's 0.95 does not count.
      measured(StrategyKind::raw_thread, Operation::hmac, 4, 2000),
      measured(StrategyKind::hsm_cq, Operation::hmac, 4, 1700),
      measured(StrategyKind::hsm_batch, Operation::hmac, 4, 1900),
      // random counts batching: 0.85.
      measured(StrategyKind::raw_thread, Operation::random, 1, 2000),
      measured(StrategyKind::hsm_cq, Operation::random, 16, 400),
      measured(StrategyKind::hsm_batch, Operation::random, 16, 1700),
      // rsa: no pipelined cell.
      measured(StrategyKind::raw_thread, Operation::rsa, 4, 100),
  };
  auto checks = check_targets(cells, {});
  const TargetCheck& ecdsa = find_check(checks, "ecdsa pipelined");
  REQUIRE(ecdsa.met);
  CHECK(*ecdsa.met);
  CHECK(contains(ecdsa.target, "hsm-cq/hsm-asio >= 0.97"));
  CHECK_FALSE(contains(ecdsa.target, "hsm-batch"));
  CHECK(contains(ecdsa.measured, "0.98x: hsm-cq 980/s at 64 callers"));
  CHECK(contains(ecdsa.measured, "ceiling raw-thread 1000/s at 16 callers"));
  CHECK(contains(ecdsa.measured, "hsm-batch 1.20x, not counted"));

  const TargetCheck& hmac = find_check(checks, "hmac pipelined");
  REQUIRE(hmac.met);
  CHECK_FALSE(*hmac.met);
  CHECK(contains(hmac.measured, "0.85x: hsm-cq"));

  const TargetCheck& random = find_check(checks, "random pipelined");
  REQUIRE(random.met);
  CHECK(*random.met);
  CHECK(contains(random.target, "hsm-cq/hsm-asio/hsm-batch >= 0.80"));
  CHECK(contains(random.measured, "0.85x: hsm-batch 850/s at 16 callers"));
  CHECK(contains(random.measured, "ceiling raw-thread 1000/s at 1 caller"));

  CHECK_FALSE(find_check(checks, "rsa pipelined").met);
  CHECK_FALSE(find_check(checks, "digest pipelined").met);
}

TEST_CASE("futures below the engine at one concurrency miss and name it") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::openssl_engine, Operation::ecdsa, 1, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 1, 1100),
      measured(StrategyKind::openssl_engine, Operation::ecdsa, 4, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 4, 950),
      measured(StrategyKind::openssl_engine, Operation::ecdsa, 16, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 16, 1200),
      measured(StrategyKind::openssl_engine, Operation::ecdsa, 64, 1),  // no hsm-future at 64
      measured(StrategyKind::openssl_engine, Operation::rsa, 2, 100),
      measured(StrategyKind::hsm_future, Operation::rsa, 2, 100),
      unmeasured(StrategyKind::openssl_engine, Operation::rsa, 16, CellStatus::unavailable, "x"),
      measured(StrategyKind::hsm_future, Operation::rsa, 16, 10),
  };
  auto checks = check_targets(cells, {});
  const TargetCheck& ecdsa = find_check(checks, "ecdsa: hsm-future >= openssl-engine");
  REQUIRE(ecdsa.met);
  CHECK_FALSE(*ecdsa.met);
  CHECK(ecdsa.measured == "min 0.95x (at 4 callers)");
  const TargetCheck& rsa = find_check(checks, "rsa: hsm-future >= openssl-engine");
  REQUIRE(rsa.met);
  CHECK(*rsa.met);  // equal counts as at or above; 16 has no engine figure
  CHECK(rsa.measured == "min 1.00x (at 2 callers)");
}

TEST_CASE("futures against raw-thread count every concurrency including 1") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 1, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 1, 880),
      measured(StrategyKind::raw_thread, Operation::ecdsa, 16, 1000),
      measured(StrategyKind::hsm_future, Operation::ecdsa, 16, 950),
      measured(StrategyKind::raw_thread, Operation::rsa, 4, 100),
      measured(StrategyKind::hsm_future, Operation::rsa, 4, 90),
  };
  auto checks = check_targets(cells, {});
  const TargetCheck& ecdsa = find_check(checks, "ecdsa: hsm-future >= 0.90 of raw-thread");
  REQUIRE(ecdsa.met);
  CHECK_FALSE(*ecdsa.met);
  CHECK(ecdsa.measured == "min 0.88x (at 1 caller)");
  CHECK(*find_check(checks, "rsa: hsm-future >= 0.90 of raw-thread").met);  // 0.90 exactly
}

TEST_CASE("added latency at 1 caller is met up to 2 µs") {
  auto latency_with = [](std::uint64_t hsm_p50_ns) {
    std::vector<CellResult> cells = {
        measured(StrategyKind::raw_thread, Operation::random, 1, 1000, 1000),
        measured(StrategyKind::hsm_future, Operation::random, 1, 1000, hsm_p50_ns),
        measured(StrategyKind::hsm_future, Operation::random, 2, 1000, 90000),  // not 1 caller
    };
    return find_check(check_targets(cells, {}), "random, 1 caller");
  };
  TargetCheck met = latency_with(2500);
  REQUIRE(met.met);
  CHECK(*met.met);
  CHECK(met.measured == "+1.5 µs (2.5 vs 1.0 µs)");
  TargetCheck missed = latency_with(3500);
  REQUIRE(missed.met);
  CHECK_FALSE(*missed.met);
  CHECK(contains(missed.measured, "+2.5 µs"));
  CHECK(*latency_with(3000).met);  // the bound itself
}

TEST_CASE("actor callers are checked against futures per operation") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::hsm_future, Operation::ecdsa, 4, 1000),
      measured(StrategyKind::hsm_actor, Operation::ecdsa, 4, 950),
      measured(StrategyKind::hsm_future, Operation::hmac, 1, 1000),
      measured(StrategyKind::hsm_actor, Operation::hmac, 1, 990),
      measured(StrategyKind::hsm_future, Operation::hmac, 16, 1000),
      measured(StrategyKind::hsm_actor, Operation::hmac, 16, 850),
  };
  auto checks = check_targets(cells, {});
  CHECK(*find_check(checks, "ecdsa: hsm-actor >= 0.90 of hsm-future").met);
  const TargetCheck& hmac = find_check(checks, "hmac: hsm-actor >= 0.90 of hsm-future");
  REQUIRE(hmac.met);
  CHECK_FALSE(*hmac.met);
  CHECK(hmac.measured == "min 0.85x (at 16 callers)");
  CHECK_FALSE(find_check(checks, "digest: hsm-actor").met);
}

TEST_CASE("the network target takes the best hsmactor strategy at 256 callers") {
  const std::uint64_t ms2 = 2000000;  // p50 2 ms, so p99 6 ms
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 256, 2 * 32000, ms2),  // not hsm-*
      measured(StrategyKind::hsm_cq, Operation::ecdsa, 256, 2 * 29000, ms2),
      measured(StrategyKind::hsm_asio, Operation::ecdsa, 256, 2 * 30800, ms2),
      measured(StrategyKind::hsm_batch, Operation::ecdsa, 512, 2 * 32000, ms2),  // not 256
      measured(StrategyKind::hsm_future, Operation::hmac, 256, 2 * 16000, ms2),
      measured(StrategyKind::hsm_future, Operation::random, 256, 2 * 99000, ms2),  // no C_Sign
  };
  auto checks = check_network_targets(cells, 32000);
  REQUIRE(checks.size() == 2);  // ecdsa and hmac
  CHECK(checks[0].target == "ecdsa, 256 callers: best hsm-* >= 0.95 of the ideal 32000/s");
  REQUIRE(checks[0].met);
  CHECK(*checks[0].met);
  CHECK(checks[0].measured == "0.96x: hsm-asio 30800/s at 256 callers, p99 6000.0 µs");
  REQUIRE(checks[1].met);
  CHECK_FALSE(*checks[1].met);
  CHECK(contains(checks[1].measured, "0.50x: hsm-future"));

  auto unmeasured_run = check_network_targets(
      {measured(StrategyKind::hsm_cq, Operation::ecdsa, 64, 1000)}, 32000);
  REQUIRE(unmeasured_run.size() == 1);
  CHECK_FALSE(unmeasured_run[0].met);
  CHECK(unmeasured_run[0].measured == "not measured");
  CHECK(check_network_targets({}, 32000).size() == 1);
}

TEST_CASE("breakdown splits the median of hsmactor cells that have a pool latency") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::random, 1, 1000, 1000),
      measured(StrategyKind::hsm_future, Operation::random, 1, 100, 50000),
      measured(StrategyKind::hsm_actor, Operation::random, 1, 100, 30000),
  };
  CHECK(format_breakdown(cells).empty());
  cells[1].pool_latency.count = 10;
  cells[1].pool_latency.p50_ns = 21000;
  std::string text = format_breakdown(cells);
  auto lines = lines_of(text);
  REQUIRE(lines.size() == 4);  // two lines of heading, column names, one cell
  CHECK(lines[3].find("hsm-future") != std::string::npos);
  // 50 = 29 caller<->pool + 20 pool overhead + 1 PKCS#11
  CHECK(lines[3].find("50.0") != std::string::npos);
  CHECK(lines[3].find("29.0") != std::string::npos);
  CHECK(lines[3].find("20.0") != std::string::npos);
  CHECK(lines[3].find("1.0") != std::string::npos);
  CHECK(text.find("hsm-actor") == std::string::npos);
}

TEST_CASE("a cell whose in-flight requests came back late is reported as a stall") {
  std::vector<CellResult> cells = {
      measured(StrategyKind::raw_thread, Operation::ecdsa, 16, 1000),
      measured(StrategyKind::hsm_callback, Operation::ecdsa, 16, 900),
  };
  cells[0].drain_seconds = 0.001;
  CHECK(format_stalls(cells).empty());
  cells[1].late = 60;
  cells[1].drain_seconds = 60.3;
  cells[1].late_error = "deadline_exceeded";
  std::string stalls = format_stalls(cells);
  CHECK(stalls.find("ecdsa x16 hsm-callback: 60 late answers, the last 60.3 s") !=
        std::string::npos);
  CHECK(stalls.find("deadline_exceeded") != std::string::npos);
  CHECK(format_table(cells).find("stalled 60.3 s after the window") != std::string::npos);
}

TEST_CASE("memory report divides the growth by the sessions and says what it includes") {
  MemoryReport memory;
  memory.raw_sessions.sessions = 4;
  memory.raw_sessions.rss_before = 0;
  memory.raw_sessions.rss_after = 4 * 2048;
  memory.actors_with_sessions.note = "open_token failed";
  std::string text = format_memory(memory);
  CHECK(text.find("2.0 KiB") != std::string::npos);
  CHECK(text.find("not measured: open_token failed") != std::string::npos);
  CHECK(text.find("module's own") != std::string::npos);
}

}  // namespace
}  // namespace hsmactor::bench
