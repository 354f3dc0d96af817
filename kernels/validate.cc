#include "kernels/validate.h"

#include <string>

namespace tessera::kernels::internal {

namespace {

std::string_view DeviceName(Device d) {
  switch (d) {
    case Device::kCPU: return "cpu";
    case Device::kCUDA: return "cuda";
  }
  return "?";
}

}  // namespace

Status Invalid(std::string_view op, std::string_view message) {
  std::string m(op);
  m += ": ";
  m += message;
  return Status::InvalidArgument(std::move(m));
}

std::string Describe(const TensorView& v) {
  std::string s = IsValidDType(static_cast<uint8_t>(v.dtype))
                      ? std::string(DTypeName(v.dtype))
                      : "dtype#" + std::to_string(static_cast<int>(v.dtype));
  s += ShapeToString(v.shape);
  s += "@";
  s += DeviceName(v.device);
  return s;
}

Status CheckView(std::string_view op, std::string_view name, const TensorView& v,
                 std::initializer_list<DType> dtypes) {
  const std::string n(name);
  if (!IsValidDType(static_cast<uint8_t>(v.dtype))) {
    return Invalid(op, n + " has an unknown dtype " + std::to_string(static_cast<int>(v.dtype)));
  }
  if (v.device != Device::kCPU && v.device != Device::kCUDA) {
    return Invalid(op, n + " has an unknown device " + std::to_string(static_cast<int>(v.device)));
  }
  for (int64_t d : v.shape) {
    if (d < 0) return Invalid(op, n + " has a negative dimension: " + Describe(v));
  }
  bool dtype_ok = false;
  std::string wanted;
  for (DType t : dtypes) {
    dtype_ok = dtype_ok || t == v.dtype;
    if (!wanted.empty()) wanted += " or ";
    wanted += DTypeName(t);
  }
  if (!dtype_ok) return Invalid(op, n + " must be " + wanted + ", got " + Describe(v));
  if (v.numel() > 0 && v.data == nullptr) {
    return Invalid(op, n + " has null data but " + std::to_string(v.numel()) + " elements");
  }
  return Status::OK();
}

Status CheckRank(std::string_view op, std::string_view name, const TensorView& v, size_t rank) {
  if (v.shape.size() != rank) {
    return Invalid(op, std::string(name) + " must have rank " + std::to_string(rank) + ", got " +
                           Describe(v));
  }
  return Status::OK();
}

Status CheckMatrix(std::string_view op, std::string_view name, const TensorView& v,
                   std::initializer_list<DType> dtypes) {
  TESSERA_RETURN_IF_ERROR(CheckView(op, name, v, dtypes));
  return CheckRank(op, name, v, 2);
}

Status CheckSameNumel(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b) {
  if (a.numel() != b.numel()) {
    return Invalid(op, std::string(a_name) + " " + Describe(a) + " and " + std::string(b_name) +
                           " " + Describe(b) + " differ in element count");
  }
  return Status::OK();
}

Status CheckSameDevice(std::string_view op, std::initializer_list<const TensorView*> views,
                       Device* device) {
  bool first = true;
  for (const TensorView* v : views) {
    if (IsAbsent(*v)) continue;
    if (first) {
      *device = v->device;
      first = false;
    } else if (v->device != *device) {
      return Invalid(op, "arguments are on different devices (" + std::string(DeviceName(*device)) +
                             " and " + std::string(DeviceName(v->device)) + ")");
    }
  }
  if (first) *device = Device::kCPU;
  return Status::OK();
}

}  // namespace tessera::kernels::internal
