// Storage faults during checkpoints of a real training job (tessera launch, MNIST MLP):
// the checkpoint directory is a small tmpfs the test mounts, big enough for one
// checkpoint but not two. The next checkpoint must fail cleanly (never reported as
// committed), and the previous one must stay intact (`tessera ckpt verify`). Skipped,
// with the reason, where tmpfs cannot be mounted (needs root).
#include <gtest/gtest.h>

#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;

constexpr const char* kJob =
    "--train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --optimizer=adam --lr=0.002 "
    "--log_every=0 --seed=1 --sync=bsp --deterministic --checkpoint_keep=0";

std::string Train(const std::string& flags) {
  return testing::TesseraBinary() + " launch --servers 2 --workers 2 --grace_s 1 " + kJob + " " + flags +
         " --data=" + testing::SourceDir() + "/data/mnist";
}

class CheckpointDiskFullTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (mounted_) RunCommand("umount " + mnt_, 30);
  }
  bool mounted_ = false;
  std::string mnt_;
};

TEST_F(CheckpointDiskFullTest, FullDiskFailsTheCheckpointCleanlyAndKeepsThePreviousOne) {
  testing::TempDir tmp;
  // How big is one checkpoint of this job?
  const std::string probe = tmp.path() + "/probe";
  auto r = RunCommand(Train("--steps=10 --checkpoint_every_steps=10 --checkpoint_dir=" + probe) + " >/dev/null 2>&1; du -sk " + probe,
                      120);
  long kib = 0;
  try {
    kib = std::stol(r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1));
  } catch (...) {
  }
  ASSERT_GT(kib, 0) << r.output;
  // Room for one and a half checkpoints.
  mnt_ = tmp.path() + "/small";
  r = RunCommand("mkdir -p " + mnt_ + " && mount -t tmpfs -o size=" + std::to_string(kib * 3 / 2) + "k tmpfs " + mnt_, 30);
  if (r.exit_code != 0) TESSERA_SKIP_OR_FAIL_IN_CI("cannot mount a tmpfs here (needs root): " + r.output);
  mounted_ = true;
  const std::string ck = mnt_ + "/ck";
  // Enough steps that a second checkpoint is attempted: it must not wait for the first
  // to be written, and with same-host shared memory 30 steps can take less time than that.
  r = RunCommand(Train("--steps=300 --checkpoint_every_steps=10 --checkpoint_dir=" + ck) + " 2>&1; echo rc=$?", 180);
  std::printf("[disk full] one checkpoint %ld KiB, tmpfs %ld KiB\n", kib, kib * 3 / 2);
  EXPECT_NE(r.output.find("checkpoint of step 10 committed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("checkpoint of step 20 committed"), std::string::npos) << "reported success on a full disk\n"
                                                                                 << r.output;
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  auto v = RunCommand(testing::TesseraBinary() + " ckpt verify " + ck + " 10", 60);
  EXPECT_EQ(v.exit_code, 0) << "the previous checkpoint is damaged:\n" << v.output;
  auto ls = RunCommand(testing::TesseraBinary() + " ckpt ls " + ck, 60);
  std::printf("[disk full] job: %s\n[disk full] ckpt ls:\n%s\n", r.output.substr(r.output.rfind("rc=")).c_str(),
              ls.output.c_str());
}

}  // namespace
}  // namespace tessera
