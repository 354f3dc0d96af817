// The "optimizers" scenario, shared by the peer (which pushes it) and the test (which
// computes its expected outcome independently, in double precision).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"

namespace tessera::testps {

inline constexpr float kDenseInit = 0.5f;
inline constexpr float kSparseInit = 0.25f;
inline constexpr int64_t kDenseSize = 1000;  // 4000 bytes: 4 chunks of 1024 B over the servers
inline constexpr int64_t kRowWidth = 3;

inline OptimizerConfig Config(OptimizerKind k) {
  OptimizerConfig c;
  c.kind = k;
  c.lr = 0.1f;
  c.momentum = 0.9f;
  c.nesterov = k == OptimizerKind::kMomentum;
  c.weight_decay = (k == OptimizerKind::kSgd || k == OptimizerKind::kAdaGrad) ? 0.0f : 0.01f;
  c.initial_accumulator = 0.1f;
  c.eps = 1e-8f;
  return c;
}

inline std::vector<ParamSpec> ScenarioParams() {
  const OptimizerKind kinds[] = {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kAdaGrad,
                                 OptimizerKind::kAdam, OptimizerKind::kAdamW};
  const char* names[] = {"sgd", "momentum", "adagrad", "adam", "adamw"};
  std::vector<ParamSpec> v;
  for (int i = 0; i < 5; ++i) {
    ParamSpec d;
    d.name = std::string("dense_") + names[i];
    d.shape = {kDenseSize};
    d.init = InitKind::kConstant;
    d.init_scale = kDenseInit;
    d.optimizer = Config(kinds[i]);
    v.push_back(d);
    ParamSpec s = d;
    s.name = std::string("sparse_") + names[i];
    s.kind = ParamKind::kSparse;
    s.shape = {kRowWidth};
    s.init_scale = kSparseInit;
    v.push_back(s);
  }
  return v;
}

inline double DenseGrad(int w, int s, int64_t i) { return std::sin(0.1 * static_cast<double>(i) + w + 0.7 * s); }
inline double SparseGrad(int w, int s, int j, int64_t c) { return std::cos(j + 0.3 * static_cast<double>(c) + w + 0.5 * s); }

// Overlapping across workers, with a duplicate within each push (key 1 twice).
inline std::vector<Key> WorkerKeys(int w) {
  return {1, static_cast<Key>(2 + w), 1, static_cast<Key>(1000 + 2 * w), 77777, static_cast<Key>(5 + w % 2)};
}
// Includes keys nobody pushed (999, 123456789) and a duplicate (1).
inline std::vector<Key> PullKeys() { return {1, 2, 3, 4, 5, 6, 1000, 1002, 1004, 77777, 999, 123456789, 1}; }

}  // namespace tessera::testps
