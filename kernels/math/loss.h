// Per-element and per-row math of the fused losses. Everything a backend needs beyond
// loops and reductions lives here, so both backends compute the same expressions.
#pragma once

#include <cmath>

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

// Sigmoid binary cross-entropy for one logit x with target y, stable for any x:
// loss = max(x, 0) - x y + log(1 + exp(-|x|)).
TESSERA_HOST_DEVICE inline float SigmoidBceLoss(float x, float y) {
  return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
}

// sigmoid(x) without overflow for large |x|.
TESSERA_HOST_DEVICE inline float Sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

// d(mean loss)/dx for one element: (sigmoid(x) - y) / n, with inv_n = 1/n.
TESSERA_HOST_DEVICE inline float SigmoidBceGrad(float x, float y, float inv_n) {
  return (Sigmoid(x) - y) * inv_n;
}

// Softmax cross-entropy of one row, in three steps a backend maps onto its loop or its
// warp: (1) row_max = max_c x_c; (2) sum_exp = sum_c SoftmaxExp(x_c, row_max);
// (3) loss = SoftmaxXentRowLoss(x_label, row_max, sum_exp) and, per element,
// dx_c = SoftmaxXentGrad(x_c, row_max, inv_sum_exp, c == label, inv_n).
TESSERA_HOST_DEVICE inline float SoftmaxExp(float x, float row_max) { return expf(x - row_max); }

TESSERA_HOST_DEVICE inline float SoftmaxXentRowLoss(float x_label, float row_max, float sum_exp) {
  return logf(sum_exp) - (x_label - row_max);
}

TESSERA_HOST_DEVICE inline float SoftmaxXentGrad(float x, float row_max, float inv_sum_exp,
                                                 bool is_label, float inv_n) {
  const float p = expf(x - row_max) * inv_sum_exp;
  return (p - (is_label ? 1.0f : 0.0f)) * inv_n;
}

}  // namespace tessera::kernels::math
