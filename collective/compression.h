// Gradient compression (--compress): 16-bit floats on the wire (fp16, bf16; the
// communicator sums in f32, see communicator.h) and top-k sparsification with error
// feedback (topk:R): each step a worker sends only the k = ceil(R * n) entries of largest
// magnitude of (gradient + residual) and keeps the rest as the residual for the next
// step, so nothing is lost, only delayed (Lin et al., Deep Gradient Compression).
//
// Thread safety: ParseCompression is pure; a TopKCompressor is used by one thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collective/communicator.h"

namespace tessera::collective {

struct CompressionSpec {
  enum class Kind : uint8_t { kNone = 0, kF16 = 1, kBF16 = 2, kTopK = 3 };
  Kind kind = Kind::kNone;
  double topk_ratio = 0;  // kTopK: fraction of entries sent, in (0, 1]

  // The --compress spelling, which ParseCompression accepts back.
  std::string ToString() const;
  // How dense all-reduces carry values under this spec (kNative for none and topk).
  WireFormat wire() const;
};

// "none", "fp16", "bf16" or "topk:R" with R a decimal in (0, 1]. Anything else:
// InvalidArgument quoting the text and listing the accepted forms.
Result<CompressionSpec> ParseCompression(std::string_view text);

// Top-k selection with error feedback for one tensor of fixed size.
class TopKCompressor {
 public:
  // REQUIRES 0 < ratio <= 1.
  TopKCompressor(size_t numel, double ratio);

  size_t k() const { return k_; }
  // acc = grad + residual; writes the k entries of largest |acc| (indices ascending) and
  // sets residual = acc with those entries zeroed. REQUIRES grad.size() == numel.
  void Compress(std::span<const float> grad, std::vector<uint32_t>* indices, std::vector<float>* values);
  std::span<const float> residual() const { return residual_; }

 private:
  size_t k_;
  std::vector<float> residual_;
  std::vector<uint32_t> order_;  // scratch
};

// Sparse all-reduce of one tensor under top-k: every rank contributes its (index, value)
// pairs (TopKCompressor), an all-gather hands everyone every rank's pairs, and each rank
// writes the dense result (sum, or mean over ranks) into `grad`, so every rank ends with
// the same values. Bytes per rank on the wire: 8 k (size - 1) instead of 4 n. Blocks
// until done (bounded by `timeout`).
Status TopKAllReduce(Communicator* comm, TopKCompressor* compressor, TensorView grad, ReduceOp reduce,
                     Duration timeout);

}  // namespace tessera::collective
