// Per-element math of DLRM's pairwise dot interaction (kernels/ops.h PairwiseDot*): one
// definition, called by the CPU loops (kernels/cpu/cpu_interaction.cc) and the CUDA
// kernels (kernels/cuda/interaction.cu), so both backends add in the same order.
//
// Layout: x is [F, D] per example (F feature vectors of width D); the pairs are (i, j)
// with i > j, stored at PairIndex(i, j) = i (i - 1) / 2 + j (the lower triangle without
// the diagonal, row by row: (1,0), (2,0), (2,1), (3,0), ...), as the reference DLRM's
// "dot" interaction orders them.
#pragma once

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

TESSERA_HOST_DEVICE inline int64_t NumPairs(int64_t f) { return f * (f - 1) / 2; }
TESSERA_HOST_DEVICE inline int64_t PairIndex(int64_t i, int64_t j) { return i * (i - 1) / 2 + j; }

// The pair (i, j), i > j, stored at index p (the inverse of PairIndex), by walking rows:
// F is small (27 for Criteo), so the loop is cheaper than a square root and exact.
TESSERA_HOST_DEVICE inline void PairAt(int64_t p, int64_t* i, int64_t* j) {
  int64_t r = 1;
  while (PairIndex(r + 1, 0) <= p) ++r;
  *i = r;
  *j = p - PairIndex(r, 0);
}

// dot(x[i, :], x[j, :]) of one example's x [F, D], added in d order.
TESSERA_HOST_DEVICE inline float PairDot(const float* x, int64_t d, int64_t i, int64_t j) {
  const float* a = x + i * d;
  const float* b = x + j * d;
  float acc = 0.0f;
  for (int64_t k = 0; k < d; ++k) acc += a[k] * b[k];
  return acc;
}

// d loss / d x[i, k] of one example: sum over j != i (in j order) of dz[pair(i, j)] *
// x[j, k], where dz [NumPairs(F)] is d loss / d (its interactions).
TESSERA_HOST_DEVICE inline float PairDotGrad(const float* x, const float* dz, int64_t f, int64_t d,
                                             int64_t i, int64_t k) {
  float acc = 0.0f;
  for (int64_t j = 0; j < f; ++j) {
    if (j == i) continue;
    const int64_t p = i > j ? PairIndex(i, j) : PairIndex(j, i);
    acc += dz[p] * x[j * d + k];
  }
  return acc;
}

}  // namespace tessera::kernels::math
