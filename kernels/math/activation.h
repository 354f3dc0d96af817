// Per-element math of the fused bias + activation ops. GELU is the tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (as in BERT/GPT-2), not the erf form.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/math/host_device.h"

namespace tessera::kernels::math {

// Mirrors kernels::Activation (ops.h); kept separate so this header has no host types.
enum class Act : uint8_t { kIdentity = 0, kRelu = 1, kGelu = 2 };

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kGeluCubic = 0.044715f;

TESSERA_HOST_DEVICE inline float Gelu(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}

// d/dx of Gelu: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u).
TESSERA_HOST_DEVICE inline float GeluGrad(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  const float t = tanhf(u);
  return 0.5f * (1.0f + t) +
         0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
}

template <Act A>
TESSERA_HOST_DEVICE inline float Activate(float pre) {
  if constexpr (A == Act::kRelu) return pre > 0.0f ? pre : 0.0f;
  if constexpr (A == Act::kGelu) return Gelu(pre);
  return pre;
}

// dL/dpre given dL/dy and the pre-activation. ReLU'(0) = 0.
template <Act A>
TESSERA_HOST_DEVICE inline float ActivateBackward(float dy, float pre) {
  if constexpr (A == Act::kRelu) return pre > 0.0f ? dy : 0.0f;
  if constexpr (A == Act::kGelu) return dy * GeluGrad(pre);
  return dy;
}

}  // namespace tessera::kernels::math
