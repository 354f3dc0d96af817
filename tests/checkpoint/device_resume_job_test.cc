// Checkpoints across the host and the device path (issue 19): a checkpoint written by a
// run through the GPU path's staging resumes on the plain host path, and the other way
// round, bitwise the uninterrupted run. On CPU machines the staging runs with
// --staging_on_cpu (worker/device_staging.h), the code a --device=cuda run executes with
// CUDA copies; the checkpoint holds host values either way (the mirrors), so this is the
// format half of "a CPU checkpoint resumes on GPU and back". Real jobs through `tessera
// launch`, killed right after the step-20 commit (TESSERA_CRASH_AT).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/checkpoint/job_helpers.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using namespace ckpt_testing;  // NOLINT: the helpers are this file's vocabulary

std::string Mlp(const std::string& flags) {
  return "--train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --optimizer=adam --lr=0.002 "
         "--log_every=0 --seed=2 --deterministic --device=cpu --data=" +
         testing::SourceDir() + "/data/mnist " + flags;
}

// 40 steps in one go on the host path, then 20 on `first` (killed after the step-20
// commit) and 20 more resumed on `second`: same digest and losses.
void ExpectExactAcrossPaths(const std::string& sync, const std::string& first, const std::string& second) {
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, Mlp("--sync=" + sync + " --steps=40"), 1);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;

  const std::string ck = tmp.path() + "/ck";
  JobRun killed = RunJob(tmp, Mlp("--sync=" + sync + " --steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck +
                                  " " + first),
                         1, "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{20}) << killed.output;
  JobRun resumed = RunJob(tmp, Mlp("--sync=" + sync + " --steps=40 --checkpoint_dir=" + ck + " " + second), 1);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "--sync=" << sync << ": '" << first << "' then '" << second << "'";
  ExpectSameLosses(full, resumed, 20, 39);
}

TEST(DeviceCheckpointJob, StagedCheckpointResumesOnTheHostPathExactly) {
  ExpectExactAcrossPaths("bsp", "--staging_on_cpu", "");
}

TEST(DeviceCheckpointJob, HostCheckpointResumesOnTheStagedPathExactly) {
  ExpectExactAcrossPaths("bsp", "", "--staging_on_cpu");
}

// Under allreduce worker 0 writes the parameters and optimizer state from the mirrors.
TEST(DeviceCheckpointJob, AllReduceStagedCheckpointResumesOnTheHostPathExactly) {
  ExpectExactAcrossPaths("allreduce", "--staging_on_cpu", "");
}

TEST(DeviceCheckpointJob, AllReduceHostCheckpointResumesOnTheStagedPathExactly) {
  ExpectExactAcrossPaths("allreduce", "", "--staging_on_cpu");
}

}  // namespace
}  // namespace tessera
