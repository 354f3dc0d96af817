// TensorArg: a tensor handed over from Python as plain numbers (address, shape, strides,
// dtype and device names), so the extension never links libtorch or depends on its C++
// ABI (docs/python.md). Everything the client relies on is checked here, before a
// request is built: a torch tensor of the wrong dtype, on a GPU or not contiguous is a
// clear Python exception, never memory read the wrong way.
//
// Lifetime: a TensorView made from a TensorArg points into the Python tensor's storage;
// the Python layer keeps that tensor referenced until the request's Handle is done.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/keys.h"
#include "common/tensor.h"

namespace tessera::python {

struct TensorArg {
  uint64_t address = 0;           // tensor.data_ptr()
  std::vector<int64_t> shape;     // list(tensor.shape)
  std::vector<int64_t> strides;   // list(tensor.stride()), in elements
  std::string dtype;              // str(tensor.dtype): "torch.float32"
  std::string device;             // str(tensor.device): "cpu"
};

// Which Python exception a bad argument raises: TypeError for a wrong dtype, ValueError
// for anything else (device, layout, size, address).
enum class ArgProblem { kNone, kType, kValue };

struct ArgCheck {
  ArgProblem problem = ArgProblem::kNone;
  std::string message;  // names `what` and the bad property
  bool ok() const { return problem == ArgProblem::kNone; }
};

// `t` is a float32 CPU tensor, contiguous (row-major strides; size-1 dimensions may
// have any stride), with `expect_numel` elements (any count when < 0). On success *view
// is set ({address, kF32, shape}).
ArgCheck CheckF32(const TensorArg& t, const std::string& what, int64_t expect_numel, TensorView* view);

// `t` is a 1-D contiguous int64 CPU tensor of ids (u64 keys, two's complement); on
// success *keys points at its elements and *count is their number.
ArgCheck CheckKeys(const TensorArg& t, const std::string& what, const Key** keys, size_t* count);

}  // namespace tessera::python
