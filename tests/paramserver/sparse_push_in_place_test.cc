// A leading worker's sparse push sums its rows straight into a slot of the same-host
// server's arena (worker/client_sparse.cc), so the push goes without ShmTxArena::Put's
// copy: through a real coordinator, server and client in this process (real ZeroMQ
// sockets, local link and shared-memory arenas), each push past the channel's set-up is
// one in-place payload, and the rows pulled after every push (keys with duplicates, in
// any order) are bitwise those of a caller that does not lead (heap rows, copied into the
// arena at send: the path SparseGroupsReuse checks against a reference). The client's threads and a leading caller share the arena: scripts/test.sh's
// TSan and ASan lists.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/metrics_registry.h"
#include "tests/ps/inproc_job.h"
#include "tests/testutil/testutil.h"
#include "worker/client.h"

namespace tessera {
namespace {

constexpr int64_t kWidth = 16;

uint64_t InPlaceSent() { return metrics::Global().GetCounter("shm_in_place_payloads_sent_total").value(); }

std::vector<ParamSpec> Table() {
  ParamSpec p;
  p.name = "t";
  p.kind = ParamKind::kSparse;
  p.shape = {kWidth};
  p.init = InitKind::kConstant;
  p.init_scale = 0.5f;
  p.optimizer.kind = OptimizerKind::kSgd;
  p.optimizer.lr = 1.0f;
  return {p};
}

// A step's keys, with duplicates and in no order (~1,900 distinct of 3,000, so a push's
// rows, ~120 KB, are above --shm_min_bytes and go through the arena), and its gradient
// rows of both signs.
struct Batch {
  std::vector<Key> keys = std::vector<Key>(3000);
  std::vector<float> grads = std::vector<float>(3000 * kWidth);
  explicit Batch(std::mt19937_64& rng) {
    std::uniform_int_distribution<Key> key(0, 3000);
    std::uniform_real_distribution<float> g(-1.0f, 1.0f);
    for (auto& k : keys) k = key(rng) * 7919;
    for (auto& x : grads) x = g(rng);
  }
};

// Pull-then-push steps; returns every pull's rows. `in_place`: how many pushes went in
// place, of those after the first that did (the channel turns on after the first requests).
std::vector<std::vector<float>> RunSteps(bool caller_leads, int* in_place, int* pushes_after) {
  testing::InProcJobOptions o;
  o.job_id = caller_leads ? 6161 : 6162;
  o.caller_leads = caller_leads;
  testing::InProcJob job(o, Table());
  worker::Client& client = job.client();
  std::mt19937_64 rng(11);
  std::vector<std::vector<float>> pulls;
  *in_place = 0;
  *pushes_after = 0;
  bool on = false;
  for (int64_t step = 0; step < 40; ++step) {
    Batch batch(rng);
    const std::vector<Key>& keys = batch.keys;
    std::vector<float>& grads = batch.grads;
    std::vector<float> out(keys.size() * kWidth, -1.0f);
    const auto n = static_cast<int64_t>(keys.size());
    EXPECT_OK(client.PullSparse(0, keys, {out.data(), DType::kF32, {n, kWidth}, Device::kCPU}, step)
                  .Wait(std::chrono::seconds(30)));
    pulls.push_back(out);
    // A push's reply carries no payload: any in-place payload of this call is its rows.
    const uint64_t before = InPlaceSent();
    EXPECT_OK(client.PushSparse(0, keys, {grads.data(), DType::kF32, {n, kWidth}, Device::kCPU}, step)
                  .Wait(std::chrono::seconds(30)));
    const uint64_t sent = InPlaceSent() - before;
    EXPECT_LE(sent, 1u);
    on = on || sent == 1;
    if (on) {
      ++*pushes_after;
      *in_place += static_cast<int>(sent);
    }
  }
  return pulls;
}

TEST(SparsePushInPlace, ALeadersRowsGoFromTheArenaSlotAndPullBackBitwise) {
  int in_place = 0, pushes = 0;
  const auto led = RunSteps(/*caller_leads=*/true, &in_place, &pushes);
  EXPECT_GE(pushes, 30) << "the shared-memory channel never turned on, or late";
  EXPECT_EQ(in_place, pushes) << "a push after the channel turned on was copied into the arena";
  int plain_in_place = 0, plain_pushes = 0;
  const auto plain = RunSteps(/*caller_leads=*/false, &plain_in_place, &plain_pushes);
  EXPECT_EQ(plain_in_place, 0) << "a caller that does not lead took an arena slot";
  ASSERT_EQ(led.size(), plain.size());
  for (size_t i = 0; i < led.size(); ++i) ASSERT_EQ(led[i], plain[i]) << "pull " << i;
  EXPECT_NE(led.front(), led.back()) << "the pushes changed no row";
}

}  // namespace
}  // namespace tessera
