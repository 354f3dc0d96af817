// Buffer: owning, reference-counted bytes on the host or a CUDA device.
// TensorView: a non-owning (pointer, dtype, shape, device) window onto memory.
// Tensor: a Buffer plus dtype and shape.
//
// Buffer is the only type with shared ownership in Tessera: a zero-copy send hands
// ZeroMQ a reference that is dropped in ZeroMQ's free callback, so the bytes live
// exactly until the transport is done with them (ps-lite SArray + FreeData).
//
// Thread safety: copying or destroying Buffer handles from several threads is safe
// (the count is atomic, intrusive in Buffer::Owner); writing the bytes is the caller's
// business.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
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
  // The state Buffer handles share: the bytes and a count of the handles. Memory with a
  // cheaper home for it than its own heap block derives from it and places it there
  // (wire/alloc.cc keeps it in the 8 KiB frame block it describes; wire/socket.cc beside
  // the zmq_msg_t of a frame it keeps): a received 4 KiB frame then costs no allocation
  // of its own (issue 17). `destroy` runs once, on the thread that drops the last
  // reference, and must end the Owner's lifetime (free it or give its block back).
  struct Owner {
    Owner(void* data, size_t size, Device device, void (*destroy)(Owner*))
        : data(data), size(size), device(device), destroy(destroy) {}
    Owner(const Owner&) = delete;
    Owner& operator=(const Owner&) = delete;
    void* const data;
    const size_t size;
    const Device device;
    void (*const destroy)(Owner*);
    std::atomic<long> refs{1};
  };

  Buffer() = default;
  Buffer(const Buffer& o) noexcept : impl_(o.impl_) { Ref(impl_); }
  Buffer(Buffer&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)) {}
  Buffer& operator=(const Buffer& o) noexcept {
    Ref(o.impl_);  // first: `o` may be the last reference to what this handle drops
    Unref(std::exchange(impl_, o.impl_));
    return *this;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) Unref(std::exchange(impl_, std::exchange(o.impl_, nullptr)));
    return *this;
  }
  ~Buffer() { Unref(impl_); }

  // Host memory, 64-byte aligned, uninitialised. size 0 gives an empty, valid buffer.
  static Buffer Allocate(size_t size);
  // Host memory, zero-filled.
  static Buffer Zeros(size_t size);
  // Adopts memory owned elsewhere; `release` (any callable, or nullptr for none) runs
  // once, when the last reference dies. One allocation, holding `release` itself: a
  // std::function beside a shared_ptr's state cost two for a capture over 16 bytes.
  template <typename F>
  static Buffer Wrap(void* data, size_t size, Device device, F release);
  // Takes over the one reference `owner` was made with. REQUIRES: owner != nullptr.
  static Buffer Adopt(Owner* owner) {
    Buffer b;
    b.impl_ = owner;
    return b;
  }
  // For a C callback's context (ZeroMQ's free hint): Retain adds a reference and returns
  // it as a token (nullptr for an empty handle); ReleaseRetained drops it, on any thread.
  void* Retain() const {
    Ref(impl_);
    return impl_;
  }
  static void ReleaseRetained(void* token) { Unref(static_cast<Owner*>(token)); }
  // Copies `bytes` into a new host buffer.
  static Buffer CopyOf(std::span<const std::byte> bytes);

  void* data() const { return impl_ ? impl_->data : nullptr; }
  size_t size() const { return impl_ ? impl_->size : 0; }
  Device device() const { return impl_ ? impl_->device : Device::kCPU; }
  bool empty() const { return size() == 0; }
  std::span<std::byte> bytes() const { return {static_cast<std::byte*>(data()), size()}; }
  template <typename T>
  T* as() const { return static_cast<T*>(data()); }
  // Number of Buffer handles (and retained tokens) sharing the bytes (tests use it to see
  // zero-copy holds).
  long use_count() const { return impl_ ? impl_->refs.load(std::memory_order_relaxed) : 0; }

 private:
  template <typename F>
  struct Wrapped;
  static void Ref(Owner* o) {
    if (o != nullptr) o->refs.fetch_add(1, std::memory_order_relaxed);
  }
  // acq_rel, as shared_ptr's count: the destroying thread sees every write made through
  // other handles before they were dropped.
  static void Unref(Owner* o) {
    if (o != nullptr && o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) o->destroy(o);
  }
  Owner* impl_ = nullptr;
};

template <typename F>
struct Buffer::Wrapped final : Buffer::Owner {
  Wrapped(void* data, size_t size, Device device, F f) : Owner(data, size, device, &Destroy), release(std::move(f)) {}
  static void Destroy(Owner* o) {
    auto* w = static_cast<Wrapped*>(o);
    if constexpr (std::is_same_v<F, std::function<void()>>) {
      if (w->release) w->release();
    } else if constexpr (!std::is_null_pointer_v<F>) {
      w->release();
    }
    delete w;
  }
  F release;
};

template <typename F>
Buffer Buffer::Wrap(void* data, size_t size, Device device, F release) {
  return Adopt(new Wrapped<F>(data, size, device, std::move(release)));
}

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
