// The DLRM workload's math without a network (worker/sparse/dlrm_workload.h): every
// table row and dense parameter against central finite differences, one row per distinct
// key of each field (the reserved missing id included), on data from the generator.
#include "worker/sparse/dlrm_workload.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tests/testutil/testutil.h"
#include "tests/worker_model/grad_check.h"
#include "worker/data/criteo.h"
#include "worker/data/criteo_gen.h"

namespace tessera::worker::sparse {
namespace {

using model::testing::ExpectGradientMatches;
using model::testing::GradCheckOptions;

void Randomise(Tensor* t, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  float* p = t->as<float>();
  for (int64_t i = 0; i < t->numel(); ++i) p[i] = u(rng);
}

std::vector<float> Copy(const Tensor& t) { return {t.as<float>(), t.as<float>() + t.numel()}; }

class DlrmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data::CriteoGenOptions o;
    o.rows = 300;
    o.valid_rows = 50;
    o.seed = 9;
    o.out_dir = dir_.path();
    ASSERT_TRUE(data::GenerateCriteo(o).ok());
    config_.model = "dlrm";
    config_.data_dir = dir_.path();
    config_.sparse.embed_dim = 3;
    config_.sparse.bottom_mlp = {4};
    config_.mlp.hidden_sizes = {5};
    config_.mlp.activation = kernels::Activation::kGelu;  // smooth, for finite differences
  }
  testing::TempDir dir_;
  TrainConfig config_;
};

TEST_F(DlrmTest, GradientsMatchFiniteDifferences) {
  auto w = CreateDlrmWorkload(config_, 0, 1, true);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  SparseBatch b;
  b.tables.resize((*w)->SparseParams().size());
  ASSERT_EQ(b.tables.size(), 26u);
  const std::vector<int64_t> ex = {3, 0, 17, 9, 40, 41, 3};  // example 3 twice: rows shared
  ASSERT_TRUE((*w)->Prepare(ex, 0, &b).ok());
  for (size_t t = 0; t < b.tables.size(); ++t) Randomise(&b.tables[t].values, 10 + t, 0.5f);
  uint32_t seed = 100;
  // Weights of O(1) (the bottom a little smaller), so that even the bottom MLP's first
  // bias moves the loss measurably through the top MLP.
  for (model::Parameter* p : (*w)->DenseParameters()) {
    Randomise(&p->value, seed++, p->spec.name.rfind("dlrm.bot", 0) == 0 ? 0.8f : 1.0f);
  }
  auto loss = [&]() { return *(*w)->Step(&b) * b.loss_scale; };
  GradCheckOptions o;
  o.eps = 1e-2;
  o.atol = 2e-3;
  o.rtol = 3e-2;
  double table_grad_mass = 0;
  for (size_t t = 0; t < b.tables.size(); ++t) {
    ASSERT_TRUE((*w)->Step(&b).ok());  // the grads at the unperturbed values
    const std::vector<float> g = Copy(b.tables[t].grads);
    for (float x : g) table_grad_mass += std::abs(x);
    ExpectGradientMatches("table C" + std::to_string(t + 1), b.tables[t].values.as<float>(), g,
                          loss, o);
  }
  EXPECT_GT(table_grad_mass, 1e-3)
      << "the embeddings must get gradients, or the test proves nothing";
  for (model::Parameter* p : (*w)->DenseParameters()) {
    ASSERT_TRUE((*w)->Step(&b).ok());
    const std::vector<float> g = Copy(p->grad);
    ExpectGradientMatches(p->spec.name, p->value.as<float>(), g, loss, o);
  }
}

TEST_F(DlrmTest, OneRowPerDistinctKeyOfEachField) {
  auto w = CreateDlrmWorkload(config_, 0, 1, false);
  ASSERT_TRUE(w.ok());
  auto data = data::LoadCriteoRange(dir_.path() + "/train.txt", 0, 300);
  ASSERT_TRUE(data.ok());
  std::vector<int64_t> ex(120);
  for (int64_t i = 0; i < 120; ++i) ex[i] = (i * 7) % 300;
  SparseBatch b;
  b.tables.resize(26);
  ASSERT_TRUE((*w)->Prepare(ex, 0, &b).ok());
  bool saw_missing = false;
  for (int f = 0; f < 26; ++f) {
    std::set<Key> want;
    for (int64_t e : ex) want.insert(data->keys_of(e)[f]);
    saw_missing |= want.count(0) > 0;
    const auto& keys = b.tables[f].keys;
    EXPECT_EQ(std::set<Key>(keys.begin(), keys.end()), want) << "C" << f + 1;
    EXPECT_EQ(keys.size(), want.size()) << "duplicate keys in C" << f + 1;
    EXPECT_EQ(b.tables[f].values.shape(), (Shape{static_cast<int64_t>(keys.size()), 3}));
  }
  EXPECT_TRUE(saw_missing)
      << "the generator leaves some fields empty: the reserved row 0 is pulled";
  EXPECT_LT(b.tables[8].keys.size(), 4u) << "C9 has 3 values";
}

TEST(DlrmConfig, SparseParamsAreOneTablePerField) {
  TrainConfig c;
  c.model = "dlrm";
  c.sparse.embed_dim = 7;
  const auto specs = DlrmSparseParams(c);
  ASSERT_EQ(specs.size(), 26u);
  EXPECT_EQ(specs[0].name, "dlrm.emb.C1");
  EXPECT_EQ(specs[25].name, "dlrm.emb.C26");
  for (const auto& s : specs) {
    EXPECT_EQ(s.kind, ParamKind::kSparse);
    EXPECT_EQ(s.shape, (Shape{7}));
  }
  c.data_dir = "/nonexistent-criteo";
  auto w = CreateDlrmWorkload(c, 0, 1, true);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kNotFound) << w.status().ToString();
}

}  // namespace
}  // namespace tessera::worker::sparse
