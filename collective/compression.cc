#include "collective/compression.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace tessera::collective {

std::string CompressionSpec::ToString() const {
  switch (kind) {
    case Kind::kNone: return "none";
    case Kind::kF16: return "fp16";
    case Kind::kBF16: return "bf16";
    case Kind::kTopK: {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "topk:%g", topk_ratio);
      return buf;
    }
  }
  return "?";
}

WireFormat CompressionSpec::wire() const {
  if (kind == Kind::kF16) return WireFormat::kF16;
  if (kind == Kind::kBF16) return WireFormat::kBF16;
  return WireFormat::kNative;
}

Result<CompressionSpec> ParseCompression(std::string_view text) {
  CompressionSpec s;
  if (text == "none") return s;
  if (text == "fp16") {
    s.kind = CompressionSpec::Kind::kF16;
    return s;
  }
  if (text == "bf16") {
    s.kind = CompressionSpec::Kind::kBF16;
    return s;
  }
  const std::string bad = "--compress=" + std::string(text) + ": expected none, fp16, bf16 or topk:R with 0 < R <= 1";
  if (text.rfind("topk:", 0) != 0) return Status::InvalidArgument(bad);
  const std::string num(text.substr(5));
  if (num.empty() || num.find_first_not_of("0123456789.eE-") != std::string::npos) return Status::InvalidArgument(bad);
  char* end = nullptr;
  const double r = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || !(r > 0 && r <= 1)) return Status::InvalidArgument(bad);
  s.kind = CompressionSpec::Kind::kTopK;
  s.topk_ratio = r;
  return s;
}

TopKCompressor::TopKCompressor(size_t numel, double ratio)
    : k_(std::clamp<size_t>(static_cast<size_t>(std::ceil(ratio * static_cast<double>(numel))), numel > 0 ? 1 : 0,
                            numel)),
      residual_(numel, 0.0f),
      order_(numel) {}

void TopKCompressor::Compress(std::span<const float> grad, std::vector<uint32_t>* indices,
                              std::vector<float>* values) {
  const size_t n = residual_.size();
  for (size_t i = 0; i < n; ++i) residual_[i] += grad[i];
  for (size_t i = 0; i < n; ++i) order_[i] = static_cast<uint32_t>(i);
  // Ties broken by index, so every run picks the same entries.
  auto larger = [this](uint32_t a, uint32_t b) {
    const float fa = std::fabs(residual_[a]), fb = std::fabs(residual_[b]);
    return fa != fb ? fa > fb : a < b;
  };
  std::nth_element(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k_), order_.end(), larger);
  std::sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k_));
  indices->assign(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k_));
  values->resize(k_);
  for (size_t j = 0; j < k_; ++j) {
    (*values)[j] = residual_[(*indices)[j]];
    residual_[(*indices)[j]] = 0.0f;
  }
}

Status TopKAllReduce(Communicator* comm, TopKCompressor* compressor, TensorView grad, ReduceOp reduce,
                     Duration timeout) {
  if (grad.dtype != DType::kF32 || static_cast<size_t>(grad.numel()) != compressor->residual().size()) {
    return Status::InvalidArgument("top-k all-reduce: gradient must be f32 with " +
                                   std::to_string(compressor->residual().size()) + " elements");
  }
  std::vector<uint32_t> idx;
  std::vector<float> val;
  compressor->Compress({grad.as<float>(), static_cast<size_t>(grad.numel())}, &idx, &val);
  const size_t k = idx.size();
  const int p = comm->size();
  // One message per rank: k indices then k values (both 4 bytes).
  std::vector<uint32_t> mine(2 * k), all(2 * k * static_cast<size_t>(p));
  std::memcpy(mine.data(), idx.data(), 4 * k);
  std::memcpy(mine.data() + k, val.data(), 4 * k);
  const int64_t words = static_cast<int64_t>(2 * k);
  TensorView in{mine.data(), DType::kI32, {words}, Device::kCPU};
  TensorView out{all.data(), DType::kI32, {words * p}, Device::kCPU};
  TESSERA_RETURN_IF_ERROR_CTX(comm->AllGather(in, out).Wait(timeout), "top-k all-reduce");
  float* g = grad.as<float>();
  std::fill(g, g + grad.numel(), 0.0f);
  for (int r = 0; r < p; ++r) {  // rank order: every rank sums in the same order
    const uint32_t* base = all.data() + static_cast<size_t>(r) * 2 * k;
    for (size_t j = 0; j < k; ++j) {
      float v;
      std::memcpy(&v, base + k + j, 4);
      g[base[j]] += v;
    }
  }
  if (reduce == ReduceOp::kMean && p > 1) {
    const float inv = 1.0f / static_cast<float>(p);
    for (int64_t i = 0; i < grad.numel(); ++i) g[i] *= inv;
  }
  return Status::OK();
}

}  // namespace tessera::collective
