// The same-host shared-memory path, inside one process: the arena's ring (allocate,
// release, wrap-around, descriptor validation), a hostile descriptor sent to a real
// ROUTER, and the fallback to TCP for a peer that claims another host.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zmq.h>

#include <mutex>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "wire/shm_arena.h"
#include "wire/shm_channel.h"
#include "wire/socket.h"

namespace tessera::wire {
namespace {

using testing::Pattern;  // tests/wire/frames_util.h

TEST(ShmArena, AllocateReleaseAndWrapAround) {
  auto tx = ShmTxArena::Create(16384);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_EQ((*tx)->size(), 16384u);
  auto rx = ShmPeerArena::Open(getpid(), (*tx)->fd(), (*tx)->size());
  ASSERT_TRUE(rx.ok()) << rx.status().ToString();

  // Slots of 64 + 4096 bytes: three fit, the fourth does not.
  const auto a = Pattern(4096, 1), b = Pattern(4096, 2), c = Pattern(4096, 3), d = Pattern(4096, 4);
  auto ra = (*tx)->Put(a), rb = (*tx)->Put(b), rc = (*tx)->Put(c);
  ASSERT_TRUE(ra && rb && rc);
  EXPECT_EQ(ra->offset, 64u);
  EXPECT_EQ(rb->offset, 64u + 4160u);
  EXPECT_EQ(rc->offset, 64u + 2 * 4160u);
  EXPECT_FALSE((*tx)->Put(d)) << "the arena is full";

  // The receiver sees the sender's bytes in place, and a claim is single-use.
  Result<Buffer> ba = (*rx)->Claim(*ra);
  ASSERT_TRUE(ba.ok()) << ba.status().ToString();
  EXPECT_EQ(std::memcmp(ba->data(), a.data(), a.size()), 0);
  Result<Buffer> again = (*rx)->Claim(*ra);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("not in flight"), std::string::npos) << again.status().ToString();
  EXPECT_FALSE((*tx)->Put(d)) << "a claimed slot is still in use";

  // Releasing the oldest slot frees the ring's head: the next payload wraps to offset 64.
  *ba = Buffer();
  auto rd = (*tx)->Put(d);
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->offset, 64u);
  EXPECT_EQ((*tx)->outstanding(), 3u);

  // Out-of-order release: c is freed but b (older) is not, so nothing is reclaimed yet.
  Result<Buffer> bc = (*rx)->Claim(*rc);
  ASSERT_TRUE(bc.ok());
  EXPECT_EQ(std::memcmp(bc->data(), c.data(), c.size()), 0);
  *bc = Buffer();
  EXPECT_EQ((*tx)->outstanding(), 3u);
  Result<Buffer> bb = (*rx)->Claim(*rb);
  ASSERT_TRUE(bb.ok());
  *bb = Buffer();
  EXPECT_EQ((*tx)->outstanding(), 1u) << "b and then c are reclaimed in ring order";
  Result<Buffer> bd = (*rx)->Claim(*rd);
  ASSERT_TRUE(bd.ok());
  EXPECT_EQ(std::memcmp(bd->data(), d.data(), d.size()), 0);
  *bd = Buffer();
  EXPECT_EQ((*tx)->outstanding(), 0u);

  // Payloads bigger than the arena are refused (the socket sends them over TCP).
  EXPECT_FALSE((*tx)->Put(Pattern(16384, 5)));
}

TEST(ShmArena, DescriptorsOutsideTheArenaOrForgedAreRefused) {
  auto tx = ShmTxArena::Create(8192);
  ASSERT_TRUE(tx.ok());
  auto rx = ShmPeerArena::Open(getpid(), (*tx)->fd(), (*tx)->size());
  ASSERT_TRUE(rx.ok());
  auto ref = (*tx)->Put(Pattern(1000, 1));
  ASSERT_TRUE(ref);
  struct Case {
    ShmSlotRef r;
    const char* want;
  } cases[] = {
      {{8192, 1, ref->token}, "out of range"},
      {{64, 8192, ref->token}, "out of range"},
      {{~0ULL - 63, 128, ref->token}, "out of range"},
      {{0, 10, ref->token}, "out of range"},   // no room for a slot header
      {{100, 10, ref->token}, "out of range"},  // misaligned
      {{ref->offset, 0, ref->token}, "out of range"},
      {{ref->offset, 1000, ref->token + 1}, "not in flight"},
      {{ref->offset, 1000, ref->token | kShmClaimed}, "invalid token"},
      {{ref->offset + 1024, 64, ref->token}, "not in flight"},  // in range, no slot there
  };
  for (const Case& c : cases) {
    Result<Buffer> b = (*rx)->Claim(c.r);
    ASSERT_FALSE(b.ok()) << c.r.offset << "+" << c.r.length;
    EXPECT_EQ(b.status().code(), StatusCode::kCorruption);
    EXPECT_NE(b.status().message().find(c.want), std::string::npos) << b.status().ToString();
  }
  EXPECT_TRUE((*rx)->Claim(*ref).ok()) << "the genuine descriptor still works";
}

TEST(ShmArena, OpeningSomethingThatIsNotAnArenaFails) {
  tessera::testing::TempDir dir;
  const std::string path = dir.path() + "/plain";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("not an arena", f);
  fflush(f);
  auto rx = ShmPeerArena::Open(getpid(), fileno(f), 12);
  fclose(f);
  ASSERT_FALSE(rx.ok());
  EXPECT_NE(rx.status().message().find("not a Tessera arena"), std::string::npos) << rx.status().ToString();
  auto gone = ShmPeerArena::Open(getpid(), 9999, 4096);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("cannot open"), std::string::npos) << gone.status().ToString();
}

// A ROUTER and a DEALER in this process, with the handshake pumped to completion.
struct Pair {
  std::shared_ptr<Context> ctx;
  std::unique_ptr<Socket> router, dealer;
};

Pair MakePair(ShmOptions dealer_shm = {}, bool mac = false) {
  Pair p;
  p.ctx = Context::Create().value();
  if (mac) EXPECT_OK(p.ctx->EnableMac(GenerateCurveKeys().value()));
  SocketOptions ro;
  ro.shm.mode = ShmMode::kAuto;
  p.router = Socket::Create(p.ctx, SocketType::kRouter, ro).value();
  SocketOptions dopt;
  dopt.routing_id = "w1";
  dopt.shm = dealer_shm;
  if (mac) {  // a mac session is bound to the sender its HELLO names
    dopt.stamp_sender = true;
    dopt.role = Role::WORKER;
    dopt.rank = 1;
  }
  if (dopt.shm.mode == ShmMode::kFlag) dopt.shm.mode = ShmMode::kAuto;
  p.dealer = Socket::Create(p.ctx, SocketType::kDealer, dopt).value();
  const std::string ep = p.router->Bind("tcp://127.0.0.1:*").value();
  EXPECT_OK(p.dealer->Connect(ep));
  Deadline d = Deadline::FromMillis(10000);
  auto settled = [&] {
    const std::string ds = p.dealer->shm_state();
    return ds.rfind("off", 0) == 0 || (ds == "on" && p.router->shm_state("w1") == "on");
  };
  while (!d.Expired() && !settled()) {
    p.router->TryRecv().status().IgnoreError();
    p.dealer->Recv(Deadline::FromMillis(5)).status().IgnoreError();
  }
  return p;
}

OutMessage Push(const Buffer& values, uint64_t request_id) {
  OutMessage m(Op::PUSH);
  m.SetRequestId(request_id);
  auto d = m.header().getBody().initData();
  d.setParamId(1);
  d.setBegin(0);
  d.setEnd(values.size() / 4);
  EXPECT_OK(m.AddPayload(values, DType::kF32, values.size() / 4));
  return m;
}

void SendRaw(void* sock, const std::vector<std::vector<std::byte>>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    ASSERT_EQ(zmq_send(sock, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0),
              static_cast<int>(frames[i].size()));
  }
}

TEST(ShmSocket, HostileDescriptorIsRefusedAndTheRouterSurvives) {
  Pair p = MakePair();
  ASSERT_EQ(p.dealer->shm_state(), "on");
  ASSERT_EQ(p.router->shm_state("w1"), "on");
  const size_t n = 1 << 20;
  Buffer values = Buffer::Allocate(n);
  std::memcpy(values.data(), Pattern(n, 9).data(), n);
  const uint64_t nonce = p.dealer->TEST_shm()->TEST_tx_nonce();
  ASSERT_NE(nonce, 0u);

  struct Forged {
    ShmSlotRef ref;
    const char* want;
  } forged[] = {
      {{uint64_t{1} << 40, n, 1}, "out of range"},  // far outside the arena
      {{64, n, 12345}, "not in flight"},            // in range, a token never sent
  };
  uint64_t id = 70;
  for (const Forged& f : forged) {
    OutMessage m = Push(values, ++id);
    SendRaw(p.dealer->raw(), {EncodeShmDataFrame(nonce, {f.ref}), m.EncodeHeader()});
    Result<InMessage> bad = p.router->Recv(Deadline::FromMillis(5000));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
    EXPECT_NE(bad.status().message().find(f.want), std::string::npos) << bad.status().ToString();
    // The sender is told, with its request id.
    Result<InMessage> err = p.dealer->Recv(Deadline::FromMillis(5000));
    ASSERT_TRUE(err.ok()) << err.status().ToString();
    EXPECT_EQ(err->request_id(), id);
    Status st = StatusFromError(*err);
    EXPECT_EQ(st.code(), StatusCode::kCorruption);
    EXPECT_NE(st.message().find("shared-memory descriptor refused"), std::string::npos) << st.ToString();
  }
  // A descriptor for another arena (a stale channel) is refused too.
  OutMessage stale = Push(values, ++id);
  SendRaw(p.dealer->raw(), {EncodeShmDataFrame(nonce + 2, {{64, n, 1}}), stale.EncodeHeader()});
  Result<InMessage> bad = p.router->Recv(Deadline::FromMillis(5000));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("another arena"), std::string::npos) << bad.status().ToString();
  EXPECT_EQ(p.router->shm_stats().refused_descriptors, 3u);

  // The ROUTER still serves, through shared memory.
  ASSERT_OK(p.dealer->Send(Push(values, 100)));
  Result<InMessage> good = p.router->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->request_id(), 100u);
  ASSERT_EQ(good->payload(0).size(), n);
  EXPECT_EQ(std::memcmp(good->payload(0).data(), values.data(), n), 0);
  EXPECT_EQ(p.router->shm_stats().shm_bytes_received, n);
  EXPECT_EQ(p.router->shm_stats().tcp_bytes_received, 0u);
}

// --auth=mac and shared memory together: the offer waits for the session and is sealed,
// payloads travel in the arena, and the descriptor frame is covered by the message's tag,
// so an unsealed descriptor is refused by authentication before shared memory reads it.
TEST(ShmSocket, MacOverSharedMemory) {
  Pair p = MakePair({}, /*mac=*/true);
  ASSERT_EQ(p.dealer->shm_state(), "on");
  ASSERT_EQ(p.router->shm_state("w1"), "on");
  ASSERT_EQ(p.router->auth_sessions(), 1u);
  const size_t n = 1 << 20;
  Buffer values = Buffer::Allocate(n);
  std::memcpy(values.data(), Pattern(n, 5).data(), n);
  ASSERT_OK(p.dealer->Send(Push(values, 1)));
  Result<InMessage> good = p.router->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  ASSERT_EQ(good->payload(0).size(), n);
  EXPECT_EQ(std::memcmp(good->payload(0).data(), values.data(), n), 0);
  EXPECT_EQ(p.router->shm_stats().shm_bytes_received, n);
  EXPECT_EQ(p.router->shm_stats().tcp_bytes_received, 0u);
  // The reply travels in the dealer's direction of the channel, sealed the same way.
  OutMessage reply = MakeReply(*good, Op::RESPONSE);
  ASSERT_OK(reply.AddPayload(values, DType::kF32, n / 4));
  ASSERT_OK(p.router->Send(std::move(reply)));
  Result<InMessage> back = p.dealer->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::memcmp(back->payload(0).data(), values.data(), n), 0);
  EXPECT_EQ(p.dealer->shm_stats().shm_bytes_received, n);
  EXPECT_EQ(p.dealer->shm_stats().tcp_bytes_received, 0u);

  const uint64_t nonce = p.dealer->TEST_shm()->TEST_tx_nonce();
  OutMessage m = Push(values, 2);
  SendRaw(p.dealer->raw(), {EncodeShmDataFrame(nonce, {{64, n, 1}}), m.EncodeHeader()});
  Result<InMessage> bad = p.router->Recv(Deadline::FromMillis(500));
  EXPECT_FALSE(bad.ok());
  EXPECT_GE(p.router->auth_refusals().total(), 1u);
  EXPECT_EQ(p.router->shm_stats().refused_descriptors, 0u);  // never reached shared memory
  EXPECT_EQ(p.router->decoded_messages(), 1u);
}

class CaptureSink : public google::LogSink {
 public:
  void send(google::LogSeverity, const char*, const char*, int, const google::LogMessageTime&, const char* message,
            size_t len) override {
    std::lock_guard<std::mutex> l(mu_);
    lines_.emplace_back(message, len);
  }
  std::vector<std::string> Matching(const std::string& s) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const auto& x : lines_) {
      if (x.find(s) != std::string::npos) out.push_back(x);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(ShmSocket, PeerOnAnotherHostFallsBackToTcpWithOneLogLine) {
  CaptureSink sink;
  google::AddLogSink(&sink);
  ShmOptions elsewhere;
  elsewhere.host_identity = "another-boot|tn2|uid=" + std::to_string(geteuid());
  Pair p = MakePair(elsewhere);
  EXPECT_NE(p.dealer->shm_state().find("off: another host"), std::string::npos) << p.dealer->shm_state();
  const size_t n = 1 << 20;
  Buffer values = Buffer::Allocate(n);
  std::memcpy(values.data(), Pattern(n, 3).data(), n);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(p.dealer->Send(Push(values, 1 + i)));
    Result<InMessage> got = p.router->Recv(Deadline::FromMillis(5000));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(std::memcmp(got->payload(0).data(), values.data(), n), 0);
  }
  google::RemoveLogSink(&sink);
  EXPECT_EQ(p.router->shm_stats().tcp_bytes_received, 3 * n);
  EXPECT_EQ(p.router->shm_stats().shm_bytes_received, 0u);
  EXPECT_EQ(p.dealer->shm_stats().shm_bytes_sent, 0u);
  const auto lines = sink.Matching("shared memory off for");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("another host"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("payloads go over TCP"), std::string::npos) << lines[0];
}

TEST(ShmSocket, SmallPayloadsAndFullArenasGoOverTcpAndAreCounted) {
  ShmOptions small;
  small.arena_bytes = 1 << 20;  // one 1 MiB payload does not fit beside its slot header
  Pair p = MakePair(small);
  ASSERT_EQ(p.dealer->shm_state(), "on");
  Buffer tiny = Buffer::Allocate(4096), big = Buffer::Allocate(1 << 20), mid = Buffer::Allocate(256 << 10);
  ASSERT_OK(p.dealer->Send(Push(tiny, 1)));
  ASSERT_OK(p.dealer->Send(Push(big, 2)));
  ASSERT_OK(p.dealer->Send(Push(mid, 3)));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.router->Recv(Deadline::FromMillis(5000)).ok());
  const ShmStats s = p.dealer->shm_stats();
  EXPECT_EQ(s.tcp_bytes_sent, 4096u + (1 << 20));
  EXPECT_EQ(s.shm_bytes_sent, 256u << 10);
  EXPECT_EQ(s.fallback_payloads, 1u);  // the big one; the tiny one is below --shm_min_bytes
}

TEST(ShmSocket, PayloadsBuiltInTheArenaAreSentWithoutACopy) {
  Pair p = MakePair();
  ASSERT_EQ(p.router->shm_state("w1"), "on");
  const size_t n = 1 << 20;
  // Dropped unsent: the slot is free again, so the next one starts at the same place.
  const void* first = nullptr;
  {
    Buffer unused = p.router->AllocatePayload("w1", n);
    first = unused.data();
  }
  Buffer out = p.router->AllocatePayload("w1", n);
  EXPECT_EQ(out.data(), first);
  const auto bytes = Pattern(n, 4);
  std::memcpy(out.data(), bytes.data(), n);
  OutMessage rep(Op::RESPONSE);
  rep.set_routing_id("w1");
  ASSERT_OK(rep.AddPayload(std::move(out), DType::kF32, n / 4));
  ASSERT_OK(p.router->Send(std::move(rep)));
  Result<InMessage> got = p.dealer->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->payload(0).size(), n);
  EXPECT_EQ(std::memcmp(got->payload(0).data(), bytes.data(), n), 0);
  const ShmStats s = p.router->shm_stats();
  EXPECT_EQ(s.in_place_payloads_sent, 1u);
  EXPECT_EQ(s.shm_bytes_sent, n);
  EXPECT_EQ(s.tcp_bytes_sent, 0u);
  // Without a channel (an unknown peer, a small payload) it is ordinary memory.
  Buffer plain = p.router->AllocatePayload("nobody", n);
  EXPECT_EQ(plain.size(), n);
  EXPECT_EQ(p.router->shm_stats().in_place_payloads_sent, 1u);
}

TEST(ShmSocket, ADealerWithTwoEndpointsStaysOnTcp) {
  auto ctx = Context::Create().value();
  SocketOptions ro;
  ro.shm.mode = ShmMode::kAuto;
  auto r1 = Socket::Create(ctx, SocketType::kRouter, ro).value();
  auto r2 = Socket::Create(ctx, SocketType::kRouter, ro).value();
  SocketOptions dopt;
  dopt.shm.mode = ShmMode::kAuto;
  auto dealer = Socket::Create(ctx, SocketType::kDealer, dopt).value();
  ASSERT_OK(dealer->Connect(r1->Bind("tcp://127.0.0.1:*").value()));
  ASSERT_OK(dealer->Connect(r2->Bind("tcp://127.0.0.1:*").value()));
  EXPECT_NE(dealer->shm_state().find("second endpoint"), std::string::npos) << dealer->shm_state();
  // ZeroMQ spreads the messages over both; each arrives whole, over TCP.
  const size_t n = 256 << 10;
  Buffer values = Buffer::Allocate(n);
  std::memcpy(values.data(), Pattern(n, 6).data(), n);
  for (int i = 0; i < 4; ++i) ASSERT_OK(dealer->Send(Push(values, 1 + i)));
  int got = 0;
  Deadline d = Deadline::FromMillis(10000);
  while (got < 4 && !d.Expired()) {
    for (Socket* r : {r1.get(), r2.get()}) {
      Result<InMessage> m = r->Recv(Deadline::FromMillis(10));
      if (!m.ok()) continue;
      ++got;
      EXPECT_EQ(std::memcmp(m->payload(0).data(), values.data(), n), 0);
    }
  }
  EXPECT_EQ(got, 4);
  EXPECT_EQ(dealer->shm_stats().shm_bytes_sent, 0u);
  EXPECT_EQ(dealer->shm_stats().tcp_bytes_sent, 4 * n);
}

TEST(ShmSocket, OffOnTheRouterRefusesTheOffer) {
  auto ctx = Context::Create().value();
  SocketOptions ro;
  ro.shm.mode = ShmMode::kOff;
  auto router = Socket::Create(ctx, SocketType::kRouter, ro).value();
  SocketOptions dopt;
  dopt.shm.mode = ShmMode::kAuto;
  auto dealer = Socket::Create(ctx, SocketType::kDealer, dopt).value();
  ASSERT_OK(dealer->Connect(router->Bind("tcp://127.0.0.1:*").value()));
  Deadline d = Deadline::FromMillis(10000);
  while (!d.Expired() && dealer->shm_state() == "pending") {
    router->TryRecv().status().IgnoreError();
    dealer->Recv(Deadline::FromMillis(5)).status().IgnoreError();
  }
  EXPECT_NE(dealer->shm_state().find("--shm=off"), std::string::npos) << dealer->shm_state();
}

}  // namespace
}  // namespace tessera::wire
