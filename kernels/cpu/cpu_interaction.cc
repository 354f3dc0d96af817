// CPU loops of the pairwise dot interaction: examples split over threads, each element
// from kernels/math/interaction.h.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/interaction.h"

namespace tessera::kernels::cpu {

Status PairwiseDot(const float* x, int64_t b, int64_t f, int64_t d, float* out) {
  const int64_t pairs = math::NumPairs(f);
  ParallelFor(
      b,
      [=](int64_t lo, int64_t hi) {
        for (int64_t e = lo; e < hi; ++e) {
          const float* xe = x + e * f * d;
          float* oe = out + e * pairs;
          for (int64_t i = 1; i < f; ++i) {
            for (int64_t j = 0; j < i; ++j) oe[math::PairIndex(i, j)] = math::PairDot(xe, d, i, j);
          }
        }
      },
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(pairs * d, 1)));
  return Status::OK();
}

Status PairwiseDotBackward(const float* x, const float* dout, int64_t b, int64_t f, int64_t d,
                           float* dx) {
  const int64_t pairs = math::NumPairs(f);
  ParallelFor(
      b,
      [=](int64_t lo, int64_t hi) {
        for (int64_t e = lo; e < hi; ++e) {
          const float* xe = x + e * f * d;
          const float* dz = dout + e * pairs;
          float* dxe = dx + e * f * d;
          for (int64_t i = 0; i < f; ++i) {
            for (int64_t k = 0; k < d; ++k) dxe[i * d + k] = math::PairDotGrad(xe, dz, f, d, i, k);
          }
        }
      },
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(f * f * d, 1)));
  return Status::OK();
}

}  // namespace tessera::kernels::cpu
