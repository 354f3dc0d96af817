// The same-host shared-memory path between two real processes: this test and
// tests/wire/shm_peer. Payload bytes cross through shared memory (the counters show
// that no payload byte went over TCP) or, with --shm=off, over TCP; a kill -9 of either
// side leaves no segment behind, checked from outside (/dev/shm and /proc/*/maps).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "tests/testutil/testutil.h"
#include "tests/wire/peer_protocol.h"
#include "tests/wire/spawn_util.h"
#include "wire/shm_arena.h"
#include "wire/shm_stream.h"
#include "wire/socket.h"

namespace tessera::wire {
namespace {

using testing::kReplyMask;
using testing::PeerByte;
using testing::ReadLine;
using testing::WaitChild;

std::string PeerPath() { return tessera::testing::BinaryDir() + "/tests/wire/shm_peer"; }

pid_t Spawn(const std::vector<std::string>& args, int* out_fd = nullptr) {
  return testing::SpawnPeer(PeerPath(), args, out_fd);
}

std::set<std::string> DevShm() {
  std::set<std::string> names;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) names.insert(e->d_name);
    closedir(d);
  }
  return names;
}

// Processes (by pid) whose maps name an arena of process `owner`.
std::vector<std::string> MappersOf(pid_t owner) {
  const std::string needle = std::string(kShmMemfdPrefix) + std::to_string(owner) + "-";
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream maps(std::string("/proc/") + e->d_name + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      if (line.find(needle) != std::string::npos) {
        out.push_back(std::string(e->d_name) + ": " + line);
        break;
      }
    }
  }
  closedir(d);
  return out;
}

// Entries of /dev/shm that appeared since `before` and could be ours: named for
// Tessera or for `pid`. (/dev/shm is machine-wide: other jobs, e.g. Open MPI's vader
// segments, come and go meanwhile.) Our arenas are memfds and never appear there.
std::vector<std::string> NewSegmentsOf(const std::set<std::string>& before, pid_t pid) {
  std::vector<std::string> out;
  for (const std::string& name : DevShm()) {
    if (!before.count(name) &&
        (name.find("tessera") != std::string::npos || name.find(std::to_string(pid)) != std::string::npos)) {
      out.push_back(name);
    }
  }
  return out;
}

bool WaitUntilUnmapped(pid_t owner, int ms) {
  Deadline d = Deadline::FromMillis(ms);
  while (!MappersOf(owner).empty()) {
    if (d.Expired()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// The test is the ROUTER (server side), shm_peer the DEALER; both must take `mode`.
void RoundTrip(const std::string& mode) {
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.shm.mode = mode == "off" ? ShmMode::kOff : ShmMode::kAuto;
  auto router = Socket::Create(*ctx, SocketType::kRouter, o);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  const size_t n = 8 << 20;
  pid_t pid = Spawn({"push", *ep, std::to_string(n), mode});
  ASSERT_GT(pid, 0) << PeerPath();
  Result<InMessage> req = (*router)->Recv(Deadline::FromMillis(30000));
  if (!req.ok()) WaitChild(pid, 0);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  ASSERT_EQ(req->num_payloads(), 1u);
  ASSERT_EQ(req->payload(0).size(), n);
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += req->payload(0)[i] != PeerByte(i);
  EXPECT_EQ(mismatches, 0u);
  Buffer back = Buffer::Allocate(n);
  for (size_t i = 0; i < n; ++i) back.as<std::byte>()[i] = req->payload(0)[i] ^ kReplyMask;
  OutMessage rep = MakeReply(*req, Op::RESPONSE);
  rep.header().getBody().initResponse().setParamId(3);
  ASSERT_OK(rep.AddPayload(back, DType::kF32, n / 4));
  ASSERT_OK((*router)->Send(std::move(rep)));
  const int status = WaitChild(pid, 30000);
  ASSERT_TRUE(WIFEXITED(status)) << "peer did not exit cleanly";
  EXPECT_EQ(WEXITSTATUS(status), testing::kPeerOk) << "5: the bytes took the other path";

  const ShmStats s = (*router)->shm_stats();
  if (mode == "auto") {
    EXPECT_EQ(s.shm_bytes_received, n);
    EXPECT_EQ(s.tcp_bytes_received, 0u) << "payload bytes went over TCP";
    EXPECT_EQ(s.shm_bytes_sent, n);
    EXPECT_EQ(s.tcp_bytes_sent, 0u) << "payload bytes went over TCP";
  } else {
    EXPECT_EQ(s.shm_bytes_received, 0u);
    EXPECT_EQ(s.tcp_bytes_received, n);
    EXPECT_EQ(s.shm_bytes_sent, 0u);
    EXPECT_EQ(s.tcp_bytes_sent, n);
  }
}

TEST(ShmProcess, PayloadsCrossThroughSharedMemoryNotTcp) { RoundTrip("auto"); }

TEST(ShmProcess, WithShmOffTheSameBytesGoOverTcp) { RoundTrip("off"); }

TEST(ShmProcess, KillDashNineOfTheWorkerLeavesNoSegmentBehind) {
  const std::set<std::string> shm_before = DevShm();
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.shm.mode = ShmMode::kAuto;
  auto router = Socket::Create(*ctx, SocketType::kRouter, o);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  int out = -1;
  pid_t pid = Spawn({"push", *ep, std::to_string(1 << 20), "auto", "hold"}, &out);
  ASSERT_GT(pid, 0);
  {
    Result<InMessage> req = (*router)->Recv(Deadline::FromMillis(30000));
    ASSERT_TRUE(req.ok()) << req.status().ToString();
    Buffer back = Buffer::Allocate(req->payload(0).size());
    for (size_t i = 0; i < back.size(); ++i) back.as<std::byte>()[i] = req->payload(0)[i] ^ kReplyMask;
    OutMessage rep = MakeReply(*req, Op::RESPONSE);
    rep.header().getBody().initResponse().setParamId(3);
    ASSERT_OK(rep.AddPayload(back, DType::kF32, back.size() / 4));
    ASSERT_OK((*router)->Send(std::move(rep)));
  }
  EXPECT_EQ(ReadLine(out), "held") << "the peer's round trip failed";
  close(out);
  ASSERT_FALSE(MappersOf(pid).empty()) << "the test should map the peer's arena";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  WaitChild(pid, 10000);
  // The router socket is still open: the reaper must detach the dead peer's arena.
  EXPECT_TRUE(WaitUntilUnmapped(pid, 5000)) << MappersOf(pid)[0];
  EXPECT_EQ(NewSegmentsOf(shm_before, pid), std::vector<std::string>{});
}

// A sender killed mid-stream: the receiver's wait ends when the process exits (its
// pidfd), long before the stream's deadline, and the arena goes once the message does.
TEST(ShmProcess, KillDashNineOfAStreamingWorkerEndsTheWaitAtOnce) {
  const std::set<std::string> shm_before = DevShm();
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.shm.mode = ShmMode::kAuto;
  o.shm.accept_streamed = true;
  auto router = Socket::Create(*ctx, SocketType::kRouter, o);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  int out = -1;
  pid_t pid = Spawn({"stall", *ep, std::to_string(1 << 20)}, &out);
  ASSERT_GT(pid, 0);
  {
    Result<InMessage> req = (*router)->Recv(Deadline::FromMillis(30000));
    for (int i = 0; i < 100 && req.ok() && !req->streamed(); ++i) req = (*router)->Recv(Deadline::FromMillis(30000));
    ASSERT_TRUE(req.ok()) << req.status().ToString();
    ASSERT_NE(req->payload_stream(0), nullptr);
    EXPECT_EQ(ReadLine(out), "sent");
    close(out);
    EXPECT_EQ(req->payload_stream(0)->Ready().value(), 4096u);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    const auto t0 = Clock::now();
    Status st = req->payload_stream(0)->WaitFor(1 << 20, std::chrono::milliseconds(20000));
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
    EXPECT_NE(st.message().find("exited"), std::string::npos) << st.ToString();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  }
  WaitChild(pid, 10000);
  EXPECT_TRUE(WaitUntilUnmapped(pid, 5000)) << MappersOf(pid)[0];
  EXPECT_EQ(NewSegmentsOf(shm_before, pid), std::vector<std::string>{});
}

TEST(ShmProcess, KillDashNineOfTheServerLeavesNoSegmentBehind) {
  const std::set<std::string> shm_before = DevShm();
  int out = -1;
  pid_t pid = Spawn({"serve", "auto"}, &out);
  ASSERT_GT(pid, 0);
  const std::string line = ReadLine(out);
  close(out);
  ASSERT_EQ(line.rfind("endpoint=", 0), 0u) << line;
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.shm.mode = ShmMode::kAuto;
  auto dealer = Socket::Create(*ctx, SocketType::kDealer, o);
  ASSERT_TRUE(dealer.ok());
  ASSERT_OK((*dealer)->Connect(line.substr(9)));
  Deadline d = Deadline::FromMillis(20000);
  while ((*dealer)->shm_state() != "on" && !d.Expired()) (*dealer)->Recv(Deadline::FromMillis(10)).status().IgnoreError();
  ASSERT_EQ((*dealer)->shm_state(), "on");
  const size_t n = 1 << 20;
  Buffer values = Buffer::Allocate(n);
  for (size_t i = 0; i < n; ++i) values.as<std::byte>()[i] = PeerByte(i);
  OutMessage push(Op::PUSH);
  auto body = push.header().getBody().initData();
  body.setParamId(3);
  body.setBegin(0);
  body.setEnd(n / 4);
  ASSERT_OK(push.AddPayload(values, DType::kF32, n / 4));
  {
    Result<InMessage> reply = Call(**dealer, std::move(push), Deadline::FromMillis(30000));
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    ASSERT_EQ(reply->payload(0).size(), n);
    EXPECT_EQ(reply->payload(0)[5], PeerByte(5) ^ kReplyMask);
  }
  EXPECT_EQ((*dealer)->shm_stats().shm_bytes_received, n);
  ASSERT_FALSE(MappersOf(pid).empty());
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  WaitChild(pid, 10000);
  EXPECT_TRUE(WaitUntilUnmapped(pid, 5000)) << MappersOf(pid)[0];
  EXPECT_EQ(NewSegmentsOf(shm_before, pid), std::vector<std::string>{});
}

}  // namespace
}  // namespace tessera::wire
