// I/O errors on fsync/fdatasync during a checkpoint of a real training job (tessera
// launch, MNIST MLP), injected with libfiu's fiu-run (Debian package fiu-utils) into the
// parameter servers only. A first run writes and commits the checkpoint of step 10
// without faults; the job then resumes from it with every fdatasync (RocksDB syncs its
// SST and MANIFEST files with it) or every fsync (directory syncs, RocksDB's and
// Tessera's own) failing with EIO in the servers. The checkpoint of step 20 must end with
// an error naming the failure, never be reported committed or get a MANIFEST, and step
// 10 must still verify; a failure in the coordinator is the fsync of the checkpoint root,
// the first thing a commit makes durable. Skipped, with the reason, where fiu-run is not
// installed (a failure under CI). Then, with the test-only fail and crash points
// (checkpoint/crash_point.h): the directory fsync after the MANIFEST's rename failing
// alone, and a coordinator killed between the commit and the garbage collection.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;

constexpr const char* kJob =
    "--train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --optimizer=adam --lr=0.002 "
    "--log_every=0 --seed=1 --sync=bsp --deterministic --checkpoint_keep=0 --checkpoint_every_steps=10";

std::string Train(const std::string& program, const std::string& flags) {
  return testing::TesseraBinary() + " launch --servers 2 --workers 2 --grace_s 1 " + program + " " + kJob + " " +
         flags + " --data=" + testing::SourceDir() + "/data/mnist 2>&1; echo rc=$?";
}

// A --program for tessera launch that runs the given ranks ("1|2": the servers, "0": the
// coordinator) under fiu-run with `point` failing with EIO (failinfo is the errno), the
// others as they are.
std::string Faulty(const std::string& dir, const std::string& ranks, const std::string& point) {
  const std::string path = dir + "/fiu-" + std::to_string(std::hash<std::string>()(ranks + point)) + ".sh";
  std::ofstream(path) << "#!/bin/sh\ncase \"$TESSERA_RANK\" in\n  " << ranks << ") exec fiu-run -x -c \"enable name=" << point
                      << ",failinfo=5\" " << testing::TesseraBinary() << " \"$@\" ;;\nesac\nexec "
                      << testing::TesseraBinary() << " \"$@\"\n";
  chmod(path.c_str(), 0755);
  return "--program " + path + " --subcommand train";
}

TEST(CheckpointFsyncFault, FailedSyncFailsTheCheckpointAndKeepsThePreviousOne) {
  if (RunCommand("command -v fiu-run", 10).exit_code != 0) {
    TESSERA_SKIP_OR_FAIL_IN_CI("fiu-run is not installed (Debian package fiu-utils; scripts/setup.sh installs it)");
  }
  testing::TempDir tmp;
  const std::string first = tmp.path() + "/first";
  auto r = RunCommand(Train("", "--steps=10 --checkpoint_dir=" + first), 120);
  ASSERT_NE(r.output.find("checkpoint of step 10 committed"), std::string::npos) << r.output;
  ASSERT_NE(r.output.find("rc=0"), std::string::npos) << r.output;

  struct Case {
    const char* name;
    const char* ranks;
    const char* point;
    const char* reported;  // how the coordinator reports the failed checkpoint
    const char* cause;     // the failed call, as the report names it
  };
  // Servers: RocksDB's fdatasync of the SST / its fsync of the new database's directory.
  // Coordinator: the fsync of the MANIFEST (then of its directory) that commits.
  for (const Case& c : {Case{"servers-fdatasync", "1|2", "posix/io/sync/fdatasync", "checkpoint of step 20 abandoned",
                             "While fdatasync"},
                        Case{"servers-fsync", "1|2", "posix/io/sync/fsync", "checkpoint of step 20 abandoned",
                             "While fsync"},
                        Case{"coordinator-fsync", "0", "posix/io/sync/fsync", "checkpoint of step 20 not committed",
                             "fsync of "}}) {
    SCOPED_TRACE(c.name);
    const char* point = c.name;
    const std::string ck = tmp.path() + "/" + c.name;
    ASSERT_EQ(RunCommand("cp -a " + first + " " + ck, 30).exit_code, 0);
    r = RunCommand(Train(Faulty(tmp.path(), c.ranks, c.point), "--steps=20 --checkpoint_dir=" + ck), 120);
    // A run that did not end has no exit line: say so with its output, rather than fail on
    // the missing line.
    ASSERT_NE(r.output.rfind("rc="), std::string::npos) << "the job did not end within 120 s\n" << r.output;
    const auto rc = r.output.substr(r.output.rfind("rc="));
    std::printf("[%s] %s", point, rc.c_str());
    EXPECT_NE(r.output.find("resuming at step 10"), std::string::npos) << r.output;
    // The failure is reported, with the OS's error, and nothing claims step 20.
    EXPECT_NE(r.output.find(c.reported), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("Input/output error"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.cause), std::string::npos) << r.output;
    if (std::string(c.ranks) == "0") {
      // The root's entry for the new step directory is synced first, before the MANIFEST.
      EXPECT_NE(r.output.find("fsync of directory " + ck + ": Input/output error"), std::string::npos) << r.output;
    }
    EXPECT_EQ(r.output.find("checkpoint of step 20 committed"), std::string::npos)
        << "reported success after a failed " << point << "\n" << r.output;
    EXPECT_FALSE(std::filesystem::exists(ck + "/step-000000000020/MANIFEST")) << r.output;
    for (size_t p = r.output.find(c.reported); p != std::string::npos; p = r.output.find(c.reported, p + 1)) {
      std::printf("[%s] %s\n", point, r.output.substr(p, r.output.find('\n', p) - p).c_str());
    }
    // The previous checkpoint is intact, and a resume would pick it.
    auto v = RunCommand(testing::TesseraBinary() + " ckpt verify " + ck + " 10", 60);
    EXPECT_EQ(v.exit_code, 0) << "the previous checkpoint is damaged:\n" << v.output;
    auto ls = RunCommand(testing::TesseraBinary() + " ckpt ls " + ck, 60);
    std::printf("[%s] ckpt ls:\n%s\n", point, ls.output.c_str());
  }
}

// The step directories of `dir` that `tessera ckpt ls` reports complete, as "10 20".
std::string CompleteSteps(const std::string& dir) {
  std::string out;
  for (int step : {10, 20, 30}) {
    char name[32];
    std::snprintf(name, sizeof(name), "/step-%012d/MANIFEST", step);
    if (std::filesystem::exists(dir + name)) out += (out.empty() ? "" : " ") + std::to_string(step);
  }
  return out;
}

// The MANIFEST is renamed into place but the fsync of its directory fails. A
// resume would use that MANIFEST, so the coordinator must say it committed (adding that
// it is not known to be durable), and must keep the older checkpoint (no GC) because the
// new one may not survive a power loss. The old code said "not committed" here.
TEST(CheckpointCommitSync, FailedManifestDirFsyncIsReportedCommittedAndKeepsTheOlder) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  auto r = RunCommand(Train("", "--steps=10 --checkpoint_keep=1 --checkpoint_dir=" + ck), 120);
  ASSERT_NE(r.output.find("checkpoint of step 10 committed"), std::string::npos) << r.output;
  r = RunCommand("TESSERA_FAIL_AT=manifest_dir_fsync " +
                 Train("", "--steps=20 --checkpoint_keep=1 --checkpoint_dir=" + ck), 120);
  EXPECT_NE(r.output.find("resuming at step 10"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("TESSERA_FAIL_AT: failing at manifest_dir_fsync"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("checkpoint of step 20 committed but not known to be durable"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("checkpoint of step 20 not committed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rc=0"), std::string::npos) << r.output;
  // What is reported is what a resume sees: step 20 is there and sound; step 10 too.
  EXPECT_EQ(CompleteSteps(ck), "10 20") << r.output;
  auto v = RunCommand(testing::TesseraBinary() + " ckpt verify " + ck + " 20", 60);
  EXPECT_EQ(v.exit_code, 0) << v.output;
}

// A coordinator killed after the commit and before the garbage collection: both the new
// checkpoint and the one GC would have removed are complete, a resume takes the new one,
// and the next durable commit collects what --checkpoint_keep=1 no longer keeps.
TEST(CheckpointCommitSync, CrashBetweenCommitAndGcResumesFromTheNewCheckpoint) {
  testing::TempDir tmp;
  const std::string ck = tmp.path() + "/ck";
  auto r = RunCommand(Train("", "--steps=10 --checkpoint_keep=1 --checkpoint_dir=" + ck), 120);
  ASSERT_NE(r.output.find("checkpoint of step 10 committed"), std::string::npos) << r.output;
  r = RunCommand("TESSERA_CRASH_AT=before_gc " + Train("", "--steps=20 --checkpoint_keep=1 --checkpoint_dir=" + ck),
                 120);
  EXPECT_NE(r.output.find("TESSERA_CRASH_AT: crashing at before_gc"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("rc=0"), std::string::npos) << "the job survived its coordinator\n" << r.output;
  EXPECT_EQ(CompleteSteps(ck), "10 20") << r.output;
  for (const char* step : {"10", "20"}) {
    auto v = RunCommand(testing::TesseraBinary() + " ckpt verify " + ck + " " + step, 60);
    EXPECT_EQ(v.exit_code, 0) << "step " << step << ":\n" << v.output;
  }
  r = RunCommand(Train("", "--steps=30 --checkpoint_keep=1 --checkpoint_dir=" + ck), 120);
  EXPECT_NE(r.output.find("resuming at step 20"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rc=0"), std::string::npos) << r.output;
  EXPECT_EQ(CompleteSteps(ck), "30") << r.output;
}

}  // namespace
}  // namespace tessera
