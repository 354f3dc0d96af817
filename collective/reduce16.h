// Host loops of the 16-bit reduction path: widen 16-bit values into f32 sums and round
// f32 back to 16 bits (kernels/math/cast.h's per-element rules, so CPU and CUDA agree).
//
// Thread safety: pure functions over caller-owned memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace tessera::collective {

// acc[i] += widen(src[i]), src in `d` (kF16 or kBF16).
void Accumulate16(const uint16_t* src, DType d, float* acc, size_t n);
// acc[i] = widen(src[i]).
void Widen16(const uint16_t* src, DType d, float* acc, size_t n);
// dst[i] = round(src[i] * scale) to `d`.
void Narrow16(const float* src, float scale, DType d, uint16_t* dst, size_t n);

}  // namespace tessera::collective
