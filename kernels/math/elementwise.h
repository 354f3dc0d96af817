// Per-element math of the BLAS-1 helpers (Axpy, Scale, Add) and of the reductions'
// per-element terms. One definition, used by kernels/cpu/ and kernels/cuda/.
#pragma once

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

TESSERA_HOST_DEVICE inline float Axpy(float a, float x, float y) { return y + a * x; }
TESSERA_HOST_DEVICE inline float Scale(float alpha, float x) { return alpha * x; }
TESSERA_HOST_DEVICE inline float Add(float a, float b) { return a + b; }
TESSERA_HOST_DEVICE inline double SquareTerm(float x) {
  const double d = x;
  return d * d;
}

}  // namespace tessera::kernels::math
