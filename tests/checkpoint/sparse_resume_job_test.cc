// Exact resume of the sparse models (issue 7 item 6 for sparse tables): real jobs through
// `tessera launch` (1 coordinator, servers, 2 workers on loopback, --deterministic bsp).
// A run of 2N steps, and a run of N steps whose coordinator is SIGKILLed right after the
// step-N checkpoint committed (TESSERA_CRASH_AT=after_commit), resumed to 2N: the same
// final params_digest (which chains the dense values and every pulled evaluation row)
// and the same losses for steps N..2N-1.
//  - widedeep: resumed by the 2 servers that wrote the checkpoint and resharded into 3;
//  - word2vec: both tables sparse, subsampling/windows/negatives hashed from the cursor.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/checkpoint/job_helpers.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using namespace ckpt_testing;  // NOLINT: the helpers are this file's vocabulary
using testing::SourceDir;

std::string WideDeep(const std::string& flags) { return WideDeepFlags("bsp", flags); }

TEST(SparseCheckpointJob, WideDeepResumeAfterSigkillIsBitwiseExactAndReshards) {
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, WideDeep("--steps=40"), 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string digest = Digest(full);
  ASSERT_EQ(digest.size(), 16u) << full.output;

  // N = 20 steps, checkpointed at their end; the coordinator dies right after the commit.
  const std::string ck = tmp.path() + "/ck";
  JobRun killed = RunJob(tmp, WideDeep("--steps=20 --checkpoint_every_steps=20 --checkpoint_dir=" + ck), 2,
                         "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.output.find("crashing at after_commit"), std::string::npos) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{20}) << killed.output;
  std::string out;
  EXPECT_EQ(Tool("verify " + ck + " 20", &out), 0) << out;
  EXPECT_EQ(Tool("show " + ck + " 20", &out), 0) << out;
  EXPECT_NE(out.find("deep.embedding"), std::string::npos) << out;
  EXPECT_NE(out.find("wide.weight"), std::string::npos) << out;

  JobRun resumed = RunJob(tmp, WideDeep("--steps=40 --checkpoint_dir=" + ck), 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 20"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), digest) << "final parameters differ from the uninterrupted run";
  ExpectSameLosses(full, resumed, 20, 39);

  // The checkpoint written by 2 servers, loaded by 3: the rows are resharded.
  JobRun three = RunJob(tmp, WideDeep("--steps=40 --resume=" + ck + "/step-000000000020"), 3);
  ASSERT_EQ(three.exit_code, 0) << three.output;
  EXPECT_EQ(Digest(three), digest) << "3 servers";
  ExpectSameLosses(full, three, 20, 39);
}

TEST(SparseCheckpointJob, Word2VecResumeAfterSigkillIsBitwiseExact) {
  const std::string flags = "--model=word2vec --data=" + SourceDir() +
                            "/data/text8-head --train_limit=30000 --batch_size=128 --embed_dim=16 --window=3 "
                            "--negatives=3 --min_count=5 --optimizer=adagrad --lr=0.2 --grad_reduce=sum "
                            "--heldout_pairs=500 --log_every=0 --seed=2 --sync=bsp --deterministic ";
  testing::TempDir tmp;
  JobRun full = RunJob(tmp, flags + "--steps=30", 2);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  ASSERT_EQ(Digest(full).size(), 16u) << full.output;
  const std::string ck = tmp.path() + "/ck";
  JobRun killed = RunJob(tmp, flags + "--steps=15 --checkpoint_every_steps=15 --checkpoint_dir=" + ck, 2,
                         "TESSERA_CRASH_AT=after_commit");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_EQ(List(ck).complete, std::vector<int>{15}) << killed.output;
  JobRun resumed = RunJob(tmp, flags + "--steps=30 --checkpoint_dir=" + ck, 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from the checkpoint of step 15"), std::string::npos) << resumed.output;
  EXPECT_EQ(Digest(resumed), Digest(full));
  ExpectSameLosses(full, resumed, 15, 29);
}

}  // namespace
}  // namespace tessera
