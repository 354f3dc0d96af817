// CPU loops of the fused bias + activation ops and the losses. Rows are independent and
// split over threads; every reduction that produces a returned value accumulates in
// double in a fixed order.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/activation.h"
#include "kernels/math/loss.h"

namespace tessera::kernels::cpu {

namespace {

// rows-per-block so that a block has ~kParallelGrain elements.
int64_t RowGrain(int64_t cols) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1));
}

template <math::Act A>
void BiasActForwardT(const float* x, const float* bias, float* y, int64_t rows, int64_t cols) {
  ParallelFor(
      rows,
      [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
          const float* xr = x + r * cols;
          float* yr = y + r * cols;
          if (bias != nullptr) {
            for (int64_t c = 0; c < cols; ++c) yr[c] = math::Activate<A>(xr[c] + bias[c]);
          } else {
            for (int64_t c = 0; c < cols; ++c) yr[c] = math::Activate<A>(xr[c]);
          }
        }
      },
      RowGrain(cols));
}

template <math::Act A>
void BiasActBackwardT(const float* dy, const float* x, const float* bias, float* dpre,
                      float* dbias, int64_t rows, int64_t cols) {
  ParallelFor(
      rows,
      [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
          const float* xr = x + r * cols;
          const float* dyr = dy + r * cols;
          float* dr = dpre + r * cols;
          for (int64_t c = 0; c < cols; ++c) {
            const float pre = bias != nullptr ? xr[c] + bias[c] : xr[c];
            dr[c] = math::ActivateBackward<A>(dyr[c], pre);
          }
        }
      },
      RowGrain(cols));
  if (dbias == nullptr) return;
  // Column sums in double, rows in order: deterministic, and contiguous in the inner loop.
  std::vector<double> acc(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* dr = dpre + r * cols;
    for (int64_t c = 0; c < cols; ++c) acc[c] += dr[c];
  }
  for (int64_t c = 0; c < cols; ++c) dbias[c] = static_cast<float>(acc[c]);
}

template <typename Index>
bool AllInRange(const Index* idx, int64_t n, int64_t limit) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_signed_v<Index>) {
      ok &= idx[i] >= 0 && static_cast<int64_t>(idx[i]) < limit;
    } else {
      ok &= idx[i] < static_cast<uint64_t>(limit);
    }
  }
  return ok;
}

int32_t RowArgMax(const float* row, int64_t c) {
  int64_t best = 0;
  for (int64_t j = 1; j < c; ++j) {
    if (row[j] > row[best]) best = j;
  }
  return static_cast<int32_t>(best);
}

}  // namespace

Status BiasActForward(math::Act act, const float* x, const float* bias, float* y, int64_t rows,
                      int64_t cols) {
  switch (act) {
    case math::Act::kIdentity: BiasActForwardT<math::Act::kIdentity>(x, bias, y, rows, cols); break;
    case math::Act::kRelu: BiasActForwardT<math::Act::kRelu>(x, bias, y, rows, cols); break;
    case math::Act::kGelu: BiasActForwardT<math::Act::kGelu>(x, bias, y, rows, cols); break;
  }
  return Status::OK();
}

Status BiasActBackward(math::Act act, const float* dy, const float* x, const float* bias,
                       float* dpre, float* dbias, int64_t rows, int64_t cols) {
  switch (act) {
    case math::Act::kIdentity:
      BiasActBackwardT<math::Act::kIdentity>(dy, x, bias, dpre, dbias, rows, cols);
      break;
    case math::Act::kRelu:
      BiasActBackwardT<math::Act::kRelu>(dy, x, bias, dpre, dbias, rows, cols);
      break;
    case math::Act::kGelu:
      BiasActBackwardT<math::Act::kGelu>(dy, x, bias, dpre, dbias, rows, cols);
      break;
  }
  return Status::OK();
}

Status IndicesInRange(const void* idx, DType idx_dtype, int64_t n, int64_t limit, bool* ok) {
  switch (idx_dtype) {
    case DType::kI32: *ok = AllInRange(static_cast<const int32_t*>(idx), n, limit); break;
    case DType::kI64: *ok = AllInRange(static_cast<const int64_t*>(idx), n, limit); break;
    case DType::kU64: *ok = AllInRange(static_cast<const uint64_t*>(idx), n, limit); break;
    default: return Status::Internal("cpu IndicesInRange: unsupported index dtype");
  }
  return Status::OK();
}

Status SoftmaxXent(const float* logits, const int32_t* labels, float* dlogits, int64_t n,
                   int64_t c, double* loss) {
  const float inv_n = static_cast<float>(1.0 / static_cast<double>(n));
  std::vector<double> row_loss(static_cast<size_t>(n));
  ParallelFor(
      n,
      [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
          const float* x = logits + r * c;
          float row_max = x[0];
          for (int64_t j = 1; j < c; ++j) row_max = std::fmax(row_max, x[j]);
          double sum_exp = 0;
          for (int64_t j = 0; j < c; ++j) sum_exp += math::SoftmaxExp(x[j], row_max);
          const int32_t label = labels[r];
          row_loss[r] = math::SoftmaxXentRowLoss(x[label], row_max, static_cast<float>(sum_exp));
          if (dlogits != nullptr) {  // may alias logits: x[label] and row_max already read
            const float inv_sum = static_cast<float>(1.0 / sum_exp);
            float* d = dlogits + r * c;
            for (int64_t j = 0; j < c; ++j) {
              d[j] = math::SoftmaxXentGrad(x[j], row_max, inv_sum, j == label, inv_n);
            }
          }
        }
      },
      RowGrain(c));
  double total = 0;
  for (double l : row_loss) total += l;
  *loss = total / static_cast<double>(n);
  return Status::OK();
}

Status ArgMax(const float* logits, int64_t n, int64_t c, int32_t* out) {
  ParallelFor(
      n,
      [=](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) out[r] = RowArgMax(logits + r * c, c);
      },
      RowGrain(c));
  return Status::OK();
}

Status CountCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                    int64_t* count) {
  int64_t k = 0;
  for (int64_t r = 0; r < n; ++r) k += RowArgMax(logits + r * c, c) == labels[r] ? 1 : 0;
  *count = k;
  return Status::OK();
}

Status SigmoidBce(const float* logits, const float* labels, float* dlogits, int64_t n,
                  double* loss) {
  const float inv_n = static_cast<float>(1.0 / static_cast<double>(n));
  // Loss first (reads logits), then the gradient, so dlogits may alias logits.
  const double total = ReduceSum(n, [=](int64_t i) {
    return static_cast<double>(math::SigmoidBceLoss(logits[i], labels[i]));
  });
  if (dlogits != nullptr) {
    ParallelFor(n, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dlogits[i] = math::SigmoidBceGrad(logits[i], labels[i], inv_n);
    });
  }
  *loss = total / static_cast<double>(n);
  return Status::OK();
}

}  // namespace tessera::kernels::cpu
