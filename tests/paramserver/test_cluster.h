// Test helpers: S ParamServerCores over one shard map, driven like a client would (split
// by the map, one request per server piece), plus a double-precision reference of the
// optimizers written from kernels/ops.h's formulas, independently of the kernels.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "common/cluster/shard_map.h"
#include "paramserver/server_core.h"
#include "tests/testutil/testutil.h"

namespace tessera::paramserver::testing {

inline std::vector<ServerEndpoint> Servers(int n) {
  std::vector<ServerEndpoint> s;
  for (int i = 0; i < n; ++i) s.push_back({i + 1, "inproc://server" + std::to_string(i)});
  return s;
}

inline ParamSpec DenseSpec(std::string name, Shape shape, OptimizerConfig opt = {}) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::kDense;
  p.shape = std::move(shape);
  p.init = InitKind::kUniform;
  p.init_scale = 0.5f;
  p.seed = 1234;
  p.optimizer = opt;
  return p;
}

inline ParamSpec SparseSpec(std::string name, int64_t width, OptimizerConfig opt = {}) {
  ParamSpec p = DenseSpec(std::move(name), {width}, opt);
  p.kind = ParamKind::kSparse;
  return p;
}

// A gradient value that differs per (worker, step, element) and has both signs.
// AdaGrad at lr 0.1: the sparse tables' optimizer in the eviction and pull-slot tests.
inline OptimizerConfig Adagrad() {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdaGrad;
  o.lr = 0.1f;
  return o;
}

inline float Grad(int worker, int64_t step, uint64_t i) {
  const double x =
      std::sin(0.37 * static_cast<double>(i) + 1.3 * worker + 0.71 * static_cast<double>(step));
  return static_cast<float>(x * (1.0 + 0.25 * worker));
}

class Cluster {
 public:
  Cluster(int servers, uint32_t workers, std::vector<ParamSpec> params, SyncPolicy sync = {},
          GradReduce reduce = GradReduce::kMean, uint64_t chunk_bytes = 32, int64_t first_step = 0) {
    ShardMapOptions o;
    o.version = 3;
    o.chunk_bytes = chunk_bytes;
    o.num_workers = workers;
    o.sync = sync;
    o.grad_reduce = reduce;
    auto map = ShardMap::Build(o, Servers(servers), std::move(params));
    EXPECT_OK(map.status());
    map_ = std::make_unique<ShardMap>(std::move(*map));
    for (int s = 0; s < servers; ++s) {
      AggregatorOptions ao;
      ao.first_step = first_step;  // a resumed job's first step (checkpoint tests)
      auto core = ParamServerCore::Create(*map_, static_cast<uint32_t>(s), ao);
      EXPECT_OK(core.status());
      cores_.push_back(std::make_unique<ParamServerCore>(std::move(*core)));
    }
  }

  const ShardMap& map() const { return *map_; }
  ParamServerCore& core(uint32_t s) { return *cores_[s]; }
  uint32_t num_servers() const { return static_cast<uint32_t>(cores_.size()); }

  // Pushes worker w's gradient of the whole dense tensor, one request per piece.
  Status PushDense(int worker, uint32_t param, int64_t step, const std::vector<float>& grad) {
    auto pieces = map_->SplitDense(param, 0, grad.size());
    TESSERA_RETURN_IF_ERROR(pieces.status());
    for (const DensePiece& p : *pieces) {
      ParamRequest r = Request(worker, param, step);
      r.begin = p.begin;
      r.end = p.end;
      TESSERA_RETURN_IF_ERROR(
          core(p.server).Push(r, std::span<const float>(grad).subspan(p.begin, p.end - p.begin)));
    }
    return Status::OK();
  }

  // Pushes worker w's sparse gradient (distinct keys; row i of grad for keys[i]) to
  // every server, the ones owning none of the keys included (bsp needs them).
  Status PushSparse(int worker, uint32_t param, int64_t step, const std::vector<Key>& keys,
                    const std::vector<float>& grad) {
    const uint64_t width = static_cast<uint64_t>(map_->param(param)->numel());
    auto split = map_->SplitSparse(param, keys);
    TESSERA_RETURN_IF_ERROR(split.status());
    for (uint32_t s = 0; s < num_servers(); ++s) {
      std::vector<float> g;
      for (uint64_t pos : split->positions[s]) {
        g.insert(g.end(), grad.begin() + static_cast<ptrdiff_t>(pos * width),
                 grad.begin() + static_cast<ptrdiff_t>((pos + 1) * width));
      }
      ParamRequest r = Request(worker, param, step);
      r.kind = ParamKind::kSparse;
      r.keys = split->keys[s];
      TESSERA_RETURN_IF_ERROR(core(s).Push(r, g));
    }
    return Status::OK();
  }

  // Whole dense tensor; fails the test when a piece is not ready for `step`.
  std::vector<float> PullDense(uint32_t param, int64_t step = kNoStep) {
    const uint64_t n = map_->dense_layout(param)->num_elements;
    std::vector<float> out(n);
    auto pieces = map_->SplitDense(param, 0, n);
    EXPECT_OK(pieces.status());
    for (const DensePiece& p : *pieces) {
      ParamRequest r = Request(0, param, step);
      r.begin = p.begin;
      r.end = p.end;
      auto ready = core(p.server).PullReady(r);
      EXPECT_OK(ready.status());
      EXPECT_TRUE(ready.ok() && *ready) << "piece [" << p.begin << ", " << p.end << ") not ready";
      EXPECT_OK(core(p.server).Pull(r, std::span<float>(out).subspan(p.begin, p.end - p.begin)));
    }
    return out;
  }

  std::vector<float> PullSparse(uint32_t param, const std::vector<Key>& keys,
                                int64_t step = kNoStep) {
    const uint64_t width = static_cast<uint64_t>(map_->param(param)->numel());
    std::vector<float> out(keys.size() * width);
    auto split = map_->SplitSparse(param, keys);
    EXPECT_OK(split.status());
    for (uint32_t s = 0; s < num_servers(); ++s) {
      ParamRequest r = Request(0, param, step);
      r.kind = ParamKind::kSparse;
      r.keys = split->keys[s];
      std::vector<float> part(split->keys[s].size() * width);
      EXPECT_OK(core(s).Pull(r, part));
      for (size_t j = 0; j < split->positions[s].size(); ++j) {
        std::copy(part.begin() + static_cast<ptrdiff_t>(j * width),
                  part.begin() + static_cast<ptrdiff_t>((j + 1) * width),
                  out.begin() + static_cast<ptrdiff_t>(split->positions[s][j] * width));
      }
    }
    return out;
  }

  ParamRequest Request(int worker, uint32_t param, int64_t step) const {
    ParamRequest r;
    r.shard_map_version = map_->version();
    r.worker = worker;
    r.param_id = param;
    r.step = step;
    return r;
  }

 private:
  std::unique_ptr<ShardMap> map_;
  std::vector<std::unique_ptr<ParamServerCore>> cores_;
};

// ---- Reference optimizer, double precision ---------------------------------------------

struct RefUnit {
  std::vector<double> p;
  std::vector<double> s0, s1;  // momentum v | AdaGrad acc | Adam m ; Adam v
  int64_t updates = 0;
};

inline RefUnit MakeRef(const OptimizerConfig& cfg, const std::vector<float>& init) {
  RefUnit u;
  u.p.assign(init.begin(), init.end());
  const double s0 = cfg.kind == OptimizerKind::kAdaGrad ? cfg.initial_accumulator : 0.0;
  u.s0.assign(init.size(), s0);
  u.s1.assign(init.size(), 0.0);
  return u;
}

// One update with gradient g (already reduced), clipping first when cfg.clip_norm > 0.
inline void RefApply(const OptimizerConfig& cfg, RefUnit& u, std::vector<double> g) {
  if (cfg.clip_norm > 0) {
    double sq = 0;
    for (double x : g) sq += x * x;
    const double norm = std::sqrt(sq);
    if (norm > cfg.clip_norm) {
      for (double& x : g) x *= cfg.clip_norm / norm;
    }
  }
  const int64_t t = ++u.updates;
  const double lr = cfg.lr, wd = cfg.weight_decay, mu = cfg.momentum;
  const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
  for (size_t i = 0; i < u.p.size(); ++i) {
    double& p = u.p[i];
    double gi = g[i];
    if (cfg.kind != OptimizerKind::kAdamW) gi += wd * p;
    switch (cfg.kind) {
      case OptimizerKind::kSgd:
        p -= lr * gi;
        break;
      case OptimizerKind::kMomentum:
        u.s0[i] = mu * u.s0[i] + gi;
        p -= lr * (cfg.nesterov ? gi + mu * u.s0[i] : u.s0[i]);
        break;
      case OptimizerKind::kAdaGrad:
        u.s0[i] += gi * gi;
        p -= lr * gi / (std::sqrt(u.s0[i]) + eps);
        break;
      case OptimizerKind::kAdam:
      case OptimizerKind::kAdamW: {
        u.s0[i] = b1 * u.s0[i] + (1 - b1) * gi;
        u.s1[i] = b2 * u.s1[i] + (1 - b2) * gi * gi;
        const double mhat = u.s0[i] / (1 - std::pow(b1, static_cast<double>(t)));
        const double vhat = u.s1[i] / (1 - std::pow(b2, static_cast<double>(t)));
        const double update = lr * mhat / (std::sqrt(vhat) + eps);
        p = p - (cfg.kind == OptimizerKind::kAdamW ? lr * wd * p : 0.0) - update;
        break;
      }
    }
  }
}

// |actual - expected| within f32 rounding of a few operations.
inline void ExpectClose(const std::vector<float>& actual, const std::vector<double>& expected,
                        const std::string& what, double tol = 2e-5) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tol * std::max(1.0, std::abs(expected[i])))
        << what << ": mismatch at index " << i;
  }
}

}  // namespace tessera::paramserver::testing
