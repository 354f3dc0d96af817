// Same-host push+pulls of a payload big enough (>= kStreamCopyBytes) that every copy on
// the path bypasses the caches (common/stream_copy.h): the worker's gradient into its
// arena, the server's updated values into its reply arena, the worker's reply into the
// caller's tensor. Through a real coordinator, server and worker in this process (real
// ZeroMQ sockets and shared-memory arenas), streamed and not: each reply, and a pull after
// it, is bitwise the optimizer applied here to local copies (kernels::ApplyUpdate without
// a mirror, which copies nothing), for every optimizer. The element count leaves a tail
// that is not a whole cache line, and the caller's buffers start off 16-byte alignment.
// Each of those copies takes StreamCopy (counted), also when the server's chunks are small.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

#include "common/metrics_registry.h"
#include "common/stream_copy.h"
#include "kernels/optimizer_step.h"
#include "tests/ps/inproc_job.h"

DECLARE_bool(shm_stream);

namespace tessera {
namespace {

// 4.4 MB: above kStreamCopyBytes; 1,100,003 floats end 12 bytes into a cache line.
constexpr int64_t kElements = 1100003;
static_assert(kElements * sizeof(float) >= kStreamCopyBytes);

uint64_t Counter(const char* name) { return metrics::Global().GetCounter(name).value(); }

// A float vector whose data starts 4 bytes past a 64-byte boundary (a caller's tensor need
// not be aligned): the copies' unaligned head.
class Unaligned {
 public:
  explicit Unaligned(float fill) : storage_(kElements + 16, fill) {
    const auto addr = reinterpret_cast<uintptr_t>(storage_.data());
    offset_ = ((64 - addr % 64) % 64) / sizeof(float) + 1;
  }
  TensorView view() { return {storage_.data() + offset_, DType::kF32, {kElements}, Device::kCPU}; }
  std::span<float> span() { return {storage_.data() + offset_, static_cast<size_t>(kElements)}; }

 private:
  std::vector<float> storage_;
  size_t offset_ = 0;
};

// `chunk_bytes`: the whole param in one chunk, or in 256 KiB chunks (the server mirrors
// the reply chunk by chunk, each below kStreamCopyBytes: ScopedPayloadBytes says the reply's size).
void RunAndCompare(bool stream, uint64_t chunk_bytes) {
  FLAGS_shm_stream = stream;
  std::vector<ParamSpec> ps = testing::EveryOptimizer(kElements);
  ps.push_back(ps[0]);  // "warm": its push+pulls wait for the shared-memory channel
  ps.back().name = "warm";
  const uint32_t warm = static_cast<uint32_t>(ps.size() - 1);
  testing::InProcJobOptions o;
  o.chunk_bytes = chunk_bytes;
  const uint64_t streamed_before = Counter("shm_streamed_payloads_sent_total");
  uint64_t shm_before = 0;
  {
    testing::InProcJob c(o, ps);
    // The channel turns on after the first requests; until then payloads go over TCP.
    std::vector<float> wg(kElements, 0.0f), wo(kElements);
    for (int i = 0; i < 100; ++i) {
      shm_before = Counter("shm_bytes_received_total");
      ASSERT_OK(c.PushPull(warm, wg, wo, i));
      if (Counter("shm_bytes_received_total") - shm_before == 2 * kElements * sizeof(float)) break;
    }
    shm_before = Counter("shm_bytes_received_total");
    const uint64_t streamed_bytes_before = g_stream_copied_bytes.load();
    for (uint32_t id = 0; id < warm; ++id) {
      const OptimizerConfig& cfg = ps[id].optimizer;
      SCOPED_TRACE("param " + ps[id].name + (stream ? ", streamed" : ", not streamed"));
      // The reference, chunk by chunk as the server updates (a clipped param clips per chunk).
      const uint64_t ce = chunk_bytes / sizeof(float), chunks = (kElements + ce - 1) / ce;
      const auto n_slots = static_cast<uint64_t>(NumOptimizerSlots(cfg.kind));
      std::vector<float> param(kElements, 0.5f);
      std::vector<std::vector<float>> slots(chunks);
      for (uint64_t k = 0; k < chunks; ++k) {
        slots[k].resize(n_slots * (std::min<uint64_t>(kElements, (k + 1) * ce) - k * ce));
        ASSERT_OK(kernels::InitSlots(cfg, slots[k], slots[k].size() / std::max<uint64_t>(n_slots, 1)));
      }
      Unaligned grad(0.0f), out(-1.0f), pulled(-2.0f);
      for (int64_t step = 0; step < 3; ++step) {
        const std::vector<float> g = testing::StepGradient(kElements, step, id);
        std::copy(g.begin(), g.end(), grad.span().begin());
        ASSERT_OK(c.client().PushPull(id, grad.view(), out.view(), step).Wait(std::chrono::seconds(30)));
        std::vector<float> local_g = g;
        for (uint64_t k = 0; k < chunks; ++k) {
          const uint64_t b = k * ce, len = std::min<uint64_t>(kElements, b + ce) - b;
          ASSERT_OK(kernels::ApplyUpdate(cfg, step + 1, std::span<float>(param).subspan(b, len), slots[k],
                                         std::span<float>(local_g).subspan(b, len)));
        }
        ASSERT_EQ(std::memcmp(out.span().data(), param.data(), kElements * sizeof(float)), 0) << "step " << step;
        ASSERT_OK(c.client().Pull(id, pulled.view(), step).Wait(std::chrono::seconds(30)));
        ASSERT_EQ(std::memcmp(pulled.span().data(), param.data(), kElements * sizeof(float)), 0) << "step " << step;
      }
      EXPECT_NE(param[1], 0.5f) << "the optimizer changed the values";
    }
    // Past the caches, every step of every param: the gradient into the worker's arena,
    // the update into the reply, the reply and the pull's reply into the caller's tensor.
    EXPECT_EQ(g_stream_copied_bytes.load() - streamed_bytes_before, 4u * 3u * warm * kElements * sizeof(float));
  }
  FLAGS_shm_stream = true;
  // Every request and reply went through the arenas (not TCP): 3 payloads per step and
  // param (push+pull's request and reply, the pull's reply).
  EXPECT_EQ(Counter("shm_bytes_received_total") - shm_before, 3u * 3u * warm * kElements * sizeof(float));
  // Streamed: each push+pull's request, and its reply but the clipped param's (its
  // update needs the whole gradient first).
  const uint64_t streamed = Counter("shm_streamed_payloads_sent_total") - streamed_before;
  if (stream) {
    EXPECT_GE(streamed, 3u * (2u * warm - 1u));
  } else {
    EXPECT_EQ(streamed, 0u);
  }
}

TEST(ShmLargePushPull, StreamedRepliesAreBitwiseTheOptimizer) { RunAndCompare(true, 8 << 20); }
TEST(ShmLargePushPull, UnstreamedRepliesAreBitwiseTheOptimizer) { RunAndCompare(false, 8 << 20); }
TEST(ShmLargePushPull, ChunkedRepliesAreBitwiseTheOptimizer) { RunAndCompare(true, 256 << 10); }

}  // namespace
}  // namespace tessera
