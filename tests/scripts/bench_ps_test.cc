// bench/ps/run.sh and bench/ps/shm.sh (and its BASE mode, two builds A/B), the scripts
// behind docs/benchmarks.md's push/pull tables, shortened through their SIZES and ITERS
// seams: real `tessera launch` jobs of ps_bench. Each table must name the --auth mode its
// jobs ran (issue 17: published figures state their mode; the scripts read it from the
// processes' logs, not from their flags) and hold a number in every cell, so that a
// changed log line or RESULT format fails here and not in the next person's measurement.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

testing::CommandResult Script(const std::string& env, const std::string& script, int timeout_s) {
  return testing::RunCommand(env + " bash " + testing::SourceDir() + "/bench/ps/" + script + " " +
                                 testing::BinaryDir() + " 1 2>&1",
                             timeout_s);
}

// The Markdown table rows of `out` that start with `prefix`, split into trimmed cells.
std::vector<std::vector<std::string>> Rows(const std::string& out, const std::string& prefix) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::vector<std::string> cells;
    std::istringstream cs(line.substr(1));
    for (std::string c; std::getline(cs, c, '|');) {
      const size_t b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
    }
    rows.push_back(cells);
  }
  return rows;
}

// Cells [from, to) hold positive numbers.
void ExpectPositive(const std::vector<std::string>& row, size_t from, size_t to, const std::string& out) {
  ASSERT_GE(row.size(), to) << out;
  for (size_t i = from; i < to; ++i) {
    char* end = nullptr;
    const double v = std::strtod(row[i].c_str(), &end);
    EXPECT_TRUE(!row[i].empty() && *end == '\0' && v > 0) << "cell " << i << " '" << row[i] << "'\n" << out;
  }
}

TEST(BenchPsScripts, ShmTableMeasuresEveryAuthModeOnOneHostAndOverTcp) {
  const auto r = Script("SIZES=\"4096 1048576\" ITERS=20", "shm.sh", 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| mac (default) GB/s | none GB/s | curve GB/s |"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("WARNING"), std::string::npos) << "shared memory fell back to TCP:\n" << r.output;
  for (const std::string payload : {"4 KiB", "1 MiB"}) {
    for (const std::string transport : {"shm", "tcp"}) {
      const auto rows = Rows(r.output, "| " + payload + " | " + transport + " |");
      ASSERT_EQ(rows.size(), 1u) << payload << " " << transport << "\n" << r.output;
      // raw, memcpy, mac, none, curve GB/s, mac µs, three / raw, two time ratios.
      ExpectPositive(rows[0], 2, 13, r.output);
    }
  }
}

TEST(BenchPsScripts, ShmBaseModeComparesTwoBuildsAgainstRaw) {
  // BASE: this build against another (here the same one), each against raw ZeroMQ.
  const auto r = Script("SIZES=1048576 ITERS=20 BASE=" + testing::BinaryDir(), "shm.sh", 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| this build GB/s | BASE GB/s | this / BASE |"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("WARNING"), std::string::npos) << "shared memory fell back to TCP:\n" << r.output;
  const auto rows = Rows(r.output, "| 1 MiB |");
  ASSERT_EQ(rows.size(), 1u) << r.output;
  ExpectPositive(rows[0], 1, 7, r.output);  // raw, this, BASE GB/s; three ratios
  EXPECT_NE(r.output.find("1 MiB (--auth=mac), new / base: "), std::string::npos) << r.output;
}

TEST(BenchPsScripts, RunTableNamesTheAuthModeTheJobsLogged) {
  // No AUTH: the default, which `tessera launch` turns into mac with the job key it makes.
  const auto def = Script("SIZES=4096 ITERS=20 SHM=auto", "run.sh", 240);
  ASSERT_EQ(def.exit_code, 0) << def.output;
  EXPECT_NE(def.output.find("--auth as the processes logged it: mac \n"), std::string::npos) << def.output;
  EXPECT_EQ(def.output.find("WARNING"), std::string::npos) << def.output;
  const auto dense = Rows(def.output, "| 4 KiB |");
  ASSERT_EQ(dense.size(), 6u) << def.output;  // 1-2 servers x 1/2/4 workers
  for (const auto& row : dense) ExpectPositive(row, 1, 8, def.output);
  const auto sparse = Rows(def.output, "| | ");
  ASSERT_EQ(sparse.size(), 6u) << def.output;
  for (const auto& row : sparse) ExpectPositive(row, 1, 4, def.output);

  const auto none = Script("SIZES=4096 ITERS=20 SHM=auto AUTH=none", "run.sh", 240);
  ASSERT_EQ(none.exit_code, 0) << none.output;
  EXPECT_NE(none.output.find("--auth as the processes logged it: none \n"), std::string::npos) << none.output;
}

}  // namespace
}  // namespace tessera
