// End-to-end sanity: the model, the kernels and the MNIST loader learn together.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "tests/testutil/testutil.h"
#include "worker/data/batch_iterator.h"
#include "worker/data/dataset.h"
#include "worker/model/evaluate.h"
#include "worker/model/mlp.h"

namespace tessera::model {
namespace {

std::string MnistDir() { return tessera::testing::SourceDir() + "/data/mnist"; }

TEST(Training, SgdOnAFewHundredMnistExamplesLowersTheLoss) {
  auto train = data::LoadMnist(MnistDir(), data::Split::kTrain, {.limit = 512});
  ASSERT_OK(train.status());
  auto mlp = Mlp::Create({.hidden_sizes = {64}, .seed = 1});
  ASSERT_OK(mlp.status());
  ASSERT_OK((*mlp)->InitializeParameters());

  auto before = Evaluate(**mlp, *train, 128);
  ASSERT_OK(before.status());
  // An untrained model is near chance: loss around ln(10) = 2.30.
  EXPECT_GT(before->loss, 1.9);
  EXPECT_LT(before->accuracy(), 0.3);

  auto it = data::BatchIterator::Create(&*train, {.batch_size = 32, .seed = 1});
  ASSERT_OK(it.status());
  OptimizerConfig sgd;
  sgd.kind = OptimizerKind::kSgd;
  sgd.lr = 0.1f;
  for (int64_t step = 1; step <= 80; ++step) {
    auto batch = it->Next();
    ASSERT_OK(batch.status());
    ASSERT_OK((*mlp)->Forward(batch->features, batch->labels).status());
    ASSERT_OK((*mlp)->Backward());
    for (Parameter* p : (*mlp)->parameters()) {
      ASSERT_OK(kernels::ApplyOptimizer(sgd, step, p->value.view(), p->grad.view(), {}));
    }
  }

  auto after = Evaluate(**mlp, *train, 128);
  ASSERT_OK(after.status());
  // Five epochs over 512 examples: far below chance level, which no untrained model reaches.
  EXPECT_LT(after->loss, 0.6) << "before " << before->loss;
  EXPECT_GT(after->accuracy(), 0.85);

  // And it generalises a little: the first 1000 test images.
  auto test = data::LoadMnist(MnistDir(), data::Split::kTest, {.limit = 1000});
  ASSERT_OK(test.status());
  auto held_out = Evaluate(**mlp, *test, 256);
  ASSERT_OK(held_out.status());
  EXPECT_GT(held_out->accuracy(), 0.7);
  EXPECT_EQ(held_out->count, 1000);
}

TEST(Evaluate, CountsEveryExampleOnceInBatches) {
  auto test = data::LoadMnist(MnistDir(), data::Split::kTest, {.limit = 250});
  ASSERT_OK(test.status());
  auto mlp = Mlp::Create({.seed = 4});
  ASSERT_OK((*mlp)->InitializeParameters());
  auto a = Evaluate(**mlp, *test, 64);
  auto b = Evaluate(**mlp, *test, 250);
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_EQ(a->count, 250);
  EXPECT_EQ(a->correct, b->correct);
  EXPECT_NEAR(a->loss, b->loss, 1e-5);
  EXPECT_EQ(Evaluate(**mlp, *test, 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera::model
