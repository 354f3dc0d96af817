// CPU loop of the fused optimizer: one pass over param, grad and slots per kind, with
// the kind switched outside the loop so each loop body is a straight line of math/.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/optimizer.h"

namespace tessera::kernels::cpu {

Status Optimizer(OptimizerOp op, const math::OptimizerScalars& s, float* __restrict param,
                 const float* __restrict grad, float* __restrict s0, float* __restrict s1,
                 int64_t n) {
  switch (op) {
    case OptimizerOp::kSgd:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::SgdStep(s, param[i], grad[i]);
      });
      return Status::OK();
    case OptimizerOp::kMomentum:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::MomentumStep(s, param[i], grad[i], s0[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdaGrad:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdaGradStep(s, param[i], grad[i], s0[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdam:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdamStep<false>(s, param[i], grad[i], s0[i], s1[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdamW:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdamStep<true>(s, param[i], grad[i], s0[i], s1[i]);
      });
      return Status::OK();
  }
  return Status::Internal("cpu Optimizer: unknown op");
}

}  // namespace tessera::kernels::cpu
