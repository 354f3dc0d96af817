// How ranks find the coordinator under each MPI launcher, on real launchers: Open MPI's
// mpirun publishes rank 0's endpoint through MPI, MPICH's mpiexec (Hydra) through PMI-1,
// and a rank started for another job is named by both (docs/operations.md, "Across hosts").
// Across real hosts: tests/multinode.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/hostname.h"
#include "tests/launch/job_harness.h"
#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"
#include "wire/curve.h"

namespace tessera {
namespace {

using std::chrono::seconds;
using testing::BackgroundJob;
using testing::SummaryField;
using testing::SourceDir;
using testing::TesseraBinary;

// Open MPI's MPI_Init/MPI_Finalize leave allocations behind (in libmpi and in MCA
// components it has already unloaded, so no suppression can name them). Under the ASan
// stage, processes that finalise MPI keep every memory check but the leak report.
std::string MpiRankEnv() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  return asan == nullptr ? "" : "ASAN_OPTIONS=" + std::string(asan) + ":detect_leaks=0 ";
}
const std::string kMpirun = MpiRankEnv() + testing::kMpirunAsRoot;

const std::string kJob = " --data=" + SourceDir() + "/data/mnist" + testing::kQuickMnistJob;

// Open MPI: rank 0 binds any free port and publishes it through MPI; the job trains.
TEST(MpiRendezvous, FiveRanksTrainThroughThePublishedEndpoint) {
  BackgroundJob job(kMpirun + " -np 5 " + TesseraBinary() + " train --servers 2" + kJob);
  ASSERT_EQ(job.Wait(seconds(180)), 0) << job.Output();
  const std::string out = job.Output();
  EXPECT_NE(out.find("(published by rank 0 through MPI; all 5 ranks agree on the job)"), std::string::npos) << out;
  EXPECT_NE(out.find("network: one host; listening on 127.0.0.1, advertised as 127.0.0.1"), std::string::npos) << out;
  EXPECT_EQ(SummaryField(out, "steps"), "282") << out;
  EXPECT_GE(std::stod(SummaryField(out, "test_accuracy")), 0.90) << out;
}

// mpirun's MPMD form starts rank 4 with --servers 1 while the others have 2: every rank
// learns it from the exchange, names rank 4 and its host, and nothing trains.
TEST(MpiRendezvous, ARankStartedForAnotherJobIsNamedAndNobodyTrains) {
  const std::string t = TesseraBinary();
  BackgroundJob job(kMpirun + " -np 4 " + t + " train --servers 2" + kJob + " : -np 1 " + t + " train --servers 1" + kJob);
  const int code = job.Wait(seconds(90));
  const std::string out = job.Output();
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("the ranks disagree about the job (1 rank(s) started differently from rank 0 on " + Hostname() +
                     "):"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("rank 4 on " + Hostname() + ": --servers 1 vs rank 0's 2"), std::string::npos) << out;
  EXPECT_EQ(out.find("summary: {"), std::string::npos) << out;
  EXPECT_EQ(testing::CountMarkedProcesses(job.marker()), 0) << out;
}

// The same job, one rank with another job key: named before anything trains.
TEST(MpiRendezvous, ARankWithAnotherJobKeyIsNamed) {
  testing::TempDir dir;
  const std::string t = TesseraBinary();
  const std::string a = " --auth=curve --auth_key_file=" + dir.path() + "/a.key";
  const std::string b = " --auth=curve --auth_key_file=" + dir.path() + "/b.key";
  // Rank 0 creates a missing key file, so the odd rank's must exist beforehand.
  auto keys = wire::GenerateCurveKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_TRUE(wire::WriteCurveKeyFile(dir.path() + "/b.key", *keys).ok());
  BackgroundJob job(kMpirun + " -np 3 " + t + " train --servers 2" + a + kJob + " : -np 1 " + t + " train --servers 2" + b +
                    kJob + " : -np 1 " + t + " train --servers 2" + a + kJob);
  const int code = job.Wait(seconds(90));
  const std::string out = job.Output();
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("rank 3 on " + Hostname() + ": job key "), std::string::npos) << out;
  EXPECT_EQ(out.find("summary: {"), std::string::npos) << out;
}

// An interface that does not exist: every process stops at start (exit 2), naming the
// spec and the interfaces it saw, before anything binds.
TEST(NetworkChoice, AnUnknownInterfaceFailsAtStartNamingTheInterfacesSeen) {
  BackgroundJob job("TESSERA_SOCKET_IFNAME=nosuchif0 " + TesseraBinary() + " launch --servers 1 --workers 1" + kJob);
  const int code = job.Wait(seconds(60));
  const std::string out = job.Output();
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("no interface that is up matches --interface/TESSERA_SOCKET_IFNAME='nosuchif0'; interfaces seen: "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("lo 127.0.0.1/8 up"), std::string::npos) << out;
  EXPECT_EQ(out.find("summary: {"), std::string::npos) << out;
}

// MPICH's mpiexec: Tessera links Open MPI, so it cannot call MPI here; rank 0 publishes
// its endpoint in PMI-1's key-value space (PMI_FD) instead, and the job trains.
TEST(PmiRendezvous, HydraRanksTrainTheMlpToItsThreshold) {
  if (testing::RunCommand("command -v mpiexec.hydra", 10).exit_code != 0) {
    TESSERA_SKIP_OR_FAIL_IN_CI("mpiexec.hydra is not installed (Debian package mpich; scripts/setup.sh installs it)");
  }
  BackgroundJob job("mpiexec.hydra -n 5 " + TesseraBinary() + " train --servers 2" + kJob);
  ASSERT_EQ(job.Wait(seconds(180)), 0) << job.Output();
  const std::string out = job.Output();
  EXPECT_NE(out.find("launched by mpich: rank 0 of 5"), std::string::npos) << out;
  EXPECT_NE(out.find("(published by rank 0 through PMI; all 5 ranks agree on the job)"), std::string::npos) << out;
  EXPECT_EQ(SummaryField(out, "steps"), "282") << out;
  ASSERT_FALSE(SummaryField(out, "test_accuracy").empty()) << out;
  EXPECT_GE(std::stod(SummaryField(out, "test_accuracy")), 0.90) << out;
}

}  // namespace
}  // namespace tessera
