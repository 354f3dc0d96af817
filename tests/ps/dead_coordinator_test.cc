// A worker whose coordinator was killed keeps serving its data requests (issue 17).
//
// The coordinator is a real `tessera train` rank 0 process and is SIGKILLed; the server
// and the worker's Client run here, over real ZeroMQ sockets. The worker then reports
// more steps than the control socket's queue to the dead coordinator holds. Before
// sends on a loop stopped waiting, every report past that queue blocked the client's
// loop for send_timeout_ms (5 s), and with it the sends and replies of every data
// request: a pull to the live server timed out. Now those reports wait in the socket's
// bounded outbox or are refused at once, each pull completes promptly, and a control
// request the full queue cannot take fails at once, naming the coordinator.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "tests/wire/spawn_util.h"
#include "worker/client.h"

namespace tessera {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kJob = 3131;
constexpr int64_t kElements = 4096;

TEST(DeadCoordinator, DataKeepsFlowingAndControlRequestsFailAtOnce) {
  // Rank 0 of a bare job of 1 server and 1 worker (this process plays both). Its
  // heartbeat timeout is long, so nothing here is declared dead by silence: what is
  // measured is the client's loop, not failure detection.
  const int port = testing::FreeTcpPort();
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  setenv("TESSERA_RANK", "0", 1);
  setenv("TESSERA_WORLD_SIZE", "3", 1);
  setenv("TESSERA_COORDINATOR_PORT", std::to_string(port).c_str(), 1);
  setenv("TESSERA_JOB_ID", std::to_string(kJob).c_str(), 1);
  const pid_t coordinator = wire::testing::SpawnPeer(
      testing::TesseraBinary(), {"train", "--servers=1", "--heartbeat_timeout_s=120", "--heartbeat_interval_s=0.1"});
  ASSERT_GT(coordinator, 0);

  auto ctx = *wire::Context::Create();
  paramserver::ServerOptions so;
  so.coordinator = endpoint;
  so.job_id = kJob;
  so.rank = 1;
  auto server = paramserver::ParamServer::Start(so, ctx);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  worker::ClientOptions wo;
  wo.coordinator = endpoint;
  wo.job_id = kJob;
  wo.rank = 2;
  wo.request_timeout = 60s;
  auto client = worker::Client::Connect(wo, ctx);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ParamSpec w;
  w.name = "w";
  w.shape = {kElements};
  w.init = InitKind::kConstant;
  w.init_scale = 0.25f;
  ASSERT_OK((*client)->DeclareParams({w}));
  std::vector<float> out(kElements, 0.0f);
  const TensorView view{out.data(), DType::kF32, {kElements}, Device::kCPU};
  ASSERT_OK((*client)->Pull(0, view, 0).Wait(10s));

  ASSERT_EQ(kill(coordinator, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(coordinator, &status, 0), coordinator);

  // More step reports than ZeroMQ's queue to the coordinator (send_hwm, 1000) and the
  // outbox behind it hold: the queue fills whatever the reconnect timing.
  for (int s = 1; s <= 5000; ++s) (*client)->ReportStep(s, 0.5, 16);

  // Every pull is answered by the live server promptly: the loop did not stall.
  for (int i = 0; i < 20; ++i) {
    std::fill(out.begin(), out.end(), 0.0f);
    const auto start = Clock::now();
    const Status st = (*client)->Pull(0, view, 0).Wait(1s);
    ASSERT_TRUE(st.ok()) << "pull " << i << " after the coordinator was killed: " << st.ToString();
    EXPECT_LT(Clock::now() - start, 1s) << "pull " << i;
    ASSERT_EQ(out[0], 0.25f);
    ASSERT_EQ(out[kElements - 1], 0.25f);
  }

  // A barrier cannot be queued behind the full queue: it fails at once (far inside
  // send_timeout_ms), naming the coordinator, not at its own 30 s deadline.
  const auto start = Clock::now();
  const Status barrier = (*client)->Barrier(30s);
  EXPECT_LT(Clock::now() - start, 1s) << barrier.ToString();
  EXPECT_EQ(barrier.code(), StatusCode::kResourceExhausted) << barrier.ToString();
  EXPECT_NE(barrier.message().find(endpoint), std::string::npos) << barrier.ToString();
  // The client still counts the job alive: only the heartbeat timeout decides that.
  EXPECT_OK((*client)->health());

  // Finish's SHUTDOWN cannot go either: closing waits at most the socket's linger (1 s).
  const auto closing = Clock::now();
  (*client)->Finish(0, "test done").IgnoreError();
  client->reset();
  server->reset();
  EXPECT_LT(Clock::now() - closing, 10s);
}

}  // namespace
}  // namespace tessera
