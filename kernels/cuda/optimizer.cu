// CUDA kernel of the fused optimizer: one thread per element (grid-stride), the kind a
// template parameter, the update itself from kernels/math/optimizer.h. s.grad_scale != 1
// picks the instantiation that reads the gradient through math::ScaledGrad (one
// __fmul_rn, never contracted into the step's FMAs); at 1 the kernel is the plain one.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/math/optimizer.h"

namespace tessera::kernels::gpu {

namespace {

template <OptimizerOp kOp, bool kScaled>
struct OptimizerUpdate {
  math::OptimizerScalars s;
  float* p;
  const float* g;
  float* s0;
  float* s1;
  __device__ void operator()(int64_t i) const {
    float gi = g[i];
    if constexpr (kScaled) gi = math::ScaledGrad(gi, s.grad_scale);
    if constexpr (kOp == OptimizerOp::kSgd) math::SgdStep(s, p[i], gi);
    if constexpr (kOp == OptimizerOp::kMomentum) math::MomentumStep(s, p[i], gi, s0[i]);
    if constexpr (kOp == OptimizerOp::kAdaGrad) math::AdaGradStep(s, p[i], gi, s0[i]);
    if constexpr (kOp == OptimizerOp::kAdam) math::AdamStep<false>(s, p[i], gi, s0[i], s1[i]);
    if constexpr (kOp == OptimizerOp::kAdamW) math::AdamStep<true>(s, p[i], gi, s0[i], s1[i]);
  }
};

template <OptimizerOp kOp>
Status Run(const math::OptimizerScalars& s, float* p, const float* g, float* s0, float* s1,
           int64_t n) {
  if (s.grad_scale != 1.0f) {
    return LaunchElementwise(n, OptimizerUpdate<kOp, true>{s, p, g, s0, s1}, "ApplyOptimizer");
  }
  return LaunchElementwise(n, OptimizerUpdate<kOp, false>{s, p, g, s0, s1}, "ApplyOptimizer");
}

}  // namespace

Status Optimizer(OptimizerOp op, const math::OptimizerScalars& s, float* param,
                 const float* grad, float* s0, float* s1, int64_t n) {
  switch (op) {
    case OptimizerOp::kSgd: return Run<OptimizerOp::kSgd>(s, param, grad, s0, s1, n);
    case OptimizerOp::kMomentum: return Run<OptimizerOp::kMomentum>(s, param, grad, s0, s1, n);
    case OptimizerOp::kAdaGrad: return Run<OptimizerOp::kAdaGrad>(s, param, grad, s0, s1, n);
    case OptimizerOp::kAdam: return Run<OptimizerOp::kAdam>(s, param, grad, s0, s1, n);
    case OptimizerOp::kAdamW: return Run<OptimizerOp::kAdamW>(s, param, grad, s0, s1, n);
  }
  return Status::Internal("cuda Optimizer: unknown op");
}

}  // namespace tessera::kernels::gpu
