// Checkpoints under --sync=allreduce and --sync=hybrid (docs/checkpoints.md, "All-reduced
// parameters"): the workers hold the dense parameters, worker 0 writes them (values,
// optimizer slots, update counters) as the checkpoint's `replica` part. Real jobs through
// `tessera launch` (workers under real mpirun, servers and coordinator on loopback),
// killed with real signals:
//  - MLP, allreduce: 2N steps in one go vs N steps, SIGKILL right after the step-N commit,
//    resume to 2N: same final params_digest and losses; `tessera ckpt verify/show` cover
//    the replica; the checkpoint resumed by 3 servers, and resumed under --sync=bsp (the
//    servers restore the dense chunks from the replica);
//  - widedeep, hybrid: tables from the servers' parts (resharded into 3 servers), dense
//    from the replica, bitwise the uninterrupted run;
//  - a damaged replica fails `tessera ckpt verify` and --resume=auto takes the older
//    checkpoint;
//  - SIGTERM to the launcher: checkpoint at the next boundary, exit 75, exact resume.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/checkpoint/job_helpers.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using namespace ckpt_testing;  // NOLINT: the helpers are this file's vocabulary
using testing::SourceDir;

std::string Mlp(const std::string& flags) {
  return "--train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --optimizer=adam --lr=0.002 "
         "--log_every=0 --seed=1 --deterministic --data=" +
         SourceDir() + "/data/mnist " + flags;
}

std::string WideDeep(const std::string& flags) { return WideDeepFlags("hybrid", flags); }

// The job's final boundary is checkpointed, worker 0 writing the replica after the
// end-of-training barrier (the period, 5, does not divide the 7 steps).
TEST(CollectiveCheckpointJob, AllReduceFinalStepIsCheckpointedWithTheReplica) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  JobRun a = RunJob(tmp, Mlp("--sync=allreduce --steps=7 --checkpoint_every_steps=5 --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  Listing l = List(ck);
  ASSERT_FALSE(l.complete.empty()) << a.output;
  EXPECT_EQ(l.complete.back(), 7) << a.output;
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 7", &out), 0) << out;
  EXPECT_EQ(Tool("show " + ck + " 7", &out), 0) << out;
  EXPECT_NE(out.find("w0 replica"), std::string::npos) << out;
  JobRun b = RunJob(tmp, Mlp("--sync=allreduce --steps=7 --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("resuming from the checkpoint of step 7"), std::string::npos) << b.output;
  EXPECT_EQ(Digest(b), Digest(a)) << b.output;
}

TEST(CollectiveCheckpointJob, AllReduceResumeAfterSigkillIsBitwiseExact) {
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, Mlp("--sync=allreduce --steps=40"), 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;

  const std::string ck = tmp.path() + "/ck";
  JobRun killed = RunJob(tmp, Mlp("--sync=allreduce --steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck),
                         2, "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.output.find("crashing at after_commit"), std::string::npos) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{20}) << killed.output;
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 20", &out), 0) << out;
  EXPECT_EQ(Tool("show " + ck + " 20", &out), 0) << out;
  EXPECT_NE(out.find("w0 replica"), std::string::npos) << out;
  EXPECT_NE(out.find("sync allreduce"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("server-0 +0 records"))) << "servers write no dense chunks: " << out;

  JobRun resumed = RunJob(tmp, Mlp("--sync=allreduce --steps=40 --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "final parameters differ from the uninterrupted run";
  ExpectSameLosses(full, resumed, 20, 39);

  // Resharded into 3 servers: the workers read the replica, whatever the servers.
  JobRun three = RunJob(tmp, Mlp("--sync=allreduce --steps=40 --resume=" + ck + "/step-000000000020"), 3);
  ASSERT_EQ(three.exit_code, 0) << three.output;
  EXPECT_EQ(Digest(three), digest) << "3 servers";

  // Under bsp the servers restore the dense chunks from the replica: the job goes on
  // from the checkpoint's step and loss (bsp's sums may round differently, so only the
  // first resumed step's loss is compared).
  JobRun bsp = RunJob(tmp, Mlp("--sync=bsp --steps=40 --resume=" + ck + "/step-000000000020"), 2);
  ASSERT_EQ(bsp.exit_code, 0) << bsp.output;
  auto losses = Losses(bsp);
  ASSERT_FALSE(losses.empty()) << bsp.output;
  EXPECT_EQ(losses.front().first, 20);
  EXPECT_EQ(losses.front().second, Losses(full)[20].second) << "the bsp resume did not start from the replica";
}

TEST(CollectiveCheckpointJob, CorruptReplicaIsDetectedAndTheOlderCheckpointIsUsed) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  // Two runs of 10 steps, the second resuming the first, each checkpointing at its end.
  for (int steps : {10, 20}) {
    JobRun r = RunJob(tmp, Mlp("--sync=allreduce --steps=" + std::to_string(steps) +
                               " --checkpoint_every_steps=10 --checkpoint_dir=" + ck),
                      2);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  ASSERT_EQ(List(ck).complete, (std::vector<int>{10, 20}));
  // Truncate the newest replica's table file: verification names it, resume falls back.
  const std::string replica = ck + "/step-000000000020/replica";
  bool damaged = false;
  for (const auto& e : std::filesystem::directory_iterator(replica)) {
    if (e.path().extension() == ".sst") {
      std::filesystem::resize_file(e.path(), std::filesystem::file_size(e.path()) / 2);
      damaged = true;
    }
  }
  ASSERT_TRUE(damaged);
  std::string out;
  EXPECT_NE(Tool("verify " + ck + " 20", &out), 0) << out;
  EXPECT_NE(out.find("replica"), std::string::npos) << out;
  JobRun resumed = RunJob(tmp, Mlp("--sync=allreduce --steps=30 --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 10"), std::string::npos) << resumed.output;
}

TEST(CollectiveCheckpointJob, HybridResumeAfterSigkillIsBitwiseExact) {
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, WideDeep("--steps=40"), 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;

  // Tables from the servers' parts, the dense layers from worker 0's replica.
  const std::string ck = tmp.path() + "/ck";
  JobRun killed = RunJob(tmp, WideDeep("--steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck), 2,
                         "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{20}) << killed.output;
  std::string out;
  EXPECT_EQ(Tool("show " + ck + " 20", &out), 0) << out;
  EXPECT_NE(out.find("w0 replica"), std::string::npos) << out;
  EXPECT_FALSE(std::regex_search(out, std::regex("server-0 +0 records"))) << "the servers hold the tables: " << out;
  EXPECT_EQ(Tool("verify " + ck + " 20", &out), 0) << out;

  JobRun resumed = RunJob(tmp, WideDeep("--steps=40 --checkpoint_dir=" + ck), 3);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "final parameters differ from the uninterrupted run (3 servers)";
  ExpectSameLosses(full, resumed, 20, 39);
}

// The same through the sparse models' device path (--staging_on_cpu: embedding rows and
// the MLP on the CPU "device", the MLP's values in host mirrors): the checkpoint written
// from the mirrors and the replica restored into them and copied to the device resume
// to the host path's digest; and a host-path checkpoint resumes on the device path.
TEST(CollectiveCheckpointJob, HybridResumeThroughTheSparseDevicePathIsTheHostPaths) {
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, WideDeep("--steps=40"), 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;
  for (const auto& [write, read] : {std::pair<std::string, std::string>{"--staging_on_cpu", "--staging_on_cpu"},
                                    {"", "--staging_on_cpu"}, {"--staging_on_cpu", ""}}) {
    const std::string ck = tmp.path() + "/ck" + write + "-" + read;
    JobRun killed = RunJob(tmp, WideDeep(write + " --steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck), 2,
                           "TESSERA_CRASH_AT=after_commit");
    ASSERT_EQ(List(ck).complete, std::vector<int>{20}) << killed.output;
    JobRun resumed = RunJob(tmp, WideDeep(read + " --steps=40 --checkpoint_dir=" + ck), 2);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
    EXPECT_EQ(Digest(resumed), digest) << "written '" << write << "', resumed '" << read << "'";
  }
}

TEST(CollectiveCheckpointJob, SigtermUnderAllReduceCheckpointsExits75AndResumesExactly) {
  testing::TempDir tmp;
  const std::string flags = "--sync=allreduce --steps=1500";
  JobRun full = RunJob(tmp, Mlp(flags), 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string ck = tmp.path() + "/ck";
  BackgroundJob job(tmp, Mlp(flags + " --checkpoint_dir=" + ck));
  ASSERT_GT(job.pid(), 0);
  ASSERT_TRUE(job.WaitForSteps(100));
  ASSERT_EQ(kill(job.pid(), SIGTERM), 0);
  JobRun pre = job.Finish();
  EXPECT_EQ(pre.exit_code, 75) << pre.output;
  EXPECT_NE(pre.output.find("written by 2 servers and worker 0"), std::string::npos) << pre.output;
  ASSERT_EQ(List(ck).complete.size(), 1u) << pre.output;
  const int step = List(ck).complete[0];
  EXPECT_GT(step, 100);
  EXPECT_LT(step, 1500) << "the checkpoint is taken at the next boundary, not at the end";
  JobRun resumed = RunJob(tmp, Mlp(flags + " --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(Digest(resumed), Digest(full));
}

TEST(CollectiveCheckpointJob, StaleSyncModesStillRefuseCheckpoints) {
  testing::TempDir tmp;
  JobRun r = RunJob(tmp,
                    "--sync=ssp:2 --steps=4 --train_limit=500 --data=" + SourceDir() + "/data/mnist --checkpoint_dir=" +
                        tmp.path() + "/ck",
                    2);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("checkpoints need --sync=bsp, allreduce or hybrid"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
