// Checkpoints of real jobs (`tessera launch`, 1 coordinator + servers + 2 workers on
// loopback, an MNIST subset, --deterministic bsp), killed with real signals:
//  - exact resume: 2N steps in one go vs N steps, SIGKILL right after the step-N
//    checkpoint committed (TESSERA_CRASH_AT=after_commit), resume to 2N: same final
//    params_digest and the same losses for steps N..2N-1;
//  - resharding: the 2-server checkpoint resumed by 3 and by 1 servers, same result;
//  - crash points of the protocol: resume finds the old or the new checkpoint, never a
//    mix, and the unfinished one is garbage-collected;
//  - corruption: a flipped byte makes `tessera ckpt verify` fail and --resume=auto fall
//    back to the older checkpoint;
//  - preemption: SIGTERM to the launcher, or SIGUSR1 to one worker, checkpoints at the
//    next step boundary and exits with 75; resuming reaches the uninterrupted result.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "tests/checkpoint/job_helpers.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using namespace ckpt_testing;  // NOLINT: the helpers are this file's vocabulary
using testing::SourceDir;

constexpr const char* kJob =
    "--train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --optimizer=adam --lr=0.002 "
    "--log_every=0 --seed=1 --sync=bsp --deterministic";

// The MLP job: every run gets kJob and the MNIST data.
std::string JobFlags(const std::string& flags) {
  return std::string(kJob) + " " + flags + " --data=" + SourceDir() + "/data/mnist";
}

JobRun Train(const testing::TempDir& tmp, const std::string& flags, int servers = 2, const std::string& env = "") {
  return RunJob(tmp, JobFlags(flags), servers, env);
}

TEST(CheckpointJob, ResumeAfterSigkillIsBitwiseExactAndReshards) {
  testing::TempDir tmp;
  JobRun full = Train(tmp, "--steps=40");
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u);

  // N = 20 steps, checkpointed at their end; the coordinator is SIGKILLed right after
  // the manifest's commit (the rest of the job dies with it).
  const std::string ck = tmp.path() + "/ck";
  JobRun killed = Train(tmp, "--steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck, 2,
                        "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.output.find("crashing at after_commit"), std::string::npos) << killed.output;
  EXPECT_EQ(List(ck).complete, std::vector<int>{20});
  std::string out;
  EXPECT_EQ(Tool("verify " + ck, &out), 0) << out;
  EXPECT_EQ(Tool("ls " + ck, &out), 0);
  EXPECT_NE(out.find("complete"), std::string::npos) << out;
  EXPECT_EQ(Tool("show " + ck + " 20", &out), 0);
  EXPECT_NE(out.find("fc1.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("--deterministic=true"), std::string::npos) << out;

  JobRun resumed = Train(tmp, "--steps=40 --checkpoint_dir=" + ck);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "final parameters differ from the uninterrupted run";
  ExpectSameLosses(full, resumed, 20, 39);

  // The same checkpoint (2 servers wrote it) loaded by 3 and by 1 servers.
  for (int servers : {3, 1}) {
    JobRun r = Train(tmp, "--steps=40 --resume=" + ck + "/step-000000000020", servers);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(Digest(r), digest) << servers << " servers";
  }
}

TEST(CheckpointJob, IncompatibleModelIsRefusedNamingTheParameter) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  // One boundary, at the end, asked for when training starts (as in the test above): a
  // boundary at step 5 of a 10-step job can be passed before its prepare reaches the
  // workers on a loaded machine, and then the end's is missed too (CI saw it once).
  JobRun a = Train(tmp, "--steps=10 --checkpoint_every_steps=10 --checkpoint_dir=" + ck);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_FALSE(List(ck).complete.empty()) << a.output;
  JobRun b = Train(tmp, "--steps=10 --hidden=48 --checkpoint_dir=" + ck);
  EXPECT_EQ(b.exit_code, 2) << b.output;
  EXPECT_NE(b.output.find("parameter 'fc1.weight' differs"), std::string::npos) << b.output;
  JobRun c = Train(tmp, "--steps=10 --hidden=48 --resume=none --checkpoint_dir=" + ck);
  EXPECT_EQ(c.exit_code, 0) << c.output;
}

// With periodic checkpoints on, the job's last step boundary is always checkpointed, even
// where the period does not divide it (the attempt scheduled past the end is replaced)
// or the workers pass a scheduled boundary before its prepare arrives (the prepare of
// the end comes with the end-of-training barrier).
TEST(CheckpointJob, TheFinalStepIsCheckpointedWhateverThePeriod) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  JobRun a = Train(tmp, "--steps=7 --checkpoint_every_steps=5 --checkpoint_dir=" + ck);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  Listing l = List(ck);
  ASSERT_FALSE(l.complete.empty()) << a.output;
  EXPECT_EQ(l.complete.back(), 7) << a.output;
  EXPECT_NE(a.output.find("checkpoint of step 7 committed"), std::string::npos) << a.output;
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 7", &out), 0) << out;
  // Nothing is left to train: the rerun resumes at the end and ends with the same
  // parameters, writing nothing new.
  JobRun b = Train(tmp, "--steps=7 --checkpoint_every_steps=5 --checkpoint_dir=" + ck);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("resuming from the checkpoint of step 7"), std::string::npos) << b.output;
  EXPECT_EQ(Digest(b), Digest(a));
  EXPECT_EQ(List(ck).complete, l.complete) << b.output;

  // A period longer than the job: the attempt at step 100 is withdrawn, step 3 taken.
  const std::string ck2 = tmp.path() + "/ck2";
  JobRun c = Train(tmp, "--steps=3 --checkpoint_every_steps=100 --checkpoint_dir=" + ck2);
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_EQ(List(ck2).complete, std::vector<int>{3}) << c.output;
  EXPECT_NE(c.output.find("checkpoint of step 100 withdrawn"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("abandoned"), std::string::npos) << c.output;
}

// Training ends while the servers still write the checkpoint of step 10 (delayed 1.5 s
// in each server's writer): the end-of-training barrier is held until it commits, then
// the final step is checkpointed too, rather than the nearly written one being dropped.
TEST(CheckpointJob, TheFinalStepWaitsForACheckpointStillBeingWritten) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  JobRun a = Train(tmp, "--steps=12 --checkpoint_every_steps=10 --checkpoint_keep=0 --checkpoint_dir=" + ck, 2,
                   "TESSERA_DELAY_AT=server_write:1:1500");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_NE(a.output.find("the checkpoint of step 10 is being written first"), std::string::npos) << a.output;
  EXPECT_EQ(List(ck).complete, (std::vector<int>{10, 12})) << a.output;
  EXPECT_EQ(a.output.find("abandoned"), std::string::npos) << a.output;
  JobRun b = Train(tmp, "--steps=12 --resume=" + ck + "/step-000000000010");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(Digest(b), Digest(a));
}

// The same, but the write outlasts the hold (half of --request_timeout_s=2: 1 s): the
// barrier opens without a final checkpoint, with a warning, and the job still waits for
// the checkpoint of step 10 to commit before it ends.
TEST(CheckpointJob, AnEarlierCheckpointOutlastingTheHoldLeavesTheFinalStepUncheckpointed) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  JobRun a = Train(tmp,
                   "--steps=12 --checkpoint_every_steps=10 --checkpoint_keep=0 --request_timeout_s=2 "
                   "--checkpoint_dir=" + ck,
                   2, "TESSERA_DELAY_AT=server_write:1:2500");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_NE(a.output.find("the checkpoint of step 10 is still being written 1 s after training ended; the final "
                          "state (step 12) is not checkpointed"),
            std::string::npos)
      << a.output;
  EXPECT_EQ(List(ck).complete, std::vector<int>{10}) << a.output;
}

void FlipMiddleByte(const fs::path& file) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  const auto off = static_cast<std::streamoff>(fs::file_size(file) / 2);
  f.seekg(off);
  char c;
  f.get(c);
  f.seekp(off);
  f.put(static_cast<char>(c ^ 0x44));
}

TEST(CheckpointJob, CorruptNewestCheckpointFallsBackToTheOlderOne) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  // Three runs of 10 steps each, each resuming the last and checkpointing at its end.
  JobRun a;
  for (int steps : {10, 20, 30}) {
    a = Train(tmp, "--steps=" + std::to_string(steps) + " --checkpoint_every_steps=10 --checkpoint_dir=" + ck);
    ASSERT_EQ(a.exit_code, 0) << a.output;
  }
  ASSERT_EQ(List(ck).complete, (std::vector<int>{10, 20, 30}));
  // Flip a byte in the middle of the largest SST of step 30, and in step 20's manifest.
  fs::path biggest;
  for (const auto& e : fs::recursive_directory_iterator(ck + "/step-000000000030")) {
    if (e.path().extension() == ".sst" && (biggest.empty() || e.file_size() > fs::file_size(biggest))) biggest = e.path();
  }
  ASSERT_FALSE(biggest.empty());
  FlipMiddleByte(biggest);
  FlipMiddleByte(ck + "/step-000000000020/MANIFEST");
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 30", &out), 1) << out;
  EXPECT_NE(out.find("DAMAGED"), std::string::npos) << out;
  EXPECT_NE(out.find("Corruption"), std::string::npos) << out;
  EXPECT_EQ(Tool("verify " + ck + " 20", &out), 1) << out;
  EXPECT_NE(out.find("MANIFEST"), std::string::npos) << out;
  EXPECT_EQ(Tool("verify " + ck + " 10", &out), 0) << out;

  JobRun b = Train(tmp, "--steps=30 --checkpoint_dir=" + ck);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("not resuming from the checkpoint of step 30"), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("not resuming from the checkpoint of step 20"), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("resuming from the checkpoint of step 10"), std::string::npos) << b.output;
  EXPECT_EQ(Digest(b), Digest(a)) << "resumed from step 10, the run must end where the first one did";
}

class CrashPoint : public ::testing::TestWithParam<const char*> {};

// A complete checkpoint of step 10, then a run to step 20 whose checkpoint at 20 is
// interrupted at the crash point. Resume must use exactly one complete checkpoint (10 or
// 20) and end where an uninterrupted run ends; the unfinished directory must be gone.
TEST_P(CrashPoint, ResumeFindsTheOldOrTheNewCheckpointNeverAMix) {
  testing::TempDir tmp;
  JobRun full = Train(tmp, "--steps=30");
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string ck = tmp.path() + "/ck";
  const std::string flags = "--checkpoint_every_steps=10 --checkpoint_keep=5 --checkpoint_dir=" + ck;
  JobRun first = Train(tmp, "--steps=10 " + flags);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{10});
  JobRun crashed = Train(tmp, "--steps=20 " + flags, 2, std::string("TESSERA_CRASH_AT=") + GetParam());
  EXPECT_NE(crashed.exit_code, 0) << crashed.output;
  EXPECT_NE(crashed.output.find(std::string("crashing at ") + GetParam()), std::string::npos) << crashed.output;
  Listing l = List(ck);
  ASSERT_FALSE(l.complete.empty()) << crashed.output;
  const int newest = l.complete.back();
  EXPECT_TRUE(newest == 10 || newest == 20) << newest;
  for (int s : l.complete) {
    std::string out;
    EXPECT_EQ(Tool("verify " + ck + " " + std::to_string(s), &out), 0) << "a complete checkpoint is sound: " << out;
  }
  JobRun resumed = Train(tmp, "--steps=30 " + flags);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step " + std::to_string(newest)), std::string::npos)
      << resumed.output;
  EXPECT_EQ(Digest(resumed), Digest(full));
  EXPECT_TRUE(List(ck).incomplete.empty()) << "the unfinished checkpoint was not garbage-collected";
}

INSTANTIATE_TEST_SUITE_P(Points, CrashPoint,
                         ::testing::Values("after_snapshot", "mid_write", "after_done", "manifest_mid_write",
                                           "before_rename", "after_rename", "before_dir_fsync",
                                           "coordinator_before_commit"));

TEST(CheckpointJob, SigtermToTheLauncherCheckpointsExits75AndResumesExactly) {
  testing::TempDir tmp;
  // Enough steps that the job is still training when the preemption checkpoint is
  // written (through same-host shared memory 1500 steps take under a second).
  const std::string flags = "--steps=4000";
  JobRun full = Train(tmp, flags);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string ck = tmp.path() + "/ck";
  BackgroundJob job(tmp, JobFlags(flags + " --checkpoint_dir=" + ck));
  ASSERT_GT(job.pid(), 0);
  ASSERT_TRUE(job.WaitForSteps(100));
  ASSERT_EQ(kill(job.pid(), SIGTERM), 0);
  JobRun pre = job.Finish();
  EXPECT_EQ(pre.exit_code, 75) << pre.output;
  EXPECT_NE(pre.output.find("preempted after the checkpoint of step"), std::string::npos) << pre.output;
  ASSERT_EQ(List(ck).complete.size(), 1u) << pre.output;
  const int step = List(ck).complete[0];
  EXPECT_GT(step, 100);
  EXPECT_LT(step, 4000) << "the checkpoint is taken at the next boundary, not at the end";
  JobRun resumed = Train(tmp, flags + " --checkpoint_dir=" + ck);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(Digest(resumed), Digest(full));
}

TEST(CheckpointJob, SigusrToOneWorkerPreemptsTheWholeJob) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  // The preemption ends the job long before its last step: 1500 steps once took longer
  // than the preemption checkpoint, but through same-host shared memory they take under
  // a second, and a job that finishes first exits 0.
  BackgroundJob job(tmp, JobFlags("--steps=30000 --checkpoint_dir=" + ck));
  ASSERT_GT(job.pid(), 0);
  ASSERT_TRUE(job.WaitForSteps(100));
  const pid_t worker1 = job.Child(4);  // ranks: 0 coordinator, 1-2 servers, 3-4 workers
  ASSERT_GT(worker1, 0);
  ASSERT_EQ(kill(worker1, SIGUSR1), 0);
  JobRun pre = job.Finish();
  EXPECT_EQ(pre.exit_code, 75) << pre.output;
  EXPECT_NE(pre.output.find("worker 1 (rank 4)"), std::string::npos) << pre.output;
  EXPECT_EQ(List(ck).complete.size(), 1u) << pre.output;
  // Every process ended with 75: the launcher reports the first failure's code only, so
  // look for any other exit status in its log.
  EXPECT_EQ(pre.output.find("exited with code 3"), std::string::npos) << pre.output;
}

TEST(CheckpointJob, SecondSignalEndsAtOnceKeepingThePreviousCheckpoint) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  BackgroundJob job(tmp, JobFlags("--steps=3000 --checkpoint_every_steps=50 --checkpoint_keep=0 --checkpoint_dir=" + ck));
  ASSERT_GT(job.pid(), 0);
  ASSERT_TRUE(job.WaitForSteps(200));
  // The previous checkpoint must be complete before the signals. 200 steps used to take
  // longer than writing one; with same-host shared memory they may not, so wait for it.
  tessera::Deadline committed = tessera::Deadline::FromMillis(60000);
  while (List(ck).complete.empty() && !committed.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_FALSE(List(ck).complete.empty()) << "no checkpoint completed within 60 s";
  const pid_t coordinator = job.Child(0), server = job.Child(1);
  ASSERT_GT(coordinator, 0);
  ASSERT_GT(server, 0);
  // A stopped server cannot finish the preemption checkpoint, so the second signal is
  // what ends the job. (Two signals sent back to back could merge into one.)
  ASSERT_EQ(kill(server, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(kill(coordinator, SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_EQ(kill(coordinator, SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(server, SIGCONT);
  JobRun pre = job.Finish();
  EXPECT_EQ(pre.exit_code, 75) << pre.output;
  EXPECT_NE(pre.output.find("a second signal"), std::string::npos) << pre.output;
  size_t steps = 0;
  for (const auto& l : pre.metrics) steps += Field(l, "event") == "step";
  EXPECT_LT(steps, 3000u) << "the job must stop early";
  Listing l = List(ck);
  ASSERT_FALSE(l.complete.empty()) << pre.output;
  for (int s : l.complete) {
    std::string out;
    EXPECT_EQ(Tool("verify " + ck + " " + std::to_string(s), &out), 0) << out;
  }
}

}  // namespace
}  // namespace tessera
