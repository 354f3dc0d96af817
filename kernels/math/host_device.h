// TESSERA_HOST_DEVICE: marks the per-element math in kernels/math/ so that the same
// inline function compiles for the host (g++, CPU backend) and for the device (nvcc,
// CUDA backend). This is the only place either backend gets its arithmetic from.
//
// Rules for code under kernels/math/: header-only, no allocation, no exceptions, no
// std:: containers or I/O, only <cmath>-style functions that exist on both sides
// (sqrtf, expf, tanhf, log1pf, fabsf, fmaxf) and plain scalar types.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif

namespace tessera::kernels::math {

// Bit casts usable on both sides (std::bit_cast is not a device function).
TESSERA_HOST_DEVICE inline uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

TESSERA_HOST_DEVICE inline float BitsToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

}  // namespace tessera::kernels::math
