// The MPI backend under real `mpirun -np 2` and `-np 4` (oversubscribed on the 2-core
// machine, as root): each case runs collective_peer on every rank and checks every rank
// reported success (the peers compare against references they compute themselves).
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::BinaryDir;
using testing::RunCommand;

std::string Mpirun(int np, const std::string& extra = "") {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(np) +
         " --oversubscribe --mca btl self,vader --bind-to none " + extra + " " + BinaryDir() +
         "/tests/collective/collective_peer ";
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

class CollectiveMpi : public ::testing::TestWithParam<int> {};

TEST_P(CollectiveMpi, EveryCollectiveMatchesTheReference) {
  const int np = GetParam();
  auto r = RunCommand(Mpirun(np) + "collectives", 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Count(r.output, "collectives OK"), np) << r.output;
}

TEST_P(CollectiveMpi, FusionEqualsPerTensorAllReduce) {
  const int np = GetParam();
  auto r = RunCommand(Mpirun(np) + "fusion", 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Count(r.output, "fusion OK"), np) << r.output;
}

TEST_P(CollectiveMpi, CompressionStaysWithinItsErrorBound) {
  const int np = GetParam();
  auto r = RunCommand(Mpirun(np) + "compression", 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Count(r.output, "compression OK"), np) << r.output;
}

// mpirun's default reaction to a dead rank is to kill the others (tested in
// MpirunKillsTheRestByDefault); with --enable-recovery the survivors stay, and our
// watchdog must turn the hung collective into a clear kTimedOut within op_timeout (3 s).
TEST_P(CollectiveMpi, AKilledRankMakesTheOthersFailWithinTheTimeout) {
  const int np = GetParam();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = RunCommand(Mpirun(np, "--enable-recovery") + "kill", 60);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(Count(r.output, "collective failed after"), np - 1) << r.output;
  EXPECT_GE(Count(r.output, "TimedOut"), np - 1) << r.output;
  EXPECT_GE(Count(r.output, "a peer rank is probably dead or stuck"), 2 * (np - 1)) << r.output;
  std::smatch m;
  std::string out = r.output;
  std::regex re("failed after ([0-9.]+) s");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
    const double after = std::stod((*it)[1]);
    EXPECT_GE(after, 2.5) << r.output;
    EXPECT_LE(after, 6.0) << r.output;
  }
  EXPECT_LT(s, 40) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Ranks, CollectiveMpi, ::testing::Values(2, 4),
                         [](const auto& info) { return "np" + std::to_string(info.param); });

TEST(CollectiveMpiDefaults, MpirunKillsTheRestByDefault) {
  auto r = RunCommand(Mpirun(2) + "kill", 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("exited on signal 9"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
