// A peer that sends pulls and never reads the replies (issue 17 follow-up).
//
// Since a server's loop never waits in a send, a reply that ZeroMQ's queue to its peer
// cannot take waits in the data socket's outbox, which has no count bound (one broke
// ParamServerStress at --max_inflight=8). Without other bounds, a non-reading peer grew
// the server's memory by one reply per request, without limit. The outbox now keeps at
// most ServerOptions::outbox_bytes of payload (the largest backlog's replies go first)
// and drops a reply that waited longer than send_timeout_ms, as main's blocking send gave
// up after that long. Real sockets: an in-process coordinator and server, a raw ZeroMQ
// DEALER that floods, and a Client that keeps pulling meanwhile.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "tests/wire/raw_worker.h"
#include "worker/client.h"

DECLARE_string(shm);

namespace tessera {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kElements = 256 << 10;  // 1 MiB of f32 per reply
constexpr uint64_t kReplyBytes = kElements * sizeof(float);

struct Job {
  std::shared_ptr<wire::Context> ctx;
  std::unique_ptr<Coordinator> coord;
  std::unique_ptr<paramserver::ParamServer> server;
  std::unique_ptr<worker::Client> client;
};

// A job of one server (its outbox bounded to `outbox_bytes`; ZeroMQ's queues hold 4
// messages per peer) and one well-behaved worker that declared "w" of kElements.
void StartJob(uint64_t job_id, uint64_t outbox_bytes, Job* job) {
  // Replies through ZeroMQ's TCP pipe, where a peer that does not read backs them up.
  FLAGS_shm = "off";
  job->ctx = *wire::Context::Create();
  CoordinatorOptions co;
  co.job_id = job_id;
  co.shard.chunk_bytes = uint64_t{1} << 30;  // one piece: one reply per pull
  co.shard.sync = *ParseSyncPolicy("asp");
  auto coord = Coordinator::Start(co, job->ctx);
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  job->coord = std::move(coord).value();
  paramserver::ServerOptions so;
  so.coordinator = job->coord->endpoint();
  so.job_id = job_id;
  so.rank = 1;
  so.max_inflight = 4;
  so.outbox_bytes = outbox_bytes;
  auto server = paramserver::ParamServer::Start(so, job->ctx);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  job->server = std::move(server).value();
  worker::ClientOptions wo;
  wo.coordinator = job->coord->endpoint();
  wo.job_id = job_id;
  wo.rank = 2;
  wo.request_timeout = 10s;
  auto client = worker::Client::Connect(wo, job->ctx);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  job->client = std::move(client).value();
  ParamSpec w;
  w.name = "w";
  w.shape = {kElements};
  w.init = InitKind::kConstant;
  w.init_scale = 1.0f;
  ASSERT_OK(job->client->DeclareParams({w}));
}

// A DEALER that takes one reply into its receive queue and then reads nothing; it sends
// `n` valid pulls of all of "w".
std::unique_ptr<wire::Socket> Flood(const Job& job, uint64_t job_id, int n) {
  auto s = wire::testing::RawWorkerSocket(job.ctx, job_id, 2, job.client->shard_map().data().servers[0].endpoint,
                                          /*recv_hwm=*/1);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  for (int i = 0; i < n; ++i) {
    wire::OutMessage pull = wire::testing::DensePull(job.client->shard_map().version(), 0, 0, kElements);
    pull.header().setRequestId((*s)->NextRequestId());
    const Status st = (*s)->Send(std::move(pull));
    EXPECT_TRUE(st.ok()) << "pull " << i << ": " << st.ToString();
  }
  return std::move(s).value();
}

void StopJob(Job* job) {
  job->client->Finish(0, "test done").IgnoreError();
  job->coord->Wait(20s);
  job->server->Wait(20s);
}

TEST(ReplyBacklog, NonReadingPeerStaysUnderTheByteBoundWhileOthersPull) {
  constexpr uint64_t kJob = 4141;
  constexpr uint64_t kBound = 16 * kReplyBytes;
  constexpr int kFlood = 200;  // 200 MiB of replies unread
  Job job;
  ASSERT_NO_FATAL_FAILURE(StartJob(kJob, kBound, &job));
  auto flood = Flood(job, kJob, kFlood);
  ASSERT_NE(flood, nullptr);

  // The well-behaved worker keeps pulling while the server answers the flood; every
  // value arrives. Its replies never wait behind the non-reader's.
  std::vector<float> out(kElements);
  uint64_t max_bytes = 0;
  for (int i = 0; i < 20; ++i) {
    std::fill(out.begin(), out.end(), 0.0f);
    worker::Handle h = job.client->Pull(0, TensorView{out.data(), DType::kF32, {kElements}, Device::kCPU}, -1);
    const Status st = h.Wait(10s);
    ASSERT_TRUE(st.ok()) << "pull " << i << ": " << st.ToString();
    for (int64_t k = 0; k < kElements; k += 4099) ASSERT_EQ(out[k], 1.0f) << "pull " << i << " index " << k;
    max_bytes = std::max(max_bytes, job.server->TEST_DataOutbox().first);
  }
  // Wait until the server answered the whole flood (all but what ZeroMQ's queues and
  // the outbox hold was dropped), sampling the outbox all along.
  uint64_t dropped = 0;
  for (int i = 0; i < 400; ++i) {
    const auto [bytes, drops] = job.server->TEST_DataOutbox();
    max_bytes = std::max(max_bytes, bytes);
    dropped = drops;
    if (dropped >= kFlood - kBound / kReplyBytes - 32) break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_LE(max_bytes, kBound) << "the outbox outgrew its bound";
  EXPECT_GE(dropped, kFlood - kBound / kReplyBytes - 32) << "replies to the peer that does not read were kept";
  flood.reset();
  StopJob(&job);
}

TEST(ReplyBacklog, ReplyNotSentWithinTheSendTimeoutIsDropped) {
  constexpr uint64_t kJob = 4142;
  constexpr int kFlood = 40;
  Job job;
  ASSERT_NO_FATAL_FAILURE(StartJob(kJob, /*outbox_bytes=*/0, &job));  // only the age bound
  auto flood = Flood(job, kJob, kFlood);
  ASSERT_NE(flood, nullptr);
  // Some replies wait in the outbox, then go after send_timeout_ms (5 s): the outbox
  // empties although the peer still reads nothing.
  bool queued = false;
  std::pair<uint64_t, uint64_t> s{0, 0};
  const Deadline deadline = Deadline::FromMillis(15000);
  while (!deadline.Expired()) {
    s = job.server->TEST_DataOutbox();
    queued = queued || s.first > 0;
    if (queued && s.first == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(queued) << "no reply ever waited in the outbox: the test does not test it";
  EXPECT_EQ(s.first, 0u) << "replies the peer never read stayed past the send timeout";
  EXPECT_GT(s.second, 0u);
  // The server still serves its well-behaved worker.
  std::vector<float> out(kElements);
  ASSERT_OK(job.client->Pull(0, TensorView{out.data(), DType::kF32, {kElements}, Device::kCPU}, -1).Wait(10s));
  EXPECT_EQ(out[0], 1.0f);
  flood.reset();
  StopJob(&job);
}

}  // namespace
}  // namespace tessera
