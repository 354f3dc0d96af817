// Deterministic parameter initialisation: the single definition shared by the model
// (worker/model, single-process and allreduce runs) and the parameter servers (which
// create dense chunks and sparse rows with it). It sits in kernels/ as its own library,
// tessera_param_init (common only), below both roles so neither imports the other.
//
// Rule (frozen: changing it changes every fresh parameter; docs/models.md):
//   base        = HashCombine(spec.seed, ParamNameHash(spec.name))
//   bits(i, k)  = HashCombine(base, 2 * i + k)            k in {0, 1}; i is the global
//                                                         element index, uint64 arithmetic
//   u0 = UnitFloat(bits(i, 0)),  u1 = UnitFloat(bits(i, 1))        both in [0, 1)
//   kZeros:    0
//   kConstant: scale
//   kUniform:  scale * (2 * u0 - 1)                        in [-scale, scale)
//   kNormal:   scale * sqrt(-2 ln(1 - u0)) * cos(2 pi u1)  Box-Muller, in double, then f32
// Sparse rows use base' = HashCombine(base, key) and the element's index within the row.
//
// So element i's value depends only on (seed, name, i): initialising a tensor whole or in
// chunks of any size, on any server, gives identical bits.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"

namespace tessera {

// FNV-1a 64 of the name's bytes.
uint64_t ParamNameHash(std::string_view name);

// Value of global element `index` of a dense parameter (the rule above). For callers
// that fill memory themselves (e.g. a CUDA kernel port of this rule).
float InitElement(InitKind kind, float scale, uint64_t base, uint64_t index);

// Fills `out` with elements [element_offset, element_offset + out.numel()) of the dense
// parameter `spec`. Returns InvalidArgument when out is not f32 host memory, when spec
// is not f32 or has an unknown InitKind, or (for a dense spec) when the range runs past
// spec.numel(). An empty `out` is a valid no-op.
Status InitializeParam(const ParamSpec& spec, TensorView out, uint64_t element_offset);

// Fills `row` (f32 host, numel == spec.shape's row width) with the initial value of the
// sparse table `spec`'s row `key`. Returns InvalidArgument on a dtype/size mismatch.
Status InitializeSparseRow(const ParamSpec& spec, uint64_t key, TensorView row);

// InitializeSparseRow for many rows of one table: the same bits, with what does not
// depend on the key (the table's base, the mix of each element index) computed once at
// construction instead of per row, so a row costs one Mix64 per element (two for
// kNormal) instead of two (four) and no name hash. What a server uses on its hot path
// (creating rows on push, answering pulls of absent rows).
class SparseRowInit {
 public:
  SparseRowInit() = default;
  // InvalidArgument as InitializeSparseRow for a spec it would refuse (not f32, unknown
  // InitKind, a width outside [1, 2^24]).
  static Result<SparseRowInit> Create(const ParamSpec& spec);
  // Writes row `key`'s width() initial values to row[0, width()).
  void Fill(uint64_t key, float* row) const;
  uint64_t width() const { return width_; }

 private:
  static constexpr size_t kMaxTabled = 4096;  // columns whose mixes are kept (64 KiB)
  InitKind kind_ = InitKind::kZeros;
  float scale_ = 0.0f;
  uint64_t width_ = 0;
  uint64_t base_ = 0;          // HashCombine(seed, ParamNameHash(name))
  std::vector<uint64_t> mix_;  // Mix64(2 * i + k) at 2 * i + k, i < min(width, kMaxTabled)
};

}  // namespace tessera
