// Same-host push+pulls of a payload big enough (>= kStreamCopyBytes) that every copy on
// the path bypasses the caches (common/stream_copy.h): the worker's gradient into its
// arena, the server's updated values into its reply arena, the worker's reply into the
// caller's tensor. Through a real coordinator, server and worker in this process (real
// ZeroMQ sockets and shared-memory arenas), streamed and not: each reply, and a pull after
// it, is bitwise the optimizer applied here to local copies (kernels::ApplyUpdate without
// a mirror, which copies nothing), for every optimizer. The element count leaves a tail
// that is not a whole cache line, and the caller's buffers start off 16-byte alignment.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

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

void RunAndCompare(bool stream) {
  FLAGS_shm_stream = stream;
  std::vector<ParamSpec> ps = testing::EveryOptimizer(kElements);
  ps.push_back(ps[0]);  // "warm": its push+pulls wait for the shared-memory channel
  ps.back().name = "warm";
  const uint32_t warm = static_cast<uint32_t>(ps.size() - 1);
  testing::InProcJobOptions o;
  o.chunk_bytes = 8 << 20;  // one chunk per param: the server mirrors the whole payload at once
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
    for (uint32_t id = 0; id < warm; ++id) {
      const OptimizerConfig& cfg = ps[id].optimizer;
      SCOPED_TRACE("param " + ps[id].name + (stream ? ", streamed" : ", not streamed"));
      std::vector<float> param(kElements, 0.5f);
      std::vector<float> slots(static_cast<size_t>(NumOptimizerSlots(cfg.kind)) * kElements);
      ASSERT_OK(kernels::InitSlots(cfg, slots, kElements));
      Unaligned grad(0.0f), out(-1.0f), pulled(-2.0f);
      for (int64_t step = 0; step < 3; ++step) {
        const std::vector<float> g = testing::StepGradient(kElements, step, id);
        std::copy(g.begin(), g.end(), grad.span().begin());
        ASSERT_OK(c.client().PushPull(id, grad.view(), out.view(), step).Wait(std::chrono::seconds(30)));
        std::vector<float> local_g = g;
        ASSERT_OK(kernels::ApplyUpdate(cfg, step + 1, param, slots, local_g));
        ASSERT_EQ(std::memcmp(out.span().data(), param.data(), kElements * sizeof(float)), 0) << "step " << step;
        ASSERT_OK(c.client().Pull(id, pulled.view(), step).Wait(std::chrono::seconds(30)));
        ASSERT_EQ(std::memcmp(pulled.span().data(), param.data(), kElements * sizeof(float)), 0) << "step " << step;
      }
      EXPECT_NE(param[1], 0.5f) << "the optimizer changed the values";
    }
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

TEST(ShmLargePushPull, StreamedRepliesAreBitwiseTheOptimizer) { RunAndCompare(true); }
TEST(ShmLargePushPull, UnstreamedRepliesAreBitwiseTheOptimizer) { RunAndCompare(false); }

}  // namespace
}  // namespace tessera
