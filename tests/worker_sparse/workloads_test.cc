// The sparse workloads' math without a network: gradients against central finite
// differences, one row per distinct key, and the binary metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "tests/testutil/testutil.h"
#include "tests/worker_model/grad_check.h"
#include "tests/worker_sparse/sparse_test_util.h"
#include "worker/data/libsvm.h"
#include "worker/sparse/binary_metrics.h"
#include "worker/sparse/ctr_workload.h"
#include "worker/sparse/key_index.h"
#include "worker/sparse/word2vec_workload.h"

namespace tessera::worker::sparse {
namespace {

using model::testing::ExpectGradientMatches;
using model::testing::GradCheckOptions;

// n LIBSVM rows over features 1..30 (4-7 active, increasing), labels from a planted rule.
std::string SyntheticLibsvm(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::set<uint32_t> f;
    const int m = 4 + static_cast<int>(rng() % 4);
    while (static_cast<int>(f.size()) < m) f.insert(1 + rng() % 30);
    const bool pos = (f.count(3) + f.count(7) + f.count(11)) >= 1;
    out += pos ? "+1" : "-1";
    for (uint32_t x : f) out += " " + std::to_string(x) + ":" + (x % 5 == 0 ? "0.5" : "1");
    out += "\n";
  }
  return out;
}

void Randomise(Tensor* t, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  float* p = t->as<float>();
  for (int64_t i = 0; i < t->numel(); ++i) p[i] = u(rng);
}

std::vector<float> Copy(const Tensor& t) { return {t.as<float>(), t.as<float>() + t.numel()}; }

class CtrTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    sparse_testing::WriteGz(dir_.path() + "/a9a.gz", SyntheticLibsvm(64, 1));
    sparse_testing::WriteGz(dir_.path() + "/a9a.t.gz", SyntheticLibsvm(32, 2));
    config_.model = GetParam();
    config_.data_dir = dir_.path();
    config_.sparse.hash_bits = 12;
    config_.sparse.embed_dim = 3;
    config_.mlp.hidden_sizes = {5};
    config_.mlp.activation = kernels::Activation::kGelu;  // smooth, for finite differences
  }
  testing::TempDir dir_;
  TrainConfig config_;
};

TEST_P(CtrTest, GradientsMatchFiniteDifferences) {
  auto w = CreateCtrWorkload(config_, 0, 1, true);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  SparseBatch b;
  b.tables.resize((*w)->SparseParams().size());
  const std::vector<int64_t> ex = {3, 0, 17, 9, 40, 41};
  ASSERT_TRUE((*w)->Prepare(ex, 0, &b).ok());
  for (size_t t = 0; t < b.tables.size(); ++t) Randomise(&b.tables[t].values, 10 + t, 0.4f);
  uint32_t seed = 100;
  for (model::Parameter* p : (*w)->DenseParameters()) Randomise(&p->value, seed++, 0.6f);
  ASSERT_TRUE((*w)->Step(&b).ok());
  auto loss = [&]() { return *(*w)->Step(&b) * b.loss_scale; };
  GradCheckOptions o;
  o.eps = 1e-2;
  o.atol = 2e-3;
  o.rtol = 3e-2;
  for (size_t t = 0; t < b.tables.size(); ++t) {
    ASSERT_TRUE((*w)->Step(&b).ok());  // the grads at the unperturbed values
    const std::vector<float> g = Copy(b.tables[t].grads);
    ExpectGradientMatches("table " + std::to_string(t), b.tables[t].values.as<float>(), g, loss, o);
  }
  for (model::Parameter* p : (*w)->DenseParameters()) {
    ASSERT_TRUE((*w)->Step(&b).ok());
    const std::vector<float> g = Copy(p->grad);
    ExpectGradientMatches(p->spec.name, p->value.as<float>(), g, loss, o);
  }
}

// The wide table's keys are exactly the distinct hashed feature sets of the batch.
TEST_P(CtrTest, OneRowPerDistinctKey) {
  config_.sparse.hash_bits = 24;
  auto w = CreateCtrWorkload(config_, 0, 1, false);
  ASSERT_TRUE(w.ok());
  auto data = data::LoadLibsvm(dir_.path() + "/a9a.gz");
  ASSERT_TRUE(data.ok());
  std::vector<int64_t> ex(20);
  std::iota(ex.begin(), ex.end(), 5);
  SparseBatch b;
  b.tables.resize((*w)->SparseParams().size());
  ASSERT_TRUE((*w)->Prepare(ex, 0, &b).ok());
  std::set<Key> want_wide, want_deep;
  size_t occurrences = 0;
  for (int64_t e : ex) {
    const auto f = data->features_of(e);
    want_wide.insert(CrossKey({}, 24));
    for (size_t i = 0; i < f.size(); ++i) {
      want_wide.insert(CrossKey(f.subspan(i, 1), 24));
      want_deep.insert(f[i]);
      for (size_t j = i + 1; j < f.size(); ++j) {
        const uint32_t pair[2] = {f[i], f[j]};
        want_wide.insert(CrossKey(pair, 24));
        ++occurrences;
      }
    }
  }
  const auto& keys = b.tables[0].keys;
  EXPECT_EQ(std::set<Key>(keys.begin(), keys.end()), want_wide);
  EXPECT_EQ(keys.size(), want_wide.size()) << "duplicate keys in the batch";
  EXPECT_LT(keys.size(), occurrences) << "the batch should share keys, or the test proves nothing";
  EXPECT_EQ(b.tables[0].grads.shape(), (Shape{static_cast<int64_t>(keys.size()), 1}));
  if (b.tables.size() > 1) {
    EXPECT_EQ(std::set<Key>(b.tables[1].keys.begin(), b.tables[1].keys.end()), want_deep);
    EXPECT_EQ(b.tables[1].keys.size(), want_deep.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CtrTest, ::testing::Values("logreg", "widedeep"));

TEST(CrossKey, DependsOnTheSetAndStaysInRange) {
  const uint32_t ab[2] = {1, 2}, ba[2] = {2, 1}, a[1] = {1};
  EXPECT_NE(CrossKey(ab, 24), CrossKey(ba, 24));  // callers pass sorted indices
  EXPECT_NE(CrossKey(ab, 24), CrossKey(a, 24));
  for (uint32_t f = 1; f < 1000; ++f) {
    const uint32_t s[1] = {f};
    EXPECT_LT(CrossKey(s, 10), Key{1} << 10);
  }
}

class Word2VecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(3);
    std::string text;
    for (int i = 0; i < 3000; ++i)
      text += "w" + std::to_string(rng() % 40) + (i % 25 == 24 ? "\n" : " ");
    sparse_testing::WriteGz(dir_.path() + "/corpus.gz", text);
    config_.model = "word2vec";
    config_.data_dir = dir_.path();
    config_.sparse.embed_dim = 4;
    config_.sparse.window = 2;
    config_.sparse.negatives = 3;
    config_.sparse.min_count = 1;
    config_.sparse.subsample = 0;
    config_.sparse.heldout_pairs = 50;
    config_.eval_batch_size = 20;
  }
  testing::TempDir dir_;
  TrainConfig config_;
};

TEST_F(Word2VecTest, GradientsMatchFiniteDifferences) {
  auto w = CreateWord2VecWorkload(config_, 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  SparseBatch b;
  b.tables.resize(2);
  ASSERT_TRUE((*w)->Prepare(std::vector<int64_t>{10, 11, 500}, 0, &b).ok());
  ASSERT_FALSE(b.tables[0].keys.empty());
  Randomise(&b.tables[0].values, 1, 0.5f);
  Randomise(&b.tables[1].values, 2, 0.5f);
  ASSERT_TRUE((*w)->Step(&b).ok());
  EXPECT_GT(b.loss_scale, 3);  // several pairs, summed
  auto loss = [&]() { return *(*w)->Step(&b) * b.loss_scale; };
  GradCheckOptions o;
  o.eps = 1e-2;
  o.atol = 5e-3;
  o.rtol = 3e-2;
  for (int t = 0; t < 2; ++t) {
    ASSERT_TRUE((*w)->Step(&b).ok());  // the grads at the unperturbed values
    const std::vector<float> g = Copy(b.tables[t].grads);
    ExpectGradientMatches(t == 0 ? "w2v.input" : "w2v.output", b.tables[t].values.as<float>(), g,
                          loss, o);
  }
}

TEST_F(Word2VecTest, KeysAreDistinctWordIdsAndBatchesAreDeterministic) {
  auto w = CreateWord2VecWorkload(config_, 0, 1);
  ASSERT_TRUE(w.ok());
  std::vector<int64_t> ex(64);
  std::iota(ex.begin(), ex.end(), 100);
  SparseBatch a, b;
  a.tables.resize(2);
  b.tables.resize(2);
  ASSERT_TRUE((*w)->Prepare(ex, 3, &a).ok());
  ASSERT_TRUE((*w)->Prepare(ex, 3, &b).ok());
  for (int t = 0; t < 2; ++t) {
    const auto& k = a.tables[t].keys;
    EXPECT_EQ(std::set<Key>(k.begin(), k.end()).size(), k.size());
    for (Key key : k) EXPECT_LT(key, 40u);
    EXPECT_EQ(k, b.tables[t].keys);
  }
  // Every center of the batch (no subsampling) has a row in the input table.
  EXPECT_GE(a.tables[0].keys.size(), 30u);
}

// With zero output vectors every score is 0, so the held-out loss is (1 + K) log 2 per
// pair, less the negatives that drew the positive word.
TEST_F(Word2VecTest, InitialHeldOutLossIsLogTwoPerTarget) {
  auto w = CreateWord2VecWorkload(config_, 0, 1);
  ASSERT_TRUE(w.ok());
  const int64_t n = (*w)->NumEvalBatches();
  ASSERT_GE(n, 2);
  for (int64_t i = 0; i < n; ++i) {
    SparseBatch b;
    b.tables.resize(2);
    ASSERT_TRUE((*w)->PrepareEval(i, &b).ok());
    Randomise(&b.tables[0].values, 5, 0.1f);
    float* out = b.tables[1].values.as<float>();
    std::fill(out, out + b.tables[1].values.numel(), 0.0f);
    ASSERT_TRUE((*w)->Eval(i, b).ok());
  }
  EvalReport r = (*w)->FinishEval();
  EXPECT_LE(r.heldout_loss, 4 * std::log(2.0) + 1e-6);
  EXPECT_GT(r.heldout_loss, 3 * std::log(2.0));
  EXPECT_GT(r.examples, 20);
}

TEST(BinaryMetrics, AucMatchesPairCountingAndLogLossIsStable) {
  std::mt19937 rng(9);
  std::vector<float> s(300), y(300);
  for (size_t i = 0; i < s.size(); ++i) {
    y[i] = static_cast<float>(rng() % 3 == 0);
    s[i] = static_cast<float>(static_cast<int>(rng() % 20)) + y[i] * 3;  // ties on purpose
  }
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    for (size_t j = 0; j < s.size(); ++j) {
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
      }
    }
  }
  EXPECT_NEAR(Auc(s, y), wins / pairs, 1e-12);
  EXPECT_EQ(Auc({1, 2}, {1, 1}), 0.5);
  EXPECT_NEAR(LogLoss({0, 0}, {0, 1}), std::log(2.0), 1e-12);
  EXPECT_NEAR(LogLoss({1000}, {0}), 1000, 1e-9);
  EXPECT_NEAR(LogLoss({-1000}, {0}), 0, 1e-12);
}

TEST(BinaryMetrics, EvalReportsWhatWasAddedAndStartsOver) {
  BinaryEval e;
  e.Add(2.0f, 1);    // right
  e.Add(-1.0f, 0);   // right
  e.Add(0.5f, 0);    // wrong: logit > 0 reads as class 1
  e.Add(-0.25f, 1);  // wrong
  e.Add(3.0f, 1);    // right
  EvalReport r = e.TakeReport();
  EXPECT_EQ(r.examples, 5);
  EXPECT_DOUBLE_EQ(r.accuracy, 3.0 / 5);
  EXPECT_NEAR(r.test_auc, Auc({2.0f, -1.0f, 0.5f, -0.25f, 3.0f}, {1, 0, 0, 1, 1}), 1e-12);
  EXPECT_NEAR(r.logloss, LogLoss({2.0f, -1.0f, 0.5f, -0.25f, 3.0f}, {1, 0, 0, 1, 1}), 1e-12);
  EXPECT_LT(r.heldout_loss, 0);  // not a metric of this model
  e.Add(-1.0f, 1);
  r = e.TakeReport();  // only the example added since the last report
  EXPECT_EQ(r.examples, 1);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.0);
  EXPECT_EQ(e.TakeReport().examples, 0);
}

TEST(KeyIndex, DedupsInFirstSeenOrderAcrossGrowth) {
  KeyIndex idx;
  idx.Reset(2);
  std::vector<int32_t> rows;
  for (Key k = 0; k < 5000; ++k) rows.push_back(idx.Insert((k * 7919) % 1000));
  EXPECT_EQ(idx.size(), 1000u);
  for (Key k = 0; k < 5000; ++k) EXPECT_EQ(idx.keys()[rows[k]], (k * 7919) % 1000);
  idx.Reset(10);
  EXPECT_EQ(idx.size(), 0u);
  EXPECT_EQ(idx.Insert(42), 0);
}

}  // namespace
}  // namespace tessera::worker::sparse

namespace tessera::worker {
namespace {

TEST(SparseConfig, BadValuesNameTheFlag) {
  struct Case {
    void (*set)(SparseConfig*);
    const char* want;
  };
  const Case cases[] = {
      {[](SparseConfig* c) { c->cross_order = 4; }, "--cross_order=4"},
      {[](SparseConfig* c) { c->hash_bits = 0; }, "--hash_bits=0"},
      {[](SparseConfig* c) { c->embed_dim = 0; }, "--embed_dim=0"},
      {[](SparseConfig* c) { c->window = 0; }, "--window=0"},
      {[](SparseConfig* c) { c->negatives = -1; }, "--negatives=-1"},
      {[](SparseConfig* c) { c->min_count = 0; }, "--min_count=0"},
      {[](SparseConfig* c) { c->subsample = -1; }, "--subsample="},
      {[](SparseConfig* c) { c->heldout_fraction = 0.9; }, "--heldout_fraction="},
      {[](SparseConfig* c) { c->heldout_pairs = 0; }, "--heldout_pairs=0"},
      {[](SparseConfig* c) { c->bottom_mlp = {64, 0}; }, "--bottom_mlp=0"},
  };
  for (const Case& k : cases) {
    TrainConfig c;
    c.model = "word2vec";
    k.set(&c.sparse);
    Status st = ValidateTrainConfig(c);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << k.want;
    EXPECT_NE(st.message().find(k.want), std::string::npos) << st.message();
    c.model = "mlp";  // the dense model ignores the sparse settings
    EXPECT_TRUE(ValidateTrainConfig(c).ok()) << k.want;
  }
  TrainConfig ok;
  for (const char* m : {"logreg", "widedeep", "dlrm", "word2vec"}) {  // word2vec last: used below
    ok.model = m;
    EXPECT_TRUE(ValidateTrainConfig(ok).ok()) << m;
    EXPECT_TRUE(IsSparseModel(m));
  }
  EXPECT_FALSE(IsSparseModel("mlp"));
  ok.eval_every = 10;
  EXPECT_NE(
      ValidateTrainConfig(ok).message().find("--eval_every=10: not supported for --model=word2vec"),
      std::string::npos);
}

}  // namespace
}  // namespace tessera::worker
