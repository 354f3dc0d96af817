// CPU loop of the fused optimizer: one pass over param, grad and slots per kind, with
// the kind switched outside the loop so each loop body is a straight line of math/.
// s.grad_scale != 1 switches (outside the loops too) to loops that read the gradient
// through math::ScaledGrad; at 1 the loops are the plain ones, with no multiply.
#include <algorithm>

#include "common/prefetch.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/optimizer.h"

namespace tessera::kernels::cpu {
namespace {

// The gradient element the step sees.
template <bool kScaled>
inline float G(float g, float scale) {
  if constexpr (kScaled) {
    return math::ScaledGrad(g, scale);
  } else {
    return g;
  }
}

template <bool kScaled>
Status Loops(OptimizerOp op, const math::OptimizerScalars& s, float* __restrict param, const float* __restrict grad,
             float* __restrict s0, float* __restrict s1, int64_t n) {
  const float c = s.grad_scale;
  switch (op) {
    case OptimizerOp::kSgd:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::SgdStep(s, param[i], G<kScaled>(grad[i], c));
      });
      return Status::OK();
    case OptimizerOp::kMomentum:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::MomentumStep(s, param[i], G<kScaled>(grad[i], c), s0[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdaGrad:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdaGradStep(s, param[i], G<kScaled>(grad[i], c), s0[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdam:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdamStep<false>(s, param[i], G<kScaled>(grad[i], c), s0[i], s1[i]);
      });
      return Status::OK();
    case OptimizerOp::kAdamW:
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) math::AdamStep<true>(s, param[i], G<kScaled>(grad[i], c), s0[i], s1[i]);
      });
      return Status::OK();
  }
  return Status::Internal("cpu Optimizer: unknown op");
}

// Loops' one-thread pass again, compiled for AVX2 and taken where the CPU has it. The
// library is built for baseline x86-64 (SSE2: 4 floats a vector), where a server's 4 KiB
// SGD update spent 2.9 k instructions in the loop (docs/benchmarks-transport-server.md).
// The same math/ functions per element; no FMA (the avx2 target has none, and this file
// is built with -ffp-contract=off); IEEE add, multiply, divide and sqrt round each lane
// as a scalar does, so the bits are the baseline loop's at any vector width.
#if defined(__x86_64__) && defined(__GNUC__)
#define TESSERA_AVX2_LOOPS 1
template <bool kScaled>
__attribute__((target("avx2"))) bool LoopsAvx2(OptimizerOp op, const math::OptimizerScalars sc,
                                               float* __restrict param, const float* __restrict grad,
                                               float* __restrict s0, float* __restrict s1, int64_t n) {
  const float c = sc.grad_scale;
  switch (op) {
    case OptimizerOp::kSgd:
      for (int64_t i = 0; i < n; ++i) math::SgdStep(sc, param[i], G<kScaled>(grad[i], c));
      return true;
    case OptimizerOp::kMomentum:
      for (int64_t i = 0; i < n; ++i) math::MomentumStep(sc, param[i], G<kScaled>(grad[i], c), s0[i]);
      return true;
    case OptimizerOp::kAdaGrad:
      for (int64_t i = 0; i < n; ++i) math::AdaGradStep(sc, param[i], G<kScaled>(grad[i], c), s0[i]);
      return true;
    case OptimizerOp::kAdam:
      for (int64_t i = 0; i < n; ++i) math::AdamStep<false>(sc, param[i], G<kScaled>(grad[i], c), s0[i], s1[i]);
      return true;
    case OptimizerOp::kAdamW:
      for (int64_t i = 0; i < n; ++i) math::AdamStep<true>(sc, param[i], G<kScaled>(grad[i], c), s0[i], s1[i]);
      return true;
  }
  return false;
}

bool UseAvx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
}
#endif

// One row of each kind: restrict parameters (a row's values and slots never overlap its
// gradient), so the loop vectorises as Optimizer's does.
template <bool kScaled>
void SgdRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::SgdStep(s, p[i], G<kScaled>(g[i], s.grad_scale));
}
template <bool kScaled>
void MomentumRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g,
                 float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::MomentumStep(s, p[i], G<kScaled>(g[i], s.grad_scale), v[i]);
}
template <bool kScaled>
void AdaGradRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g,
                float* __restrict acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::AdaGradStep(s, p[i], G<kScaled>(g[i], s.grad_scale), acc[i]);
}
template <bool kDecoupled, bool kScaled>
void AdamRow(const math::OptimizerScalars& s, float* __restrict p, const float* __restrict g, float* __restrict m,
             float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) math::AdamStep<kDecoupled>(s, p[i], G<kScaled>(g[i], s.grad_scale), m[i], v[i]);
}

// Rows prefetches row r + kRowsAhead (its values and the kind's slots, into L1) while it
// updates row r. The rows are a sparse push's, scattered over the table: by the time the
// optimizer runs, the push's lookup has left them in L2 or further out (4096 rows of
// 80-byte records are 512 KB next to the push's gradients), and each update waited for
// its row (measured: docs/benchmarks-sparse-step.md).
constexpr int64_t kRowsAhead = 8;
inline void PrefetchRow(const float* row, int64_t span) { PrefetchBytes(row, static_cast<uint64_t>(span) * 4); }

template <bool kScaled>
Status Rows(OptimizerOp op, math::OptimizerScalars sc, float* const* rows, const float* grad, int64_t width,
            int64_t nrows, const float* step_size, const float* sqrt_bc2) {
  // The floats a row's update touches: its values and the kind's slots.
  const int64_t span = width * (op == OptimizerOp::kSgd                                     ? 1
                                : op == OptimizerOp::kMomentum || op == OptimizerOp::kAdaGrad ? 2
                                                                                              : 3);
  for (int64_t r = 0; r < std::min(nrows, kRowsAhead); ++r) PrefetchRow(rows[r], span);
  const auto ahead = [&](int64_t r) __attribute__((always_inline)) {
    if (r + kRowsAhead < nrows) PrefetchRow(rows[r + kRowsAhead], span);
  };
  switch (op) {
    case OptimizerOp::kSgd:
      for (int64_t r = 0; r < nrows; ++r) {
        ahead(r);
        SgdRow<kScaled>(sc, rows[r], grad + r * width, width);
      }
      return Status::OK();
    case OptimizerOp::kMomentum:
      for (int64_t r = 0; r < nrows; ++r) {
        ahead(r);
        MomentumRow<kScaled>(sc, rows[r], grad + r * width, rows[r] + width, width);
      }
      return Status::OK();
    case OptimizerOp::kAdaGrad:
      for (int64_t r = 0; r < nrows; ++r) {
        ahead(r);
        AdaGradRow<kScaled>(sc, rows[r], grad + r * width, rows[r] + width, width);
      }
      return Status::OK();
    case OptimizerOp::kAdam:
    case OptimizerOp::kAdamW:
      for (int64_t r = 0; r < nrows; ++r) {
        ahead(r);
        sc.step_size = step_size[r];
        sc.sqrt_bc2 = sqrt_bc2[r];
        float* p = rows[r];
        if (op == OptimizerOp::kAdam) {
          AdamRow<false, kScaled>(sc, p, grad + r * width, p + width, p + 2 * width, width);
        } else {
          AdamRow<true, kScaled>(sc, p, grad + r * width, p + width, p + 2 * width, width);
        }
      }
      return Status::OK();
  }
  return Status::Internal("cpu OptimizerRows: unknown op");
}

}  // namespace

Status Optimizer(OptimizerOp op, const math::OptimizerScalars& s, float* param, const float* grad, float* s0,
                 float* s1, int64_t n) {
#if TESSERA_AVX2_LOOPS
  if ((n <= kParallelGrain || CpuThreads() <= 1) && UseAvx2()) {
    const bool known = s.grad_scale != 1.0f ? LoopsAvx2<true>(op, s, param, grad, s0, s1, n)
                                            : LoopsAvx2<false>(op, s, param, grad, s0, s1, n);
    return known ? Status::OK() : Status::Internal("cpu Optimizer: unknown op");
  }
#endif
  return s.grad_scale != 1.0f ? Loops<true>(op, s, param, grad, s0, s1, n) : Loops<false>(op, s, param, grad, s0, s1, n);
}

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
  return s.grad_scale != 1.0f ? Rows<true>(op, sc, rows, grad, width, nrows, step_size, sqrt_bc2)
                              : Rows<false>(op, sc, rows, grad, width, nrows, step_size, sqrt_bc2);
}

}  // namespace tessera::kernels::cpu
