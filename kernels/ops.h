// The kernels' public API: one host-callable function per op, over TensorViews.
//
// Every op chooses its backend from the views' `device` (all views of one call must be on
// the same device, except CopyTensor): Device::kCPU runs the CPU loops (always built),
// Device::kCUDA runs the CUDA kernels (built when nvcc was found; in a CPU-only build a
// CUDA view gives kFailedPrecondition "built without CUDA"). Both backends evaluate the
// same per-element math (kernels/math/*.h), so they agree to rounding.
//
// Contracts shared by every op:
//  - Returns OK, or kInvalidArgument with a message naming the op and the offending
//    argument (dtype, rank, shape, device, out-of-range index) and writes nothing in that
//    case. No op crashes on bad input; no op throws.
//  - Zero-length inputs are valid no-ops (losses of an empty batch are 0).
//  - Views must be dense, row-major and non-overlapping unless an op says "may alias".
//  - A "TensorView{}" (null data, empty shape) passed where an argument is optional means
//    "absent" (no bias, no gradient wanted, ...).
//  - CUDA: work is issued on the calling thread's current device, on the legacy default
//    stream, and the call returns after the device finished it, so a kernel fault is
//    reported by the call that caused it (kInternal with the CUDA error string). This
//    trades overlap for simplicity; a stream-taking overload can be added without
//    changing these.
//  - Reductions accumulate in double and are deterministic for a given input and device
//    (fixed reduction tree; no atomics), except ScatterAdd on CUDA (see there; GroupedRowSum
//    is its deterministic form).
//
// Thread safety: every function may be called concurrently from several threads on
// disjoint outputs. The CPU backend uses OpenMP worker threads on large inputs only when
// SetCpuThreads(n > 1) was called; results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"

namespace tessera::kernels {

// ---- Backend availability --------------------------------------------------------------

// True when this library was compiled with the CUDA backend.
bool BuiltWithCuda();
// True when BuiltWithCuda() and at least one usable device exists. Any error from
// cudaGetDeviceCount (e.g. "driver version is insufficient") counts as "no device".
bool CudaDeviceAvailable();

// Threads the CPU backend may use for one large op (default 1: the calling thread only).
// Set once at start-up (launch/job.cc --kernel_threads), before other threads run ops.
void SetCpuThreads(int threads);

// ---- Memory ----------------------------------------------------------------------------

// dst <- src, any combination of host and device. REQUIRES same dtype and numel
// (shapes may differ, e.g. flattening).
Status CopyTensor(TensorView src, TensorView dst);
// Every element of x (f32) set to `value`.
Status Fill(TensorView x, float value);

// ---- BLAS-1 helpers (servers aggregate pushes with these) -----------------------------

// y += a * x. y is f32; x is f32, f16 or bf16 (compressed pushes are widened on the fly).
// REQUIRES x.numel() == y.numel().
Status Axpy(float a, TensorView x, TensorView y);
// x *= alpha (f32).
Status Scale(TensorView x, float alpha);
// out = a + b elementwise (f32, same numel). out may alias a or b.
Status Add(TensorView a, TensorView b, TensorView out);
// Sum of all elements of x (f32), accumulated in double.
Result<double> Sum(TensorView x);
// Sum of squares of x (f32), accumulated in double. sqrt of it is the L2 norm.
Result<double> L2NormSquared(TensorView x);
// Gradient clipping for one tensor: when ||x||_2 > clip_norm > 0, x *= clip_norm / ||x||_2.
// clip_norm <= 0 means off. Returns the norm before clipping. For a global norm across
// several tensors or chunks, sum their L2NormSquared and Scale each by the same factor.
Result<double> ClipByNorm(TensorView x, float clip_norm);

// ---- Optimizers (fused: one pass over param, grad and slots) --------------------------

// Initialises the cfg.kind's slots: AdaGrad's accumulator to cfg.initial_accumulator,
// every other slot to 0. REQUIRES slots.size() == NumOptimizerSlots(cfg.kind), f32.
Status InitOptimizerSlots(const OptimizerConfig& cfg, std::span<const TensorView> slots);

// Applies one update to `param` (f32) with gradient `grad` (f32, same numel), reading and
// updating `slots` (NumOptimizerSlots(cfg.kind) f32 tensors, each param's numel; order:
// momentum {v}, AdaGrad {acc}, Adam/AdamW {m, v}). `grad` is read only.
// `step` is the 1-based number of updates applied to this parameter, this one included
// (Adam bias correction uses 1 - beta^step); REQUIRES step >= 1.
// Per element, with g = grad, p = param, wd = cfg.weight_decay, lr = cfg.lr:
//   SGD, Momentum, AdaGrad, Adam: g += wd * p  (L2, coupled)
//   SGD:      p -= lr * g
//   Momentum: v = mu * v + g;  p -= lr * (nesterov ? g + mu * v : v)
//   AdaGrad:  acc += g * g;    p -= lr * g / (sqrt(acc) + eps)
//   Adam(W):  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//             p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
//   AdamW:    additionally p -= lr * wd * p (decoupled, using p before this step).
// This op does NOT clip: cfg.clip_norm is ignored here. Callers clip first (ClipByNorm per
// tensor/chunk, or a global norm with L2NormSquared + Scale).
// `grad_scale` (finite): the update reads g = grad_scale * grad instead of grad, rounded
// as Scale rounds it, so the result is bitwise Scale(copy of grad) then this op on the
// copy; `grad` is still only read (the servers' 1/W of grad_reduce=mean). 1 costs nothing.
Status ApplyOptimizer(const OptimizerConfig& cfg, int64_t step, TensorView param,
                      TensorView grad, std::span<const TensorView> slots, float grad_scale = 1.0f);

// ApplyOptimizer on host memory the caller has sized: param, grad and the kind's slots
// (s0, s1; nullptr where the kind has fewer) of n floats each, on the CPU backend. The
// same checks of cfg, step and grad_scale and the same update, bitwise; no TensorView is
// built (each holds a heap-allocated shape), so the servers' dense update, one call per
// block of a chunk, allocates nothing.
Status ApplyOptimizerHost(const OptimizerConfig& cfg, int64_t step, float* param, const float* grad, float* s0,
                          float* s1, int64_t n, float grad_scale = 1.0f);

// The same update for many rows of one sparse table in one call (host memory): row i is
// rows[i], `width` values followed by its NumOptimizerSlots(cfg.kind) slots of `width`
// each (slot k at rows[i] + (k + 1) * width); its gradient is grad[i * width, +width);
// steps[i] its 1-based update count, this one included. Unlike ApplyOptimizer, each row's
// gradient is first clipped in place to cfg.clip_norm when it is > 0, with exactly
// ClipByNorm's arithmetic, so a row's bits equal ClipByNorm + ApplyOptimizer on it.
// The config and every update count are checked once per call, before any row changes;
// the CPU backend then updates the rows in blocks of 256, one call per block (rows are
// host memory: the servers' stores).
// `grad_scale` as ApplyOptimizer's (the gradient is then only read). Clipping needs the
// scaled gradient first, so grad_scale != 1 with cfg.clip_norm > 0 is refused
// (kInvalidArgument): such callers scale a copy and pass 1.
Status ApplyOptimizerRows(const OptimizerConfig& cfg, int64_t width, std::span<float* const> rows,
                          std::span<const int64_t> steps, float* grad, float grad_scale = 1.0f);

// ---- GEMM ------------------------------------------------------------------------------

// c = alpha * op(a) @ op(b) + beta * c, row-major 2-D f32; op(x) = trans ? x^T : x.
// op(a) is [M, K], op(b) is [K, N], c is [M, N]. beta == 0 ignores c's old contents
// (NaN in c does not propagate). CPU: OpenBLAS cblas_sgemm. CUDA: cublasSgemm (FP32
// math; TF32 is not enabled). K == 0 gives c = beta * c.
Status Gemm(bool trans_a, bool trans_b, float alpha, TensorView a, TensorView b, float beta,
            TensorView c);

// ---- Fused bias + activation ------------------------------------------------------------

// Numbers are part of no format; append only for readability of logs.
enum class Activation : uint8_t {
  kIdentity = 0,
  kRelu = 1,
  kGelu = 2,  // tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
};

// y[r, c] = act(x[r, c] + bias[c]). x, y: f32 [rows, cols]; bias: f32 [cols] or absent.
// y may alias x (then keep a copy of x if you need the backward).
Status BiasActivationForward(Activation act, TensorView x, TensorView bias, TensorView y);

// Backward of BiasActivationForward, given the forward's input x and bias (the same
// views; bias may be absent) and dy = dL/dy:
//   dpre[r, c] = dy[r, c] * act'(x[r, c] + bias[c])     (grad wrt the pre-activation,
//                                                       which is also dL/dx)
//   dbias[c]   = sum_r dpre[r, c]                       (overwritten, not accumulated)
// dpre may alias dy. dbias (f32 [cols]) may be absent. ReLU's derivative at 0 is 0.
Status BiasActivationBackward(Activation act, TensorView dy, TensorView x, TensorView bias,
                              TensorView dpre, TensorView dbias);

// ---- Losses --------------------------------------------------------------------------

// Softmax cross-entropy, forward and backward in one pass, numerically stable (row max
// subtracted). logits: f32 [N, C], C >= 1; labels: i32 [N], each in [0, C).
// Returns the mean loss over N rows (0 for N == 0). If dlogits (f32 [N, C]) is present,
// writes dlogits = (softmax(logits) - onehot(labels)) / N. dlogits may alias logits.
// A label outside [0, C) gives kInvalidArgument (nothing meaningful is written).
Result<double> SoftmaxCrossEntropy(TensorView logits, TensorView labels, TensorView dlogits);

// out[i] = argmax_c logits[i, c] (first maximum on ties). logits f32 [N, C], C >= 1;
// out i32 [N]. A row containing NaN gives some index in [0, C) (which one may differ
// between backends).
Status ArgMax(TensorView logits, TensorView out);
// Number of rows whose ArgMax equals the label. logits f32 [N, C]; labels i32 [N].
Result<int64_t> CountCorrect(TensorView logits, TensorView labels);

// Sigmoid binary cross-entropy, forward and backward in one pass, stable for any logit:
// loss_i = max(x,0) - x*y + log1p(exp(-|x|)). logits, labels: f32 with equal numel N
// (labels are targets in [0, 1], normally 0 or 1). Returns the mean loss (0 for N == 0).
// If dlogits (f32, numel N) is present, writes dlogits = (sigmoid(x) - y) / N; it may
// alias logits.
Result<double> SigmoidBinaryCrossEntropy(TensorView logits, TensorView labels,
                                         TensorView dlogits);

// ---- Embeddings ------------------------------------------------------------------------

// out[i, :] = table[indices[i], :]. table f32 [V, D]; indices i64 or u64 [N] (or any shape
// of N elements); out f32 [N, D]. An index outside [0, V) gives kInvalidArgument.
Status EmbeddingGather(TensorView table, TensorView indices, TensorView out);

// table[indices[i], :] += grads[i, :], duplicates accumulate. table f32 [V, D]; indices i64
// or u64 [N]; grads f32 [N, D]. An index outside [0, V) gives kInvalidArgument and leaves
// table unchanged. CPU: deterministic (input order). CUDA: float atomics, so the order of
// additions to a duplicated row, and its last bits, can vary between runs; use
// ScatterAddUnique for a deterministic sparse gradient.
Status ScatterAdd(TensorView indices, TensorView grads, TensorView table);

// Merges duplicate keys of a sparse gradient. keys: u64 or i64 (non-negative) [N];
// grads: f32 [N, D]. On success *unique_keys holds the distinct keys in ascending order
// (host memory, always) and *summed is an f32 [U, D] tensor on grads' device whose row j
// is the sum of the grads rows with key (*unique_keys)[j], added in input order
// (deterministic on both backends). A CUDA `summed` owns device memory (freed when its
// last Buffer reference dies). REQUIRES unique_keys, summed non-null.
Status ScatterAddUnique(TensorView keys, TensorView grads, std::vector<uint64_t>* unique_keys,
                        Tensor* summed);

// The deterministic scatter-add of a sparse model's embedding gradients, with the
// grouping computed by the caller (the worker already knows which batch positions share
// a unique row): out[j, :] = +0 + rows[order[t], :] + rows[order[t + 1], :] + ... for t
// in [offsets[j], offsets[j + 1]), added in t order (an empty group gives +0). With order
// listing each row's positions in ascending order, the result is bitwise ScatterAdd of
// rows into a zeroed out on the CPU, on both backends (no atomics).
// rows f32 [N, D]; order i64 [M], each in [0, N); offsets i64 [U + 1] with offsets[0] == 0,
// offsets[U] == M, non-decreasing; out f32 [U, D] (overwritten). All on one device. A bad
// order entry or offsets array gives kInvalidArgument and writes nothing.
Status GroupedRowSum(TensorView rows, TensorView order, TensorView offsets, TensorView out);

// ---- Feature interaction (DLRM) -------------------------------------------------------

// DLRM's "dot" interaction: for every example b and pair i > j of its F feature vectors,
// out[b, i (i - 1) / 2 + j] = dot(x[b, i, :], x[b, j, :]) (kernels/math/interaction.h).
// x: f32 [B, F, D] with F >= 2; out: f32 [B, F (F - 1) / 2].
Status PairwiseDot(TensorView x, TensorView out);
// Its backward: dx[b, i, :] = sum over j != i of dout[b, pair(i, j)] * x[b, j, :], given
// the forward's x and dout = dL/dout (shapes as above). dx (f32 [B, F, D]) is overwritten,
// and must not alias x or dout.
Status PairwiseDotBackward(TensorView x, TensorView dout, TensorView dx);

// ---- Casts (gradient compression) ------------------------------------------------------

// dst = src converted elementwise. Supported: f32 -> f16, f32 -> bf16, f16 -> f32,
// bf16 -> f32, and f32 -> f32 (copy). Narrowing rounds to nearest, ties to even; values
// beyond the f16 range become +-Inf; NaN stays NaN (quiet) and +-Inf stays +-Inf; f16
// subnormals are produced and read exactly. REQUIRES equal numel, same device.
Status Cast(TensorView src, TensorView dst);

}  // namespace tessera::kernels
