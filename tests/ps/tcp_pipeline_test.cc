// A dense push/pull to a server reached over TCP goes as several requests in flight, cut
// at chunk boundaries (ClientOptions::tcp_request_bytes), through a real coordinator,
// server and worker in this process (real ZeroMQ sockets, --shm=off): the values are
// bitwise those of one whole request for every optimizer, in asp and bsp, without
// authentication and under --auth=mac; on one host, once the shared-memory channel is
// on, requests stay whole (the channel streams them).
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/ps/inproc_job.h"

DECLARE_string(shm);

namespace tessera {
namespace {

constexpr uint64_t kJob = 4545;
constexpr uint64_t kChunkBytes = 256 << 10;
constexpr int64_t kElements = 300000;  // 1.2 MB: five chunks of 256 KiB on the one server

using Cluster = testing::InProcJob;

testing::InProcJobOptions JobWith(bool mac, uint64_t tcp_request_bytes, SyncMode sync = SyncMode::kAsp) {
  testing::InProcJobOptions o;
  o.job_id = kJob;
  o.chunk_bytes = kChunkBytes;
  o.sync = sync;
  o.mac = mac;
  o.tcp_request_bytes = tcp_request_bytes;
  return o;
}

struct Run {
  std::vector<std::vector<float>> values;  // per param, after the last step
  std::vector<std::vector<float>> first;   // per param, after the first step
  uint64_t requests = 0;                   // requests the worker sent for the steps
};

// `steps` steps over every param: even steps a push+pull, odd ones a push then a pull.
Run RunSteps(const testing::InProcJobOptions& s, int steps) {
  FLAGS_shm = "off";
  const std::vector<ParamSpec> ps = testing::EveryOptimizer(kElements);
  Run r;
  r.values.assign(ps.size(), std::vector<float>(kElements));
  {
    Cluster c(s, ps);
    const uint64_t before = c.requests();
    for (int step = 0; step < steps; ++step) {
      for (uint32_t id = 0; id < ps.size(); ++id) {
        std::vector<float> g = testing::StepGradient(kElements, step, id);
        if (step % 2 == 0) {
          EXPECT_OK(c.PushPull(id, g, r.values[id], step));
          if (step == 0) r.first.push_back(r.values[id]);
        } else {
          EXPECT_OK(c.Push(id, g, step));
          EXPECT_OK(c.Pull(id, r.values[id], step));
        }
      }
    }
    r.requests = c.requests() - before;
  }
  FLAGS_shm = "auto";
  return r;
}

void ExpectCutIsBitwiseWhole(bool mac, SyncMode sync) {
  constexpr int kSteps = 4;
  const Run whole = RunSteps(JobWith(mac, 0, sync), kSteps);
  const Run cut = RunSteps(JobWith(mac, kChunkBytes, sync), kSteps);
  // Per param and pair of steps: a push+pull, a push and a pull; five chunks each when cut.
  const uint64_t requests = kSteps / 2 * 3 * whole.values.size();
  EXPECT_EQ(whole.requests, requests);
  EXPECT_EQ(cut.requests, 5 * requests) << "every request went as one per chunk";
  for (size_t id = 0; id < whole.values.size(); ++id) {
    EXPECT_EQ(std::memcmp(whole.values[id].data(), cut.values[id].data(), kElements * sizeof(float)), 0)
        << "param " << id;
    EXPECT_NE(std::memcmp(cut.first[id].data(), cut.values[id].data(), kElements * sizeof(float)), 0)
        << "param " << id << " was updated";
  }
}

TEST(TcpPipeline, CutRequestsAreBitwiseOneWholeRequestAsp) { ExpectCutIsBitwiseWhole(false, SyncMode::kAsp); }
TEST(TcpPipeline, CutRequestsAreBitwiseOneWholeRequestBsp) { ExpectCutIsBitwiseWhole(false, SyncMode::kBsp); }
TEST(TcpPipeline, CutRequestsAreBitwiseOneWholeRequestUnderMac) { ExpectCutIsBitwiseWhole(true, SyncMode::kAsp); }

TEST(TcpPipeline, LargerCutsTakeWholeChunksAndOneChunkStaysWhole) {
  FLAGS_shm = "off";
  ParamSpec big = testing::EveryOptimizer(kElements)[0];
  ParamSpec small = big;
  small.name = "small";
  small.shape = {1000};  // one chunk: nothing to cut
  {
    // 600 KiB: two chunks per request, so the five chunks go as 2 + 2 + 1.
    Cluster c(JobWith(false, 600 << 10), {big, small});
    std::vector<float> g(kElements, 0.125f), out(kElements);
    uint64_t before = c.requests();
    ASSERT_OK(c.PushPull(0, g, out, 0));
    EXPECT_EQ(c.requests() - before, 3u);
    std::vector<float> gs(1000, 0.125f), outs(1000);
    before = c.requests();
    ASSERT_OK(c.PushPull(1, gs, outs, 0));
    EXPECT_EQ(c.requests() - before, 1u);
  }
  FLAGS_shm = "auto";
}

TEST(TcpPipeline, SameHostRequestsStayWholeOnceTheChannelIsOn) {
  FLAGS_shm = "auto";
  Cluster c(JobWith(false, kChunkBytes), testing::EveryOptimizer(kElements));
  std::vector<float> g(kElements, 0.0f), out(kElements);
  // The channel comes up after the first requests; until then they go cut, over TCP.
  bool whole = false;
  for (int step = 0; step < 200 && !whole; ++step) {
    const uint64_t before = c.requests();
    ASSERT_OK(c.PushPull(0, g, out, step));
    whole = c.requests() - before == 1;
  }
  EXPECT_TRUE(whole) << "requests were still cut with the shared-memory channel on";
}

}  // namespace
}  // namespace tessera
