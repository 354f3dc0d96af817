#include "common/dtype.h"

namespace tessera {

namespace {
constexpr std::string_view kNames[kNumDTypes] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u64"};
}

std::string_view DTypeName(DType t) {
  auto i = static_cast<uint8_t>(t);
  return i < kNumDTypes ? kNames[i] : std::string_view("invalid");
}

std::optional<DType> ParseDType(std::string_view name) {
  for (uint8_t i = 0; i < kNumDTypes; ++i) {
    if (kNames[i] == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

}  // namespace tessera
