#include "collective/reduce16.h"

#include "kernels/math/cast.h"

namespace tessera::collective {

namespace m = kernels::math;

void Accumulate16(const uint16_t* src, DType d, float* acc, size_t n) {
  if (d == DType::kF16) {
    for (size_t i = 0; i < n; ++i) acc[i] += m::F16ToF32(src[i]);
  } else {
    for (size_t i = 0; i < n; ++i) acc[i] += m::BF16ToF32(src[i]);
  }
}

void Widen16(const uint16_t* src, DType d, float* acc, size_t n) {
  if (d == DType::kF16) {
    for (size_t i = 0; i < n; ++i) acc[i] = m::F16ToF32(src[i]);
  } else {
    for (size_t i = 0; i < n; ++i) acc[i] = m::BF16ToF32(src[i]);
  }
}

void Narrow16(const float* src, float scale, DType d, uint16_t* dst, size_t n) {
  if (d == DType::kF16) {
    for (size_t i = 0; i < n; ++i) dst[i] = m::F32ToF16(src[i] * scale);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = m::F32ToBF16(src[i] * scale);
  }
}

}  // namespace tessera::collective
