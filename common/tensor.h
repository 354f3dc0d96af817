// Buffer: owning, reference-counted bytes on the host or a CUDA device.
// TensorView: a non-owning (pointer, dtype, shape, device) window onto memory.
// Tensor: a Buffer plus dtype and shape.
//
// Buffer is the only type with shared ownership in Tessera: a zero-copy send hands
// ZeroMQ a reference that is dropped in ZeroMQ's free callback, so the bytes live
// exactly until the transport is done with them (ps-lite SArray + FreeData).
//
// Thread safety: copying or destroying Buffer handles from several threads is safe
// (the count is atomic); writing the bytes is the caller's business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"

namespace tessera {

enum class Device : uint8_t { kCPU = 0, kCUDA = 1 };

using Shape = std::vector<int64_t>;

// Product of dims; 1 for a scalar (empty shape). Negative dims count as 0.
int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);  // "[2, 3]"

class Buffer {
 public:
  Buffer() = default;

  // Host memory, 64-byte aligned, uninitialised. size 0 gives an empty, valid buffer.
  static Buffer Allocate(size_t size);
  // Host memory, zero-filled.
  static Buffer Zeros(size_t size);
  // Adopts memory owned elsewhere; `release` runs once, when the last reference dies.
  static Buffer Wrap(void* data, size_t size, Device device, std::function<void()> release);
  // Copies `bytes` into a new host buffer.
  static Buffer CopyOf(std::span<const std::byte> bytes);

  void* data() const { return impl_ ? impl_->data : nullptr; }
  size_t size() const { return impl_ ? impl_->size : 0; }
  Device device() const { return impl_ ? impl_->device : Device::kCPU; }
  bool empty() const { return size() == 0; }
  std::span<std::byte> bytes() const { return {static_cast<std::byte*>(data()), size()}; }
  template <typename T>
  T* as() const { return static_cast<T*>(data()); }
  // Number of Buffer handles sharing the bytes (tests use it to see zero-copy holds).
  long use_count() const { return impl_.use_count(); }

 private:
  struct Impl {
    void* data = nullptr;
    size_t size = 0;
    Device device = Device::kCPU;
    std::function<void()> release;
    ~Impl();
  };
  std::shared_ptr<Impl> impl_;
};

// A window onto memory it does not own. Like leveldb::Slice, the caller must keep the
// memory alive and unchanged-in-size for as long as the view is used.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  Device device = Device::kCPU;

  int64_t numel() const { return NumElements(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

// Owning tensor: the Buffer holds at least numel * DTypeSize(dtype) bytes.
class Tensor {
 public:
  Tensor() = default;
  // Host tensor, zero-filled.
  static Tensor Zeros(DType dtype, Shape shape);
  // Host tensor over an existing buffer. Fails when the buffer is too small.
  static Result<Tensor> FromBuffer(Buffer buffer, DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  const Buffer& buffer() const { return buffer_; }
  void* data() const { return buffer_.data(); }
  template <typename T>
  T* as() const { return buffer_.as<T>(); }
  TensorView view() const { return {buffer_.data(), dtype_, shape_, buffer_.device()}; }

 private:
  Buffer buffer_;
  DType dtype_ = DType::kF32;
  Shape shape_;
};

}  // namespace tessera
