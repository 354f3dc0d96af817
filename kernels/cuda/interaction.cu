// CUDA kernels of the pairwise dot interaction: one thread per output element, each
// evaluating the same per-element function as the CPU loop (kernels/math/interaction.h).
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/math/interaction.h"

namespace tessera::kernels::gpu {

namespace {

struct PairwiseDotOp {
  const float* x;
  int64_t f, d, pairs;
  float* out;
  __device__ void operator()(int64_t e) const {
    const int64_t b = e / pairs;
    int64_t i, j;
    math::PairAt(e - b * pairs, &i, &j);
    out[e] = math::PairDot(x + b * f * d, d, i, j);
  }
};

struct PairwiseDotGradOp {
  const float* x;
  const float* dout;
  int64_t f, d, pairs;
  float* dx;
  __device__ void operator()(int64_t e) const {
    const int64_t per = f * d;
    const int64_t b = e / per;
    const int64_t r = e - b * per;
    const int64_t i = r / d;
    dx[e] = math::PairDotGrad(x + b * per, dout + b * pairs, f, d, i, r - i * d);
  }
};

}  // namespace

Status PairwiseDot(const float* x, int64_t b, int64_t f, int64_t d, float* out) {
  const int64_t pairs = math::NumPairs(f);
  return LaunchElementwise(b * pairs, PairwiseDotOp{x, f, d, pairs, out}, "PairwiseDot");
}

Status PairwiseDotBackward(const float* x, const float* dout, int64_t b, int64_t f, int64_t d,
                           float* dx) {
  const int64_t pairs = math::NumPairs(f);
  return LaunchElementwise(b * f * d, PairwiseDotGradOp{x, dout, f, d, pairs, dx},
                           "PairwiseDotBackward");
}

}  // namespace tessera::kernels::gpu
