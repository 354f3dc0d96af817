// grad_reduce=mean with 3 workers under asp, ssp and bsp: the server's optimizer reads
// each push where it arrived (bsp: each step's sum) and multiplies by 1/3 as it reads,
// instead of scaling a copy (the sum) first. Through a real coordinator, one server and three workers in this process (real
// ZeroMQ sockets, shared memory), the same pushes in the same order give bitwise the
// values, slots and update counts (the store digest) of the copying path
// (paramserver::TEST_CopyRescaledPushes), for a dense param of every optimizer and
// sparse tables; only the parameters that clip are still copied
// (tessera_server_gradient_copies_total), and the dense push+pulls' replies go streamed
// again (the update runs as the gradient arrives, so the reply is sent first).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "common/metrics_registry.h"
#include "paramserver/aggregator.h"
#include "tests/ps/inproc_job.h"
#include "tests/testutil/testutil.h"
#include "worker/client.h"

namespace tessera {
namespace {

using namespace std::chrono_literals;
constexpr int kWorkers = 3;  // 1/3 is inexact: a fused multiply would round differently
constexpr int64_t kElements = 150000;  // 600 KB: three chunks of 256 KiB, the last partial
constexpr uint64_t kChunks = 3;
constexpr int64_t kWidth = 8;
constexpr int kSteps = 4;

uint64_t Counter(const char* name) { return metrics::Global().GetCounter(name).value(); }

// testing::EveryOptimizer's dense params (the last one clips), then two sparse tables:
// Adam with weight decay, and SGD that clips.
std::vector<ParamSpec> Params() {
  std::vector<ParamSpec> ps = testing::EveryOptimizer(kElements);
  for (ParamSpec& p : ps) p.optimizer.weight_decay = 0.01f;
  for (const bool clip : {false, true}) {
    ParamSpec t;
    t.name = clip ? "emb_clipped" : "emb";
    t.kind = ParamKind::kSparse;
    t.shape = {kWidth};
    t.init = InitKind::kConstant;
    t.init_scale = 0.25f;
    t.optimizer.kind = clip ? OptimizerKind::kSgd : OptimizerKind::kAdam;
    t.optimizer.lr = 0.05f;
    t.optimizer.weight_decay = 0.01f;
    t.optimizer.clip_norm = clip ? 0.5f : 0.0f;
    ps.push_back(t);
  }
  return ps;
}

// Worker w's keys at step s: overlapping between workers and steps.
std::vector<Key> KeysOf(int w, int s) {
  std::vector<Key> keys;
  for (Key k = static_cast<Key>(w + s); k < 200; k += 3 + static_cast<Key>((w + s) % 4)) keys.push_back(k);
  return keys;
}

struct Outcome {
  uint64_t digest = 0;                       // every server's store digest, summed
  std::vector<std::vector<float>> dense;     // worker 0's last pull of each dense param
  uint64_t copies = 0, streamed = 0;         // the counters' increase over the run
};

// A job of kWorkers workers (grad_reduce=mean) that pushes the same gradients in the same
// order: step by step, worker by worker, each request waited for.
class MeanJob {
 public:
  explicit MeanJob(SyncPolicy sync)
      : job_({.job_id = 1818, .sync = sync.mode, .staleness = sync.staleness, .workers = kWorkers,
              .grad_reduce = GradReduce::kMean},
             Params()) {}

  Outcome Run() {
    const std::vector<ParamSpec> ps = Params();
    const auto dense = static_cast<uint32_t>(ps.size() - 2);  // ids [0, dense) dense, then the tables
    Outcome out;
    out.dense.assign(dense, std::vector<float>(kElements));
    const uint64_t copies = Counter("server_gradient_copies_total");
    const uint64_t streamed = Counter("shm_streamed_payloads_sent_total");
    for (int s = 0; s < kSteps; ++s) {
      for (int w = 0; w < kWorkers; ++w) {
        worker::Client& c = job_.client(w);
        for (uint32_t id = 0; id < dense; ++id) {
          std::vector<float> g = testing::StepGradient(kElements, s * kWorkers + w, id);
          // Even steps a push+pull, odd ones a push then a pull.
          if (s % 2 == 0) {
            EXPECT_OK(c.PushPull(id, testing::InProcJob::View(g), testing::InProcJob::View(out.dense[id]), s).Wait(30s));
          } else {
            EXPECT_OK(c.Push(id, testing::InProcJob::View(g), s).Wait(30s));
          }
        }
        for (uint32_t id = dense; id < ps.size(); ++id) {
          const std::vector<Key> keys = KeysOf(w, s);
          std::vector<float> g = testing::StepGradient(static_cast<int64_t>(keys.size()) * kWidth, s * kWorkers + w, id);
          TensorView rows{g.data(), DType::kF32, {static_cast<int64_t>(keys.size()), kWidth}, Device::kCPU};
          EXPECT_OK(c.PushSparse(id, keys, rows, s).Wait(30s));
        }
      }
    }
    out.copies = Counter("server_gradient_copies_total") - copies;
    out.streamed = Counter("shm_streamed_payloads_sent_total") - streamed;
    for (uint32_t id = 0; id < dense; ++id) {
      EXPECT_OK(job_.client().Pull(id, testing::InProcJob::View(out.dense[id]), kSteps - 1).Wait(30s));
    }
    EXPECT_OK(job_.client().PullStoreDigest(dense, kSteps - 1, /*sparse_only=*/false, &out.digest).Wait(30s));
    return out;
  }

 private:
  testing::InProcJob job_;
};

Outcome RunJob(SyncPolicy sync, bool copy) {
  paramserver::TEST_CopyRescaledPushes(copy);
  Outcome o = MeanJob(sync).Run();
  paramserver::TEST_CopyRescaledPushes(false);
  return o;
}

class MeanFoldJob : public ::testing::TestWithParam<SyncPolicy> {};

TEST_P(MeanFoldJob, BitwiseTheScaledCopyAndOnlyClippingCopies) {
  const Outcome folded = RunJob(GetParam(), /*copy=*/false);
  const Outcome copied = RunJob(GetParam(), /*copy=*/true);
  ASSERT_NE(folded.digest, 0u);
  EXPECT_EQ(folded.digest, copied.digest) << "values, slots or update counts differ";
  for (size_t id = 0; id < folded.dense.size(); ++id) {
    EXPECT_EQ(folded.dense[id], copied.dense[id]) << "dense param " << id;
  }
  if (GetParam().mode == SyncMode::kBsp) {  // sums its pushes in buffers of its own: no copy counted
    EXPECT_EQ(folded.copies + copied.copies, 0u);
    return;
  }
  // Per push: one copy per dense chunk, one per sparse push. 6 dense params, 1 clipped;
  // 2 tables, 1 clipped.
  const uint64_t pushes = uint64_t{kSteps} * kWorkers;
  EXPECT_EQ(folded.copies, pushes * (kChunks + 1)) << "only the clipped dense param and table are copied";
  EXPECT_EQ(copied.copies, pushes * (6 * kChunks + 2));
  // Streamed: the push+pulls' gradients both ways; their replies only when the update
  // reads the gradient as it arrives (not the clipped param's, not with the copy).
  EXPECT_GT(folded.streamed, copied.streamed);
}

INSTANTIATE_TEST_SUITE_P(EverySync, MeanFoldJob,
                         ::testing::Values(SyncPolicy{SyncMode::kAsp, 0}, SyncPolicy{SyncMode::kSsp, 2},
                                           SyncPolicy{SyncMode::kBsp, 0}),
                         [](const auto& info) { return info.param.ToString() == "ssp:2" ? "ssp2" : info.param.ToString(); });

}  // namespace
}  // namespace tessera
