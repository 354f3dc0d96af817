// Per-element math of the fused optimizer updates (the single definition both backends
// run). The host precomputes everything that depends only on the config and the step
// (bias corrections, 1 - beta) in double and passes it in OptimizerScalars, so the
// per-element work is a handful of float operations.
//
// Weight decay: added to the gradient (L2) for SGD, momentum, AdaGrad and Adam;
// decoupled (p -= lr * wd * p, with p before the update) for AdamW.
//
// grad_scale (the servers' 1/W of grad_reduce=mean): the loops pass ScaledGrad(g) as
// the step's gradient instead of scaling a copy of the gradient first. It must give the
// copy's bits: the product is rounded to float on its own, never fused into an FMA with
// the step's next operation (see ScaledGrad).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

struct OptimizerScalars {
  float lr = 0;
  float weight_decay = 0;
  float momentum = 0;
  bool nesterov = false;
  float beta1 = 0, beta2 = 0;
  float one_minus_beta1 = 0, one_minus_beta2 = 0;
  float eps = 0;
  float step_size = 0;   // Adam: lr / (1 - beta1^step)
  float sqrt_bc2 = 0;    // Adam: sqrt(1 - beta2^step)
  float grad_scale = 1;  // 1: the loops read the gradient as it is (no multiply at all)
};

// scale * g rounded once, as kernels::Scale (math::Scale) over a copy rounds it. nvcc
// contracts a * b + c across statements into an FMA by default (--fmad=true), which
// would skip this rounding; __fmul_rn is never contracted. The CPU backend's optimizer
// is compiled with -ffp-contract=off (kernels/CMakeLists.txt) for the same reason.
TESSERA_HOST_DEVICE inline float ScaledGrad(float g, float scale) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(scale, g);
#else
  return scale * g;
#endif
}

TESSERA_HOST_DEVICE inline void SgdStep(const OptimizerScalars& s, float& p, float g) {
  g += s.weight_decay * p;
  p -= s.lr * g;
}

TESSERA_HOST_DEVICE inline void MomentumStep(const OptimizerScalars& s, float& p, float g,
                                             float& v) {
  g += s.weight_decay * p;
  v = s.momentum * v + g;
  p -= s.lr * (s.nesterov ? g + s.momentum * v : v);
}

TESSERA_HOST_DEVICE inline void AdaGradStep(const OptimizerScalars& s, float& p, float g,
                                            float& acc) {
  g += s.weight_decay * p;
  acc += g * g;
  p -= s.lr * g / (sqrtf(acc) + s.eps);
}

// decoupled == false: Adam with L2; true: AdamW.
template <bool kDecoupled>
TESSERA_HOST_DEVICE inline void AdamStep(const OptimizerScalars& s, float& p, float g, float& m,
                                         float& v) {
  if constexpr (!kDecoupled) g += s.weight_decay * p;
  m = s.beta1 * m + s.one_minus_beta1 * g;
  v = s.beta2 * v + s.one_minus_beta2 * g * g;
  const float update = s.step_size * m / (sqrtf(v) / s.sqrt_bc2 + s.eps);
  if constexpr (kDecoupled) {
    p = p - s.lr * s.weight_decay * p - update;
  } else {
    p -= update;
  }
}

}  // namespace tessera::kernels::math
