// The "stress" scenario, shared by the peer (which pushes it) and the load test (which
// computes the exact expected parameters on its own).
//
// Every gradient value is a small integer, the optimizer is SGD with lr = 1 and the
// servers sum (--grad_reduce=sum), so every partial sum is an integer below 2^24 and
// float addition is exact in any order: the final parameter must equal minus the sum
// of all pushes bit for bit, whatever the interleaving. A single lost, duplicated or
// half-applied push changes the result.
#pragma once

#include <cstdint>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"

namespace tessera::testps {

inline constexpr int64_t kStressDense = 4096;  // 16 KiB: several chunks per server
inline constexpr int64_t kStressRowWidth = 4;

inline std::vector<ParamSpec> StressParams() {
  ParamSpec d;
  d.name = "dense";
  d.shape = {kStressDense};
  d.init = InitKind::kConstant;
  d.init_scale = 0;
  d.optimizer.kind = OptimizerKind::kSgd;
  d.optimizer.lr = 1;
  ParamSpec s = d;
  s.name = "sparse";
  s.kind = ParamKind::kSparse;
  s.shape = {kStressRowWidth};
  return {d, s};
}

// Gradient element i of worker w (the same every step).
inline float StressDenseGrad(int w, int64_t i) { return static_cast<float>((w + 1) * (1 + i % 4)); }
// Keys of worker w's sparse push: overlapping between workers, key 7 twice in each push.
inline std::vector<Key> StressKeys(int w) {
  return {7, static_cast<Key>(100 + w), static_cast<Key>(200 + w % 3), 7, Key{1} << 40};
}
inline float StressRowGrad(int w, int64_t c) { return static_cast<float>(w + 1 + c); }
// Pulled at the end: every pushed key plus one nobody pushed (999).
inline std::vector<Key> StressPullKeys(int workers) {
  std::vector<Key> k = {7, 200, 201, 202, Key{1} << 40, 999};
  for (int w = 0; w < workers; ++w) k.push_back(static_cast<Key>(100 + w));
  return k;
}

}  // namespace tessera::testps
