// Exact resume of --model=dlrm (26 sparse tables + two dense MLPs), mirroring the widedeep
// case of sparse_resume_job_test.cc: real jobs through `tessera launch` (2 workers on
// loopback, --deterministic bsp) on a small set from `tessera datagen criteo`. A run of
// 2N steps, and a run of N steps whose coordinator is SIGKILLed right after the step-N
// checkpoint committed, resumed to 2N by the same 2 servers and, resharded, by 3: the same
// final params_digest (dense values and every pulled evaluation row) and the same losses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/checkpoint/job_helpers.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using namespace ckpt_testing;  // NOLINT: the helpers are this file's vocabulary

TEST(DlrmCheckpointJob, ResumeAfterSigkillIsBitwiseExactAndReshards) {
  testing::TempDir tmp;
  const std::string data = tmp.path() + "/criteo";
  auto gen =
      testing::RunCommand(testing::TesseraBinary() +
                              " datagen criteo --rows 6000 --valid_rows 1000 --seed 4 -o " + data,
                          120);
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  const std::string flags =
      "--model=dlrm --data=" + data +
      " --embed_dim=4 --bottom_mlp=8 --hidden=8 --batch_size=32 --optimizer=adagrad --lr=0.05 "
      "--log_every=0 --seed=5 --deterministic --sync=bsp ";
  JobRun full = RunJob(tmp, flags + "--steps=24", 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;

  const std::string ck = tmp.path() + "/ck";
  JobRun killed =
      RunJob(tmp, flags + "--steps=12 --checkpoint_every_steps=12 --checkpoint_dir=" + ck, 2,
             "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.output.find("crashing at after_commit"), std::string::npos) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{12}) << killed.output;
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 12", &out), 0) << out;
  EXPECT_EQ(Tool("show " + ck + " 12", &out), 0) << out;
  EXPECT_NE(out.find("dlrm.emb.C26"), std::string::npos) << out;
  EXPECT_NE(out.find("dlrm.top.fc"), std::string::npos) << out;

  JobRun resumed = RunJob(tmp, flags + "--steps=24 --checkpoint_dir=" + ck, 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 12"), std::string::npos)
      << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "final parameters differ from the uninterrupted run";
  ExpectSameLosses(full, resumed, 12, 23);

  JobRun three = RunJob(tmp, flags + "--steps=24 --resume=" + ck + "/step-000000000012", 3);
  ASSERT_EQ(three.exit_code, 0) << three.output;
  EXPECT_EQ(Digest(three), digest) << "3 servers";
  ExpectSameLosses(full, three, 12, 23);
}

}  // namespace
}  // namespace tessera
