// Three workers, two servers, bsp: the values the servers hold after each step equal an
// independent double-precision reference of (mean gradient -> clip per unit -> optimizer),
// for every optimizer, dense and sparse (with keys overlapping across workers).
#include <gtest/gtest.h>

#include <map>
#include <ostream>

#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint32_t kWorkers = 3;
constexpr uint32_t kDenseW = 0, kDenseB = 1, kEmb = 2;
constexpr int64_t kWidth = 4;

struct Case {
  const char* name;
  OptimizerConfig cfg;
  GradReduce reduce = GradReduce::kMean;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

OptimizerConfig Cfg(OptimizerKind kind, float lr) {
  OptimizerConfig c;
  c.kind = kind;
  c.lr = lr;
  return c;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  OptimizerConfig c = Cfg(OptimizerKind::kSgd, 0.1f);
  cases.push_back({"Sgd", c});
  c.weight_decay = 0.01f;
  cases.push_back({"SgdWeightDecay", c});
  cases.push_back({"SgdSum", c, GradReduce::kSum});
  c = Cfg(OptimizerKind::kSgd, 0.1f);
  c.clip_norm = 0.5f;
  cases.push_back({"SgdClipped", c});
  c = Cfg(OptimizerKind::kMomentum, 0.05f);
  c.momentum = 0.9f;
  cases.push_back({"Momentum", c});
  c.nesterov = true;
  c.weight_decay = 0.02f;
  cases.push_back({"MomentumNesterov", c});
  c = Cfg(OptimizerKind::kAdaGrad, 0.1f);
  c.initial_accumulator = 0.1f;
  cases.push_back({"AdaGrad", c});
  c = Cfg(OptimizerKind::kAdam, 0.01f);
  cases.push_back({"Adam", c});
  c.weight_decay = 0.05f;
  cases.push_back({"AdamL2", c});
  c.clip_norm = 0.3f;
  cases.push_back({"AdamClipped", c});
  c = Cfg(OptimizerKind::kAdamW, 0.01f);
  c.weight_decay = 0.1f;
  cases.push_back({"AdamW", c});
  return cases;
}

class BspOptimizer : public ::testing::TestWithParam<Case> {
 protected:
  BspOptimizer()
      : cluster_(2, kWorkers,
                 {DenseSpec("w", {5, 7}, GetParam().cfg), DenseSpec("b", {3}, GetParam().cfg),
                  SparseSpec("emb", kWidth, GetParam().cfg)},
                 SyncPolicy{SyncMode::kBsp, 0}, GetParam().reduce) {}

  double Reduce(double sum) const {
    return GetParam().reduce == GradReduce::kMean ? sum / kWorkers : sum;
  }

  Cluster cluster_;
};

TEST_P(BspOptimizer, DenseMatchesReferenceOverTwoSteps) {
  const OptimizerConfig& cfg = GetParam().cfg;
  for (uint32_t param : {kDenseW, kDenseB}) {
    const DenseLayout& layout = *cluster_.map().dense_layout(param);
    const std::vector<float> init = cluster_.PullDense(param, 0);
    // One reference unit per chunk: clipping and update counts are per chunk.
    std::vector<RefUnit> ref;
    for (uint64_t c = 0; c < layout.num_chunks(); ++c) {
      const KeyRange r = layout.ChunkRange(c);
      ref.push_back(MakeRef(cfg, std::vector<float>(init.begin() + static_cast<ptrdiff_t>(r.begin),
                                                    init.begin() + static_cast<ptrdiff_t>(r.end))));
    }
    for (int64_t step = 0; step < 2; ++step) {
      std::vector<double> sum(layout.num_elements, 0.0);
      for (int w = 0; w < static_cast<int>(kWorkers); ++w) {
        std::vector<float> g(layout.num_elements);
        for (uint64_t i = 0; i < g.size(); ++i) {
          g[i] = Grad(w, step, i);
          sum[i] += g[i];
        }
        ASSERT_OK(cluster_.PushDense(w, param, step, g));
      }
      std::vector<double> expected;
      for (uint64_t c = 0; c < layout.num_chunks(); ++c) {
        const KeyRange r = layout.ChunkRange(c);
        std::vector<double> g;
        for (uint64_t i = r.begin; i < r.end; ++i) g.push_back(Reduce(sum[i]));
        RefApply(cfg, ref[c], g);
        expected.insert(expected.end(), ref[c].p.begin(), ref[c].p.end());
      }
      ExpectClose(cluster_.PullDense(param, step + 1), expected,
                  "param " + std::to_string(param) + " after step " + std::to_string(step));
    }
  }
}

TEST_P(BspOptimizer, SparseMatchesReferenceWithOverlappingKeys) {
  const OptimizerConfig& cfg = GetParam().cfg;
  // keys[step][worker]; 5 is pushed by all three workers at step 0, 7 by two at step 1;
  // 1 is updated at both steps, so its Adam bias correction uses its own count (2).
  const std::vector<std::vector<std::vector<Key>>> keys = {
      {{1, 5, 9}, {5, 12}, {9, 5, 100}},
      {{1, 7}, {}, {7, 1ULL << 40}},
  };
  const std::vector<Key> probe = {1, 5, 7, 9, 12, 100, 1ULL << 40, 3, 0};
  const std::vector<float> init = cluster_.PullSparse(kEmb, probe, 0);
  std::map<Key, RefUnit> ref;
  for (size_t i = 0; i < probe.size(); ++i) {
    ref[probe[i]] =
        MakeRef(cfg, std::vector<float>(init.begin() + static_cast<ptrdiff_t>(i * kWidth),
                                        init.begin() + static_cast<ptrdiff_t>((i + 1) * kWidth)));
  }
  for (int64_t step = 0; step < 2; ++step) {
    std::map<Key, std::vector<double>> sums;
    for (int w = 0; w < static_cast<int>(kWorkers); ++w) {
      const std::vector<Key>& ks = keys[step][w];
      std::vector<float> g;
      for (Key k : ks) {
        auto& s = sums.try_emplace(k, kWidth, 0.0).first->second;
        for (int64_t j = 0; j < kWidth; ++j) {
          g.push_back(Grad(w, step, (k % 1000) * kWidth + j));
          s[j] += g.back();
        }
      }
      ASSERT_OK(cluster_.PushSparse(w, kEmb, step, ks, g));
    }
    for (auto& [k, s] : sums) {
      for (double& x : s) x = Reduce(x);
      RefApply(cfg, ref[k], s);
    }
    std::vector<double> expected;
    for (Key k : probe) expected.insert(expected.end(), ref[k].p.begin(), ref[k].p.end());
    ExpectClose(cluster_.PullSparse(kEmb, probe, step + 1), expected,
                "rows after step " + std::to_string(step));
  }
  // Only pushed rows exist on the servers; 3 and 0 were only read.
  uint64_t rows = 0;
  for (uint32_t s = 0; s < cluster_.num_servers(); ++s)
    rows += cluster_.core(s).store().num_rows(kEmb);
  EXPECT_EQ(rows, 7u);
  const uint32_t owner1 = ShardMap::SparseServerOf(kEmb, 1, 2);
  ASSERT_TRUE(cluster_.core(owner1).store().row(kEmb, 1).has_value());
  EXPECT_EQ(cluster_.core(owner1).store().row(kEmb, 1)->updates, 2);
}

INSTANTIATE_TEST_SUITE_P(AllOptimizers, BspOptimizer, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace tessera::paramserver::testing
