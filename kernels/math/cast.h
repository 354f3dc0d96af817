// Per-element conversions between f32 and the 16-bit formats used to compress gradients.
// Pure integer bit manipulation (no hardware conversion instructions), so the CPU and
// CUDA backends produce bit-identical results.
//
// Narrowing rounds to nearest, ties to even. NaN stays a quiet NaN with its sign; +-Inf
// stays +-Inf; f32 values at or beyond the f16 overflow threshold (65520) become +-Inf;
// f16 subnormals are produced (gradual underflow) and widened exactly.
#pragma once

#include <cstdint>

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

TESSERA_HOST_DEVICE inline uint16_t F32ToBF16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep sign and top payload, force quiet
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // RNE; carries into the exponent, Inf stays Inf
  return static_cast<uint16_t>(u >> 16);
}

TESSERA_HOST_DEVICE inline float BF16ToF32(uint16_t h) {
  return BitsToFloat(static_cast<uint32_t>(h) << 16);
}

TESSERA_HOST_DEVICE inline uint16_t F32ToF16(float f) {
  const uint32_t x_signed = FloatBits(f);
  const uint32_t sign = (x_signed >> 16) & 0x8000u;
  const uint32_t x = x_signed & 0x7fffffffu;
  if (x > 0x7f800000u) {  // NaN: quiet bit set, top payload bits kept
    return static_cast<uint16_t>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  }
  if (x >= 0x477ff000u) {  // >= 65520 (halfway above the max 65504, ties to even: Inf) or Inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (x < 0x38800000u) {  // below 2^-14: f16 subnormal or zero
    const uint32_t e = x >> 23;
    const uint32_t shift = 126u - e;  // value in units of 2^-24 is m >> shift
    if (shift > 24u) return static_cast<uint16_t>(sign);
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // may reach 0x400: smallest normal
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (x - 0x38000000u) >> 13;  // rebias exponent 127 -> 15, drop 13 mantissa bits
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

TESSERA_HOST_DEVICE inline float F16ToF32(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) return BitsToFloat(sign | 0x7f800000u | (m << 13));  // Inf / NaN
  if (e == 0) {
    if (m == 0) return BitsToFloat(sign);
    e = 113;  // normalise the subnormal: shift until the implicit bit appears
    while ((m & 0x400u) == 0) {
      m <<= 1;
      --e;
    }
    return BitsToFloat(sign | (e << 23) | ((m & 0x3ffu) << 13));
  }
  return BitsToFloat(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace tessera::kernels::math
