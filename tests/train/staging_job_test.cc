// The GPU path's staging (worker/device_staging.h) and --device on real jobs through
// `tessera launch`, on CPU machines: a run with --staging_on_cpu (the model keeps its own
// copies, gradients go out per layer from pinned mirrors, values come back per pull)
// must end with bitwise the params_digest of the plain host path (issue 19), and its
// copies must show in --timeline. --device=cuda without a GPU ends the job with exit 2.
#include <gtest/gtest.h>

#include <string>

#include "kernels/ops.h"
#include "tests/observe/timeline_check.h"
#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

constexpr int kSteps = 30;

std::string SmallJob() {
  return " --data=" + testing::SourceDir() + "/data/mnist --train_limit=2000 --test_limit=300 --hidden=48,24 "
         "--batch_size=32 --optimizer=adam --lr=0.002 --log_every=0 --seed=5 --steps=" + std::to_string(kSteps);
}

testing::CommandResult Launch(int servers, int workers, const std::string& flags) {
  return testing::RunCommand(testing::TesseraBinary() + " launch --servers " + std::to_string(servers) +
                                 " --workers " + std::to_string(workers) + " --grace_s 2 " + flags,
                             180);
}

std::string Digest(const testing::CommandResult& r) {
  const size_t at = r.output.find("summary: ");
  if (at == std::string::npos) return "";
  return testing::JsonField(r.output.substr(at + 9, r.output.find('\n', at) - at - 9), "params_digest");
}

void ExpectSameDigest(int servers, int workers, const std::string& sync) {
  auto host = Launch(servers, workers, SmallJob() + " --device=cpu --sync=" + sync);
  ASSERT_EQ(host.exit_code, 0) << host.output;
  auto staged = Launch(servers, workers, SmallJob() + " --device=cpu --staging_on_cpu --sync=" + sync);
  ASSERT_EQ(staged.exit_code, 0) << staged.output;
  EXPECT_NE(staged.output.find("(staged)"), std::string::npos) << "the staged path ran: " << staged.output;
  ASSERT_FALSE(Digest(host).empty()) << host.output;
  EXPECT_EQ(Digest(staged), Digest(host)) << "--sync=" << sync;
}

TEST(StagingOnCpu, BspDigestIsBitwiseTheHostPaths) { ExpectSameDigest(2, 2, "bsp"); }

TEST(StagingOnCpu, AllreduceDigestIsBitwiseTheHostPaths) { ExpectSameDigest(1, 2, "allreduce"); }

TEST(StagingOnCpu, CopiesAppearInTheTimeline) {
  testing::TempDir dir;
  const std::string trace = dir.path() + "/trace.json";
  auto r = Launch(1, 1, SmallJob() + " --device=cpu --staging_on_cpu --timeline=" + trace);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  testing::Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  const int worker = 2;  // ranks: 0 coordinator (no file), 1 server, 2 worker
  EXPECT_EQ(testing::Named(t, "h2d batch", worker).size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(testing::Named(t, "h2d batch wait", worker).size(), static_cast<size_t>(kSteps));
  // Every step but the last starts the next step's batch while it waits for its pulls.
  EXPECT_EQ(testing::Named(t, "prefetch", worker).size(), static_cast<size_t>(kSteps - 1));
  // 6 parameters: once after the initial pull, then after each step's pull but the last,
  // then after the final pull.
  EXPECT_EQ(testing::Named(t, "h2d params", worker).size(), static_cast<size_t>(6 * (kSteps + 1)));
  EXPECT_EQ(testing::Named(t, "h2d params wait", worker).size(), static_cast<size_t>(kSteps + 1));
  EXPECT_EQ(testing::Named(t, "d2h grad wait", worker).size(), 0u) << "CPU copies are done when the hook returns";
}

TEST(DeviceFlag, CudaWithoutAGpuEndsTheJobWithExitCode2) {
  if (kernels::CudaDeviceAvailable()) GTEST_SKIP() << "this machine has a GPU";
  auto r = Launch(1, 1, SmallJob() + " --device=cuda");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--device=cuda, but"), std::string::npos) << r.output;
}

TEST(DeviceFlag, AutoLogsItsChoice) {
  auto r = Launch(1, 1, SmallJob() + " --device=auto --steps=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string want = kernels::CudaDeviceAvailable() ? "--device=auto: CUDA device"
                                                          : "--device=auto: computing on the CPU because";
  EXPECT_NE(r.output.find(want), std::string::npos) << r.output;
}

TEST(DeviceFlag, UnknownValueIsAConfigError) {
  auto r = Launch(1, 1, SmallJob() + " --device=gpu");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--device=gpu: expected cpu, cuda or auto"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
