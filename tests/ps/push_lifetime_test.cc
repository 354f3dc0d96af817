// A zero-copy dense push that times out against a stalled server must
// not leave ZeroMQ reading the caller's memory after the Handle completes.
//
// A real server process (forked before this process starts any thread) is stopped with
// SIGSTOP; a 32 MiB push to it cannot fit in the loopback socket buffers, so ZeroMQ still
// holds the frame when the request's deadline passes. The test waits for the Handle,
// frees the gradient as the contract allows once it is done, and lets the server run
// again (SIGCONT). The old client completed the Handle at the deadline while ZeroMQ kept
// sending from the freed memory: ASan reports the read in send(), and without ASan the
// send hits unmapped memory (EFAULT, which libzmq asserts on). The fixed client completes
// the Handle only after ZeroMQ released the frame, says the push may have been applied,
// and the server never sees the freed bytes.
#include <gflags/gflags.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "coordinator/coordinator.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "tests/wire/raw_worker.h"
#include "worker/client.h"

DECLARE_string(shm);

namespace tessera {
namespace {

constexpr uint64_t kJob = 2020;
constexpr int64_t kElements = 8 << 20;  // 32 MiB of f32: far more than loopback buffers hold

// The server, in a child process: reads the coordinator's endpoint from `fd`, serves the
// job until the coordinator ends it, exits 0 (1 when it could not start).
[[noreturn]] void ServerChild(int fd) {
  std::string endpoint;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') endpoint += c;
  auto ctx = wire::Context::Create();
  if (!ctx.ok()) _exit(1);
  paramserver::ServerOptions so;
  so.coordinator = endpoint;
  so.job_id = kJob;
  so.rank = 1;
  auto s = paramserver::ParamServer::Start(so, *ctx);
  if (!s.ok()) _exit(1);
  (*s)->Wait(std::chrono::seconds(120));
  _exit(0);
}

TEST(PushLifetime, TimedOutPushCompletesOnlyAfterZeroMqReleasedTheCallersMemory) {
  // This is about ZeroMQ's zero-copy TCP send. With same-host shared memory (the
  // default) the payload is copied into the arena at Send and only a small descriptor
  // waits in ZeroMQ, so the whole push reaches the server after SIGCONT and is applied
  // (as "may have been applied" allows). Set before the fork: the server inherits it.
  FLAGS_shm = "off";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t server = fork();  // before any thread of this process exists
  ASSERT_GE(server, 0);
  if (server == 0) {
    close(pipefd[1]);
    ServerChild(pipefd[0]);
  }
  close(pipefd[0]);
  auto ctx = *wire::Context::Create();
  CoordinatorOptions co;
  co.job_id = kJob;
  co.shard.chunk_bytes = uint64_t{1} << 30;  // the whole parameter is one piece: one frame
  co.shard.sync = *ParseSyncPolicy("asp");
  auto coord = Coordinator::Start(co, ctx);
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  const std::string line = (*coord)->endpoint() + "\n";
  ASSERT_EQ(write(pipefd[1], line.data(), line.size()), static_cast<ssize_t>(line.size()));
  close(pipefd[1]);

  worker::ClientOptions wo;
  wo.coordinator = (*coord)->endpoint();
  wo.job_id = kJob;
  wo.rank = 2;
  wo.request_timeout = std::chrono::seconds(1);
  auto client = worker::Client::Connect(wo, ctx);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ParamSpec w;
  w.name = "w";
  w.shape = {kElements};
  w.init = InitKind::kConstant;
  w.init_scale = 1.0f;
  ASSERT_OK((*client)->DeclareParams({w}));

  ASSERT_EQ(kill(server, SIGSTOP), 0);
  auto grad = std::make_unique<float[]>(kElements);
  std::fill(grad.get(), grad.get() + kElements, 1.0f);
  worker::Handle h = (*client)->Push(0, TensorView{grad.get(), DType::kF32, {kElements}, Device::kCPU}, 0);
  const Status st = h.Wait(std::chrono::seconds(30));
  ASSERT_TRUE(h.IsDone()) << "the handle of a failed push never completed: " << st.ToString();
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_NE(st.message().find("may have been applied"), std::string::npos) << st.ToString();
  EXPECT_EQ((*client)->health().code(), StatusCode::kTimedOut) << (*client)->health().ToString();

  // The Handle is done: the caller may reuse and free the memory.
  std::fill(grad.get(), grad.get() + kElements, std::nanf(""));
  grad.reset();
  ASSERT_EQ(kill(server, SIGCONT), 0);

  // The server read what reached it (at most a truncated message, dropped) and serves a
  // pull: no NaN from the reused memory, and no update from a partial push.
  auto raw = wire::testing::RawWorkerSocket(ctx, kJob, 2, (*client)->shard_map().data().servers[0].endpoint);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto rep = wire::Call(**raw, wire::testing::DensePull((*client)->shard_map().version(), 0, 0, kElements),
                        Deadline::FromMillis(30000));
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  ASSERT_EQ(rep->num_payloads(), 1u);
  const float* v = reinterpret_cast<const float*>(rep->payload(0).data());
  for (int64_t i = 0; i < kElements; i += 4099) {
    ASSERT_EQ(v[i], 1.0f) << "mismatch at index " << i;
  }

  (*client)->Finish(1, "test done").IgnoreError();
  (*coord)->Wait(std::chrono::seconds(20));
  int status = 0;
  for (int i = 0; i < 200 && waitpid(server, &status, WNOHANG) == 0; ++i) usleep(50 * 1000);
  if (waitpid(server, &status, WNOHANG) == 0) {
    kill(server, SIGKILL);
    waitpid(server, &status, 0);
  }
}

}  // namespace
}  // namespace tessera
