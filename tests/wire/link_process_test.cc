// The local link between two real processes (this test and tests/wire/link_peer): a
// kill -9 of either side is noticed by the other at once, and leaves no socket file
// behind (the listener is in the abstract namespace; checked in /proc/net/unix).
#include <gflags/gflags.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <thread>

#include "tests/testutil/testutil.h"
#include "tests/wire/link_util.h"
#include "tests/wire/spawn_util.h"

DECLARE_bool(shm_link);

namespace tessera::wire {
namespace {

using testing::ReadLine;
using testing::WaitChild;

std::string PeerPath() { return tessera::testing::BinaryDir() + "/tests/wire/link_peer"; }

// Unix sockets named for the local link of process `pid`; `files`: only those bound to
// a path in the file system (the link's are abstract: "@tessera-link/...").
std::vector<std::string> LinkSockets(pid_t pid, bool files) {
  std::vector<std::string> out;
  std::ifstream f("/proc/net/unix");
  std::string line;
  const std::string needle = "tessera-link/" + std::to_string(pid) + "/";
  while (std::getline(f, line)) {
    const size_t at = line.find(files ? "tessera-link" : needle);
    if (at == std::string::npos) continue;
    if (files && at > 0 && line[at - 1] == '@') continue;
    out.push_back(line);
  }
  return out;
}

SocketOptions Opts() {
  SocketOptions o;
  o.shm.mode = ShmMode::kAuto;
  o.stamp_sender = true;  // auth=mac: the sender is the session's identity
  return o;
}

TEST(LinkProcess, KillDashNineOfTheWorkerIsNoticedAndLeavesNoSocketFile) {
  FLAGS_shm_link = true;
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  auto server = testing::EchoServer::Start(*ctx, Opts());
  ASSERT_NE(server, nullptr);
  int out = -1;
  const pid_t pid = testing::SpawnPeer(PeerPath(), {"client", server->endpoint}, &out);
  ASSERT_GT(pid, 0) << PeerPath();
  EXPECT_EQ(ReadLine(out), "on") << "the peer's link did not come up";
  close(out);
  auto stats = [&] { return testing::OnLoop(*server->reactor, [&] { return server->sock->link_stats(); }); };
  EXPECT_EQ(stats().links_up, 1u);
  EXPECT_FALSE(LinkSockets(getpid(), false).empty()) << "the listener should be in /proc/net/unix";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  WaitChild(pid, 10000);
  const Deadline d = Deadline::FromMillis(5000);
  while (stats().dropped == 0 && !d.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(stats().dropped, 1u) << "the server did not notice the dead worker";
  EXPECT_EQ(LinkSockets(pid, false), std::vector<std::string>{});
  EXPECT_EQ(LinkSockets(0, true), std::vector<std::string>{});
  // The server still serves: a new worker gets its link and a reply.
  auto client = testing::LinkClient::Start(*ctx, Opts(), server->endpoint);
  ASSERT_TRUE(client->WaitLinkState("on"));
  EXPECT_TRUE(client->Call(testing::PushPull(1, 1 << 20, true)).ok());
}

TEST(LinkProcess, KillDashNineOfTheServerIsNoticedAtOnce) {
  FLAGS_shm_link = true;
  int out = -1;
  const pid_t pid = testing::SpawnPeer(PeerPath(), {"serve"}, &out);
  ASSERT_GT(pid, 0) << PeerPath();
  const std::string line = ReadLine(out);
  close(out);
  ASSERT_EQ(line.rfind("endpoint=", 0), 0u) << line;
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  auto client = testing::LinkClient::Start(*ctx, Opts(), line.substr(9));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WaitLinkState("on"));
  ASSERT_TRUE(client->Call(testing::PushPull(1, 1 << 20, true)).ok());
  EXPECT_FALSE(LinkSockets(pid, false).empty());
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  WaitChild(pid, 10000);
  const auto t0 = Clock::now();
  const Deadline d = Deadline::FromMillis(5000);
  for (;;) {
    {
      std::lock_guard<std::mutex> l(client->mu);
      if (!client->errors.empty()) break;
    }
    ASSERT_FALSE(d.Expired()) << "the worker did not notice the dead server";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(client->errors[0].code(), StatusCode::kUnavailable) << client->errors[0].ToString();
  EXPECT_NE(client->errors[0].message().find("local link"), std::string::npos) << client->errors[0].ToString();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  // Later sends go back to ZeroMQ, which queues them for the dead server as before.
  EXPECT_EQ(testing::OnLoop(*client->reactor, [&] { return client->sock->link_state(); }), "off");
  EXPECT_EQ(LinkSockets(pid, false), std::vector<std::string>{});
  EXPECT_EQ(LinkSockets(0, true), std::vector<std::string>{});
}

}  // namespace
}  // namespace tessera::wire
