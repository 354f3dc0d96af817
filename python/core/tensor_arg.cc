#include "python/core/tensor_arg.h"

namespace tessera::python {

namespace {

ArgCheck Problem(ArgProblem p, std::string message) { return {p, std::move(message)}; }

std::string ShapeText(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Everything but the dtype.
ArgCheck CheckLayout(const TensorArg& t, const std::string& what) {
  if (t.device != "cpu") {
    return Problem(ArgProblem::kValue, what + " is on device " + t.device + ": Tessera takes CPU tensors (.cpu())");
  }
  if (t.strides.size() != t.shape.size()) {
    return Problem(ArgProblem::kValue, what + ": " + std::to_string(t.strides.size()) + " strides for " +
                                           std::to_string(t.shape.size()) + " dimensions");
  }
  int64_t expect = 1;
  int64_t numel = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] < 0) return Problem(ArgProblem::kValue, what + " has a negative size in " + ShapeText(t.shape));
    if (t.shape[i] != 1 && t.strides[i] != expect) {
      return Problem(ArgProblem::kValue, what + " is not contiguous (shape " + ShapeText(t.shape) + ", strides " +
                                             ShapeText(t.strides) + "): call .contiguous() first");
    }
    expect *= t.shape[i];
    numel *= t.shape[i];
  }
  if (numel > 0 && t.address == 0) return Problem(ArgProblem::kValue, what + " has no storage (null data pointer)");
  return {};
}

}  // namespace

ArgCheck CheckF32(const TensorArg& t, const std::string& what, int64_t expect_numel, TensorView* view) {
  if (t.dtype != "torch.float32") {
    return Problem(ArgProblem::kType, what + " has dtype " + t.dtype + ": Tessera takes torch.float32");
  }
  if (ArgCheck c = CheckLayout(t, what); !c.ok()) return c;
  const int64_t numel = NumElements(t.shape);
  if (expect_numel >= 0 && numel != expect_numel) {
    return Problem(ArgProblem::kValue, what + " has " + std::to_string(numel) + " elements (shape " +
                                           ShapeText(t.shape) + "), expected " + std::to_string(expect_numel));
  }
  *view = TensorView{reinterpret_cast<void*>(t.address), DType::kF32, t.shape};
  return {};
}

ArgCheck CheckKeys(const TensorArg& t, const std::string& what, const Key** keys, size_t* count) {
  if (t.dtype != "torch.int64") {
    return Problem(ArgProblem::kType, what + " has dtype " + t.dtype + ": ids are torch.int64");
  }
  if (ArgCheck c = CheckLayout(t, what); !c.ok()) return c;
  if (t.shape.size() != 1) return Problem(ArgProblem::kValue, what + " must be 1-D, got shape " + ShapeText(t.shape));
  *keys = reinterpret_cast<const Key*>(t.address);
  *count = static_cast<size_t>(t.shape[0]);
  return {};
}

}  // namespace tessera::python
