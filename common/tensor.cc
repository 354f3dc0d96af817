#include "common/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace tessera {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d < 0 ? 0 : d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Buffer Buffer::Allocate(size_t size) {
  constexpr size_t kAlign = 64;
  size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
  void* p = rounded ? std::aligned_alloc(kAlign, rounded) : nullptr;
  if (rounded && p == nullptr) throw std::bad_alloc();  // programmer-visible OOM, as new does
  return Wrap(p, size, Device::kCPU, [p] { std::free(p); });
}

Buffer Buffer::Zeros(size_t size) {
  Buffer b = Allocate(size);
  if (size) std::memset(b.data(), 0, size);
  return b;
}

Buffer Buffer::CopyOf(std::span<const std::byte> bytes) {
  Buffer b = Allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

Tensor Tensor::Zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.buffer_ = Buffer::Zeros(t.nbytes());
  return t;
}

Result<Tensor> Tensor::FromBuffer(Buffer buffer, DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  if (buffer.size() < t.nbytes()) {
    return Status::InvalidArgument("buffer of " + std::to_string(buffer.size()) +
                                   " bytes is too small for " + std::string(DTypeName(dtype)) +
                                   ShapeToString(t.shape_));
  }
  t.buffer_ = std::move(buffer);
  return t;
}

}  // namespace tessera
