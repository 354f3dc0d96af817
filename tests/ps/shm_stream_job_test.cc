// Streamed same-host push and push+pull (wire/shm_stream.h) through a real coordinator, server and
// worker in this process (real ZeroMQ sockets and shared-memory arenas): the values are
// bitwise those of the unstreamed path for every optimizer (and for a clipped parameter,
// which waits for the whole gradient), and a worker whose copy stalls or scribbles its
// progress word fails that one request (after the server's deadline, or at once) while
// the server keeps serving.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/metrics_registry.h"
#include "tests/ps/inproc_job.h"
#include "wire/shm_stream.h"

DECLARE_bool(shm_stream);
DECLARE_int64(shm_stream_timeout_ms);

namespace tessera {
namespace {

constexpr int64_t kElements = 300000;  // 1.2 MB: five chunks of 256 KiB, one request

uint64_t StreamedSent() { return metrics::Global().GetCounter("shm_streamed_payloads_sent_total").value(); }

using Cluster = testing::InProcJob;

// Push+pulls of param `id` until one goes streamed both ways, request and reply (the
// channel's STREAM_OK arrives after the first requests); false when none did.
bool WarmUp(Cluster& c, uint32_t id) {
  std::vector<float> g(kElements, 0.0f), o(kElements);
  for (int i = 0; i < 200; ++i) {
    const uint64_t before = StreamedSent();
    if (!c.PushPull(id, g, o, i).ok()) return false;
    if (StreamedSent() == before + 2) return true;
  }
  return false;
}

// Every optimizer's param and a clipped one (clipping writes the gradient: it waits for
// all of it), then "warm", for warming up.
std::vector<ParamSpec> Params() {
  std::vector<ParamSpec> ps = testing::EveryOptimizer(kElements);
  ParamSpec warm = ps[0];
  warm.name = "warm";
  ps.push_back(warm);
  return ps;
}

// Every param's values after `steps` push+pulls with the same gradients.
// Every param's values after `steps` push+pulls with the same gradients. The flag is
// set before the cluster starts and restored after it stopped (its threads read it).
std::vector<std::vector<float>> RunSteps(bool stream, int steps, uint64_t* streamed) {
  FLAGS_shm_stream = stream;
  const std::vector<ParamSpec> ps = Params();
  const uint32_t warm = static_cast<uint32_t>(ps.size() - 1);
  std::vector<std::vector<float>> out(warm, std::vector<float>(kElements));
  {
    Cluster c({}, ps);
    if (stream) {
      EXPECT_TRUE(WarmUp(c, warm)) << "no push+pull went streamed";
    }
    const uint64_t before = StreamedSent();
    for (int s = 0; s < steps; ++s) {
      for (uint32_t id = 0; id < warm; ++id) {
        std::vector<float> g = testing::StepGradient(kElements, s, id);
        // Even steps a push+pull, odd ones a push then a pull (the push streams too).
        if (s % 2 == 0) {
          EXPECT_OK(c.PushPull(id, g, out[id], 1000 + s));
        } else {
          EXPECT_OK(c.Push(id, g, 1000 + s));
          EXPECT_OK(c.Pull(id, out[id], 1000 + s));
        }
      }
    }
    *streamed = StreamedSent() - before;
  }
  FLAGS_shm_stream = true;
  return out;
}

TEST(ShmStreamJob, StreamedPushPullIsBitwiseTheUnstreamedOne) {
  uint64_t streamed_on = 0, streamed_off = 0;
  const auto on = RunSteps(true, 4, &streamed_on);
  const auto off = RunSteps(false, 4, &streamed_off);
  // Every push's and push+pull's request streamed; every push+pull's reply but the
  // clipped param's (its update needs the whole gradient first, so its reply goes after
  // it, complete); no pull's or push's reply.
  EXPECT_EQ(streamed_on, 2u * (on.size() + on.size() - 1) + 2u * on.size()) << "every measured request went streamed";
  EXPECT_EQ(streamed_off, 0u);
  ASSERT_EQ(on.size(), off.size());
  for (size_t id = 0; id < on.size(); ++id) {
    EXPECT_EQ(std::memcmp(on[id].data(), off[id].data(), kElements * sizeof(float)), 0) << "param " << id;
    EXPECT_NE(on[id][1], 0.5f) << "param " << id << " was updated";
  }
}

TEST(ShmStreamJob, StalledOrScribblingSenderFailsOneRequestAndTheServerGoesOn) {
  FLAGS_shm_stream_timeout_ms = 300;
  {
    const std::vector<ParamSpec> ps = Params();
    Cluster c({}, ps);
    ASSERT_TRUE(WarmUp(c, 0));
    std::vector<float> g(kElements, 0.25f), o(kElements);
    // Stalled: the progress word says 64 KiB forever.
    wire::TEST_ForgeNextStreamProgress(64 << 10);
    const auto t0 = Clock::now();
    // The server's update waits out its deadline; its reply went first, so the worker
    // learns of the failure from the reply's progress word.
    Status st = c.PushPull(0, g, o, 500);
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_NE(st.message().find("abandoned"), std::string::npos) << st.ToString();
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(300));
    EXPECT_OK(c.PushPull(0, g, o, 501));  // the server serves the next request
    // Scribbled: a count beyond the slot.
    wire::TEST_ForgeNextStreamProgress(kElements * sizeof(float) + 4096);
    const auto t1 = Clock::now();
    st = c.PushPull(0, g, o, 502);
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(300)) << "refused at once, not at the deadline";
    EXPECT_OK(c.PushPull(0, g, o, 503));
  }
  FLAGS_shm_stream_timeout_ms = 2000;
}

}  // namespace
}  // namespace tessera
