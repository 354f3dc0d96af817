// Element types of tensors. The numeric values are part of the wire and checkpoint
// formats: never renumber, only append.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tessera {

enum class DType : uint8_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kF64 = 3,
  kI32 = 4,
  kI64 = 5,
  kU64 = 6,
};
inline constexpr uint8_t kNumDTypes = 7;

// Bytes per element; 0 for a value outside the enum (so callers can validate wire input).
constexpr size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kF64: return 8;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU64: return 8;
  }
  return 0;
}

constexpr bool IsValidDType(uint8_t raw) { return raw < kNumDTypes; }
constexpr bool IsFloating(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

std::string_view DTypeName(DType t);                    // "f32", "bf16", ...
std::optional<DType> ParseDType(std::string_view name);  // inverse of DTypeName

}  // namespace tessera
