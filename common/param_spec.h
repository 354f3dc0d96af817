// What a model declares about each parameter: the vocabulary shared by the model
// (worker/), the coordinator (shard map), the servers (storage and optimizer) and the
// kernels (fused optimizer updates). The wire form is ParamDecl in wire/tessera.capnp;
// enum values match that schema's ordinals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/tensor.h"

namespace tessera {

enum class ParamKind : uint8_t { kDense = 0, kSparse = 1 };

enum class InitKind : uint8_t {
  kZeros = 0,
  kUniform = 1,   // U(-scale, scale)
  kNormal = 2,    // N(0, scale^2)
  kConstant = 3,  // every element = scale
};

enum class OptimizerKind : uint8_t { kSgd = 0, kMomentum = 1, kAdaGrad = 2, kAdam = 3, kAdamW = 4 };

// Server-side (or, in allreduce mode, worker-side) optimizer settings.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float lr = 0.01f;                   // Default: 0.01
  float momentum = 0.9f;              // kMomentum. Default: 0.9
  bool nesterov = false;              // kMomentum. Default: false
  float beta1 = 0.9f;                 // kAdam/kAdamW. Default: 0.9
  float beta2 = 0.999f;               // kAdam/kAdamW. Default: 0.999
  float eps = 1e-8f;                  // kAdam/kAdamW/kAdaGrad. Default: 1e-8
  float weight_decay = 0.0f;          // L2 added to the gradient (AdamW: decoupled). Default: 0
  float clip_norm = 0.0f;             // 0: off; else scale grad so its L2 norm <= clip_norm. Default: 0
  float initial_accumulator = 0.1f;   // kAdaGrad. Default: 0.1
};

// Number of optimizer slot tensors (each the parameter's size): momentum 1, AdaGrad 1,
// Adam/AdamW 2 (m, v), SGD 0.
inline int NumOptimizerSlots(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd: return 0;
    case OptimizerKind::kMomentum: return 1;
    case OptimizerKind::kAdaGrad: return 1;
    case OptimizerKind::kAdam: return 2;
    case OptimizerKind::kAdamW: return 2;
  }
  return 0;
}

struct ParamSpec {
  std::string name;                  // unique within a model, e.g. "fc1.weight"
  ParamKind kind = ParamKind::kDense;
  DType dtype = DType::kF32;
  Shape shape;                       // dense: tensor shape; sparse: {row_width}
  InitKind init = InitKind::kZeros;
  float init_scale = 0.0f;
  uint64_t seed = 0;
  OptimizerConfig optimizer;

  int64_t numel() const { return NumElements(shape); }  // dense size, or sparse row width
};

}  // namespace tessera
