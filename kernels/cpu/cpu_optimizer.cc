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

namespace {

// One row of each kind: restrict parameters (a row's values and slots never overlap its
// gradient), so the loop vectorises as Optimizer's does.
void SgdRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::SgdStep(s, p[i], g[i]);
}
void MomentumRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g,
                 float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::MomentumStep(s, p[i], g[i], v[i]);
}
void AdaGradRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g,
                float* __restrict acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::AdaGradStep(s, p[i], g[i], acc[i]);
}
template <bool kDecoupled>
void AdamRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g, float* __restrict m,
             float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::AdamStep<kDecoupled>(s, p[i], g[i], m[i], v[i]);
}

}  // namespace

Status OptimizerRows(OptimizerOp op, const math::OptimizerScalars& s, float* const* rows, const float* grad,
                     int64_t width, int64_t nrows, const float* step_size, const float* sqrt_bc2) {
  const bool adam = op == OptimizerOp::kAdam || op == OptimizerOp::kAdamW;
  math::OptimizerScalars sc = s;  // a local copy: no store through a row can alias it
  if (width > kParallelGrain) {
    for (int64_t r = 0; r < nrows; ++r) {
      if (adam) {
        sc.step_size = step_size[r];
        sc.sqrt_bc2 = sqrt_bc2[r];
      }
      float* p = rows[r];
      TESSERA_RETURN_IF_ERROR(Optimizer(op, sc, p, grad + r * width, p + width, p + 2 * width, width));
    }
    return Status::OK();
  }
  switch (op) {
    case OptimizerOp::kSgd:
      for (int64_t r = 0; r < nrows; ++r) SgdRow(sc, rows[r], grad + r * width, width);
      return Status::OK();
    case OptimizerOp::kMomentum:
      for (int64_t r = 0; r < nrows; ++r) MomentumRow(sc, rows[r], grad + r * width, rows[r] + width, width);
      return Status::OK();
    case OptimizerOp::kAdaGrad:
      for (int64_t r = 0; r < nrows; ++r) AdaGradRow(sc, rows[r], grad + r * width, rows[r] + width, width);
      return Status::OK();
    case OptimizerOp::kAdam:
    case OptimizerOp::kAdamW:
      for (int64_t r = 0; r < nrows; ++r) {
        sc.step_size = step_size[r];
        sc.sqrt_bc2 = sqrt_bc2[r];
        float* p = rows[r];
        if (op == OptimizerOp::kAdam) {
          AdamRow<false>(sc, p, grad + r * width, p + width, p + 2 * width, width);
        } else {
          AdamRow<true>(sc, p, grad + r * width, p + width, p + 2 * width, width);
        }
      }
      return Status::OK();
  }
  return Status::Internal("cpu OptimizerRows: unknown op");
}

}  // namespace tessera::kernels::cpu
