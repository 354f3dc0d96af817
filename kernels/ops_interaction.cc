// DLRM's pairwise dot interaction: validation, then the backend table.
#include <string>

#include "kernels/dispatch.h"
#include "kernels/math/interaction.h"
#include "kernels/ops.h"
#include "kernels/validate.h"

namespace tessera::kernels {

using internal::BackendFor;
using internal::CheckRank;
using internal::CheckSameDevice;
using internal::CheckView;
using internal::Describe;
using internal::Invalid;

namespace {

// x f32 [B, F, D] with F >= 2, and `pairs_name` f32 [B, F (F - 1) / 2].
Status CheckInteraction(std::string_view op, const TensorView& x, const TensorView& pairs,
                        std::string_view pairs_name) {
  TESSERA_RETURN_IF_ERROR(CheckView(op, "x", x, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckRank(op, "x", x, 3));
  TESSERA_RETURN_IF_ERROR(CheckView(op, pairs_name, pairs, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckRank(op, pairs_name, pairs, 2));
  if (x.shape[1] < 2) return Invalid(op, "x " + Describe(x) + " needs at least 2 feature vectors");
  const int64_t want = math::NumPairs(x.shape[1]);
  if (pairs.shape[0] != x.shape[0] || pairs.shape[1] != want) {
    return Invalid(op, std::string(pairs_name) + " must be [" + std::to_string(x.shape[0]) + ", " +
                           std::to_string(want) + "] for x " + Describe(x) + ", got " +
                           Describe(pairs));
  }
  return Status::OK();
}

bool Overlap(const TensorView& a, const TensorView& b) {
  const char* a0 = static_cast<const char*>(a.data);
  const char* b0 = static_cast<const char*>(b.data);
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

}  // namespace

Status PairwiseDot(TensorView x, TensorView out) {
  constexpr std::string_view kOp = "PairwiseDot";
  TESSERA_RETURN_IF_ERROR(CheckInteraction(kOp, x, out, "out"));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&x, &out}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const internal::Backend* be, BackendFor(dev));
  if (out.numel() == 0) return Status::OK();
  if (Overlap(x, out)) return Invalid(kOp, "out must not overlap x");
  return be->pairwise_dot(x.as<float>(), x.shape[0], x.shape[1], x.shape[2], out.as<float>());
}

Status PairwiseDotBackward(TensorView x, TensorView dout, TensorView dx) {
  constexpr std::string_view kOp = "PairwiseDotBackward";
  TESSERA_RETURN_IF_ERROR(CheckInteraction(kOp, x, dout, "dout"));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dx", dx, {DType::kF32}));
  if (dx.shape != x.shape) {
    return Invalid(kOp, "dx " + Describe(dx) + " must have x's shape " + Describe(x));
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&x, &dout, &dx}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const internal::Backend* be, BackendFor(dev));
  if (dx.numel() == 0) return Status::OK();
  if (Overlap(dx, x) || Overlap(dx, dout)) return Invalid(kOp, "dx must not overlap x or dout");
  return be->pairwise_dot_backward(x.as<float>(), dout.as<float>(), x.shape[0], x.shape[1],
                                   x.shape[2], dx.as<float>());
}

}  // namespace tessera::kernels
