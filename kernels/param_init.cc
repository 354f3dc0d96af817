#include "kernels/param_init.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/hash.h"

namespace tessera {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

Status CheckTarget(const ParamSpec& spec, const TensorView& out, const char* what) {
  if (spec.dtype != DType::kF32) {
    return Status::InvalidArgument(std::string(what) + " " + spec.name + ": only f32 parameters " +
                                   "are supported, spec has " + std::string(DTypeName(spec.dtype)));
  }
  if (out.dtype != DType::kF32 || out.device != Device::kCPU) {
    return Status::InvalidArgument(std::string(what) + " " + spec.name +
                                   ": output must be f32 host memory");
  }
  if (out.numel() > 0 && out.data == nullptr) {
    return Status::InvalidArgument(std::string(what) + " " + spec.name + ": null output");
  }
  switch (spec.init) {
    case InitKind::kZeros:
    case InitKind::kUniform:
    case InitKind::kNormal:
    case InitKind::kConstant:
      return Status::OK();
  }
  return Status::InvalidArgument(std::string(what) + " " + spec.name + ": unknown InitKind " +
                                 std::to_string(static_cast<int>(spec.init)));
}

void Fill(const ParamSpec& spec, uint64_t base, uint64_t first, TensorView out) {
  float* p = out.as<float>();
  const int64_t n = out.numel();
  if (spec.init == InitKind::kUniform) {  // the common case, without a call and a switch per element
    const float scale = spec.init_scale;
    for (int64_t i = 0; i < n; ++i) {
      const float u0 = UnitFloat(HashCombine(base, 2 * (first + static_cast<uint64_t>(i))));
      p[i] = scale * (2.0f * u0 - 1.0f);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    p[i] = InitElement(spec.init, spec.init_scale, base, first + static_cast<uint64_t>(i));
  }
}

}  // namespace

uint64_t ParamNameHash(std::string_view name) { return Fnv1a64(name.data(), name.size()); }

float InitElement(InitKind kind, float scale, uint64_t base, uint64_t index) {
  switch (kind) {
    case InitKind::kZeros:
      return 0.0f;
    case InitKind::kConstant:
      return scale;
    case InitKind::kUniform: {
      const float u0 = UnitFloat(HashCombine(base, 2 * index));
      return scale * (2.0f * u0 - 1.0f);
    }
    case InitKind::kNormal: {
      const double u0 = UnitFloat(HashCombine(base, 2 * index));
      const double u1 = UnitFloat(HashCombine(base, 2 * index + 1));
      const double z = std::sqrt(-2.0 * std::log(1.0 - u0)) * std::cos(kTwoPi * u1);
      return static_cast<float>(static_cast<double>(scale) * z);
    }
  }
  return 0.0f;
}

Status InitializeParam(const ParamSpec& spec, TensorView out, uint64_t element_offset) {
  TESSERA_RETURN_IF_ERROR(CheckTarget(spec, out, "InitializeParam"));
  const auto n = static_cast<uint64_t>(out.numel());
  if (spec.kind == ParamKind::kDense) {
    const auto total = static_cast<uint64_t>(spec.numel());
    if (element_offset > total || n > total - element_offset) {
      return Status::InvalidArgument("InitializeParam " + spec.name + ": elements [" +
                                     std::to_string(element_offset) + ", +" + std::to_string(n) +
                                     ") run past its " + std::to_string(total) + " elements");
    }
  }
  Fill(spec, HashCombine(spec.seed, ParamNameHash(spec.name)), element_offset, out);
  return Status::OK();
}

Status InitializeSparseRow(const ParamSpec& spec, uint64_t key, TensorView row) {
  TESSERA_RETURN_IF_ERROR(CheckTarget(spec, row, "InitializeSparseRow"));
  if (row.numel() != spec.numel()) {
    return Status::InvalidArgument("InitializeSparseRow " + spec.name + ": row has " +
                                   std::to_string(row.numel()) + " elements, table width is " +
                                   std::to_string(spec.numel()));
  }
  const uint64_t base = HashCombine(HashCombine(spec.seed, ParamNameHash(spec.name)), key);
  Fill(spec, base, 0, row);
  return Status::OK();
}

Result<SparseRowInit> SparseRowInit::Create(const ParamSpec& spec) {
  const int64_t width = spec.numel();
  if (width <= 0 || width > (int64_t{1} << 24)) {
    return Status::InvalidArgument("SparseRowInit " + spec.name + ": row width " + std::to_string(width) +
                                   " outside [1, 2^24]");
  }
  std::vector<float> probe(static_cast<size_t>(width));
  TESSERA_RETURN_IF_ERROR(
      InitializeSparseRow(spec, 0, TensorView{probe.data(), DType::kF32, {width}, Device::kCPU}));
  SparseRowInit r;
  r.kind_ = spec.init;
  r.scale_ = spec.init_scale;
  r.width_ = static_cast<uint64_t>(width);
  r.base_ = HashCombine(spec.seed, ParamNameHash(spec.name));
  r.mix_.resize(2 * std::min<size_t>(r.width_, kMaxTabled));
  for (uint64_t j = 0; j < r.mix_.size(); ++j) r.mix_[j] = Mix64(j);
  return r;
}

void SparseRowInit::Fill(uint64_t key, float* row) const {
  // HashCombine(base', v) == Mix64(base' ^ Mix64(v)): the inner mix is mix_[v] (computed
  // here past the tabled columns of a very wide row).
  const uint64_t base = HashCombine(base_, key);
  const size_t tabled = mix_.size() / 2;
  const uint64_t* mix = mix_.data();
  switch (kind_) {
    case InitKind::kZeros:
      std::fill(row, row + width_, 0.0f);
      return;
    case InitKind::kConstant:
      std::fill(row, row + width_, scale_);
      return;
    case InitKind::kUniform:
      for (size_t i = 0; i < tabled; ++i) row[i] = scale_ * (2.0f * UnitFloat(Mix64(base ^ mix[2 * i])) - 1.0f);
      for (size_t i = tabled; i < width_; ++i) row[i] = scale_ * (2.0f * UnitFloat(HashCombine(base, 2 * i)) - 1.0f);
      return;
    case InitKind::kNormal:
      for (size_t i = 0; i < width_; ++i) {
        const uint64_t m0 = i < tabled ? mix[2 * i] : Mix64(2 * i);
        const uint64_t m1 = i < tabled ? mix[2 * i + 1] : Mix64(2 * i + 1);
        const double u0 = UnitFloat(Mix64(base ^ m0));
        const double u1 = UnitFloat(Mix64(base ^ m1));
        const double z = std::sqrt(-2.0 * std::log(1.0 - u0)) * std::cos(kTwoPi * u1);
        row[i] = static_cast<float>(static_cast<double>(scale_) * z);
      }
      return;
  }
}

}  // namespace tessera
