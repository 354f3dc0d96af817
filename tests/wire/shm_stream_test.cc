// Streamed shared-memory payloads (wire/shm_stream.h) inside one process: the progress
// word's rules (a stall times out, a scribble beyond the slot or an abandoned payload is
// refused, a reader sees every byte once the count covers it), and the socket handshake
// that turns streaming on only where the ROUTER accepts it and the DEALER offers it.
#include <gflags/gflags.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "wire/shm_arena.h"
#include "wire/shm_channel.h"
#include "wire/shm_stream.h"
#include "wire/socket.h"

DECLARE_bool(shm_stream);

namespace tessera::wire {
namespace {

using testing::Pattern;  // tests/wire/frames_util.h

struct Slot {
  std::shared_ptr<ShmTxArena> tx;
  std::shared_ptr<ShmPeerArena> rx;
  ShmSlotRef ref;
  Buffer claimed;  // the receiver's view (its own mapping of the arena)
  std::shared_ptr<const ShmStream> stream;
};

Slot Reserve(uint64_t bytes) {
  Slot s;
  s.tx = ShmTxArena::Create(4 << 20).value();
  s.rx = ShmPeerArena::Open(getpid(), s.tx->fd(), s.tx->size()).value();
  s.ref = *s.tx->Reserve(bytes);
  const uint64_t* progress = nullptr;
  s.claimed = s.rx->Claim(s.ref, &progress).value();
  s.stream = std::make_shared<const ShmStream>(progress, s.claimed);
  return s;
}

TEST(ShmStream, ReaderSeesEveryBlockOnceTheCountCoversIt) {
  const auto src = Pattern(1 << 20, 3);
  Slot s = Reserve(src.size());
  EXPECT_EQ(s.stream->Ready().value(), 0u) << "a fresh reservation publishes nothing";
  std::thread writer([&] { ShmStreamCopy(s.tx->data(s.ref), src, s.tx->progress(s.ref)); });
  // Block by block, as the optimizer reads it: each prefix is complete once waited for.
  const auto* got = static_cast<const std::byte*>(s.claimed.data());
  for (uint64_t b = 32768; b <= src.size(); b += 32768) {
    ASSERT_OK(s.stream->WaitFor(b, std::chrono::milliseconds(5000)));
    ASSERT_EQ(std::memcmp(got + b - 32768, src.data() + b - 32768, 32768), 0) << "block ending at " << b;
  }
  writer.join();
  EXPECT_EQ(s.stream->Ready().value(), src.size());
}

TEST(ShmStream, StalledSenderTimesOutAfterTheLimit) {
  const auto src = Pattern(256 << 10, 4);
  Slot s = Reserve(src.size());
  TEST_ForgeNextStreamProgress(100 << 10);  // copies all, says 100 KiB: a stall
  ShmStreamCopy(s.tx->data(s.ref), src, s.tx->progress(s.ref));
  EXPECT_OK(s.stream->WaitFor(100 << 10, std::chrono::milliseconds(1000)));
  const auto t0 = Clock::now();
  Status st = s.stream->WaitFor(src.size(), std::chrono::milliseconds(150));
  const auto waited = Clock::now() - t0;
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_NE(st.message().find("102400 of 262144"), std::string::npos) << st.ToString();
  EXPECT_GE(waited, std::chrono::milliseconds(150));
  EXPECT_LT(waited, std::chrono::milliseconds(1500)) << "the wait must end near its limit";
}

// The whole job suspended (Slurm's gang scheduling sends SIGSTOP to every process, then
// SIGCONT) while a receiver waits: the time it was stopped is not a stall of the sender.
// A child process waits with a 400 ms limit; it is stopped for 1.2 s, and the parent
// publishes the rest 100 ms after continuing it. Without the rule the wait would fail.
TEST(ShmStream, TimeStoppedDoesNotCountAgainstTheLimit) {
  const auto src = Pattern(256 << 10, 6);
  Slot s = Reserve(src.size());
  std::memcpy(s.tx->data(s.ref), src.data(), src.size());
  ShmStreamPublish(s.tx->progress(s.ref), 64 << 10);
  // A child waiting for all of `slot` with a 400 ms limit: exits 0 (got it), 3 (timed out).
  const auto waiter = [&](const Slot& slot) {
    const pid_t pid = fork();
    if (pid == 0) {
      Status st = slot.stream->WaitFor(src.size(), std::chrono::milliseconds(400));
      _exit(st.ok() ? 0 : st.code() == StatusCode::kTimedOut ? 3 : 4);
    }
    return pid;
  };
  const pid_t child = waiter(s);
  ASSERT_GT(child, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(kill(child, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_EQ(kill(child, SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ShmStreamPublish(s.tx->progress(s.ref), src.size());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: the wait timed out, counting the 1.2 s the process was stopped";

  // The same child, not stopped, still times out when nothing more comes.
  Slot t = Reserve(src.size());
  ShmStreamPublish(t.tx->progress(t.ref), 64 << 10);
  const pid_t idle = waiter(t);
  ASSERT_GT(idle, 0);
  ASSERT_EQ(waitpid(idle, &status, 0), idle);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
}

TEST(ShmStream, ProgressBeyondTheSlotOrAbandonedIsRefused) {
  const auto src = Pattern(128 << 10, 5);
  Slot s = Reserve(src.size());
  TEST_ForgeNextStreamProgress(src.size() + 4096);  // a scribbling sender
  ShmStreamCopy(s.tx->data(s.ref), src, s.tx->progress(s.ref));
  Status st = s.stream->WaitFor(1, std::chrono::milliseconds(1000));
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("beyond its length"), std::string::npos) << st.ToString();
  EXPECT_FALSE(s.stream->Ready().ok());

  Slot a = Reserve(src.size());
  std::atomic_ref<uint64_t>(*a.tx->progress(a.ref)).store(kShmStreamAbandoned);
  st = a.stream->WaitFor(src.size(), std::chrono::milliseconds(1000));
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
}

// A ROUTER (accepting streams or not) and a DEALER, handshake pumped to completion.
struct Pair {
  std::shared_ptr<Context> ctx;
  std::unique_ptr<Socket> router, dealer;
};

Pair MakePair(bool accept_streamed, bool dealer_takes_streams = false) {
  Pair p;
  p.ctx = Context::Create().value();
  SocketOptions ro;
  ro.shm.mode = ShmMode::kAuto;
  ro.shm.accept_streamed = accept_streamed;
  p.router = Socket::Create(p.ctx, SocketType::kRouter, ro).value();
  SocketOptions dopt;
  dopt.routing_id = "w1";
  dopt.shm.mode = ShmMode::kAuto;
  dopt.shm.accept_streamed = dealer_takes_streams;
  p.dealer = Socket::Create(p.ctx, SocketType::kDealer, dopt).value();
  EXPECT_OK(p.dealer->Connect(p.router->Bind("tcp://127.0.0.1:*").value()));
  Deadline d = Deadline::FromMillis(10000);
  // "on" on both ends, then (when streams are accepted) the STREAM_OK reaching the DEALER.
  auto settled = [&] {
    if (p.dealer->shm_state() != "on" || p.router->shm_state("w1") != "on") return false;
    return p.dealer->TEST_shm()->streams() == p.router->TEST_shm()->receives_streams("w1") &&
           p.router->TEST_shm()->streams("w1") == dealer_takes_streams;
  };
  while (!d.Expired() && !settled()) {
    p.router->TryRecv().status().IgnoreError();
    p.dealer->Recv(Deadline::FromMillis(5)).status().IgnoreError();
  }
  EXPECT_TRUE(settled());
  return p;
}

OutMessage PushPull(const Buffer& values, bool streamable) {
  OutMessage m(Op::PUSH_PULL);
  m.SetRequestId(7);
  auto d = m.header().getBody().initData();
  d.setParamId(1);
  d.setBegin(0);
  d.setEnd(values.size() / 4);
  EXPECT_OK(m.AddPayload(values, DType::kF32, values.size() / 4));
  m.set_streamable(streamable);
  return m;
}

// Sends `bytes` as a push+pull and returns what the ROUTER received (awaited whole).
void RoundTrip(Pair& p, bool streamable, bool want_streamed) {
  const auto src = Pattern(1 << 20, 11);
  Buffer values = Buffer::CopyOf(src);
  ASSERT_OK(p.dealer->Send(PushPull(values, streamable)));
  Result<InMessage> got = p.router->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->streamed(), want_streamed);
  EXPECT_EQ(got->payload_stream(0) != nullptr, want_streamed);
  ASSERT_OK(got->AwaitPayloads(std::chrono::milliseconds(5000)));
  EXPECT_FALSE(got->streamed());
  ASSERT_EQ(got->payload(0).size(), src.size());
  EXPECT_EQ(std::memcmp(got->payload(0).data(), src.data(), src.size()), 0);
}

TEST(ShmStreamSocket, StreamableMessagesGoStreamedToARouterThatAcceptsThem) {
  Pair p = MakePair(true);
  ASSERT_TRUE(p.dealer->TEST_shm()->streams());
  RoundTrip(p, /*streamable=*/true, /*want_streamed=*/true);
  RoundTrip(p, /*streamable=*/false, /*want_streamed=*/false);  // only messages marked so
  EXPECT_EQ(p.dealer->shm_stats().streamed_payloads_sent, 1u);
  EXPECT_EQ(p.router->shm_stats().streamed_payloads_received, 1u);
}

TEST(ShmStreamSocket, RouterThatDoesNotAcceptStreamsGetsCompletePayloads) {
  Pair p = MakePair(false);
  EXPECT_FALSE(p.dealer->TEST_shm()->streams());
  RoundTrip(p, true, false);
  EXPECT_EQ(p.dealer->shm_stats().streamed_payloads_sent, 0u);
  EXPECT_EQ(p.dealer->shm_stats().shm_payloads_sent, 1u) << "still shared memory, complete before the send";
}

TEST(ShmStreamSocket, DealerThatDoesNotOfferStreamsSendsCompletePayloads) {
  // --shm_stream=false on the DEALER: its CONFIRM carries no capabilities, as an older
  // DEALER's; the ROUTER then never says STREAM_OK and refuses a streamed descriptor.
  FLAGS_shm_stream = false;
  Pair p = MakePair(true);
  FLAGS_shm_stream = true;
  EXPECT_FALSE(p.dealer->TEST_shm()->streams());
  EXPECT_FALSE(p.router->TEST_shm()->receives_streams("w1"));
  RoundTrip(p, true, false);
}

TEST(ShmStreamSocket, ReplyBuiltInPlaceIsSentBeforeItIsWritten) {
  Pair p = MakePair(true, /*dealer_takes_streams=*/true);
  ASSERT_TRUE(p.router->TEST_shm()->streams("w1"));
  const auto src = Pattern(1 << 20, 12);
  uint64_t* progress = nullptr;
  Buffer out = p.router->AllocatePayload("w1", src.size(), &progress);
  ASSERT_NE(progress, nullptr) << "the peer takes streamed payloads";
  OutMessage m(Op::RESPONSE);
  m.SetRequestId(9);
  ASSERT_OK(m.AddPayload(out, DType::kF32, src.size() / 4));
  m.set_streamable(true);
  ASSERT_OK(p.router->Send(std::move(m), "w1"));  // nothing written yet
  Result<InMessage> got = p.dealer->Recv(Deadline::FromMillis(5000));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const ShmStream* stream = got->payload_stream(0);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->Ready().value(), 0u);
  std::memcpy(out.data(), src.data(), src.size() / 2);
  ShmStreamPublish(progress, src.size() / 2);
  EXPECT_OK(stream->WaitFor(src.size() / 2, std::chrono::milliseconds(1000)));
  EXPECT_EQ(stream->WaitFor(src.size(), std::chrono::milliseconds(50)).code(), StatusCode::kTimedOut);
  std::memcpy(static_cast<std::byte*>(out.data()) + src.size() / 2, src.data() + src.size() / 2, src.size() / 2);
  ShmStreamPublish(progress, src.size());
  ASSERT_OK(got->AwaitPayloads(std::chrono::milliseconds(1000)));
  EXPECT_EQ(std::memcmp(got->payload(0).data(), src.data(), src.size()), 0);

  // A payload written after the send never goes anywhere but its own streamed slot:
  // sent to another peer, the message is refused before anything is sent.
  uint64_t* progress2 = nullptr;
  Buffer out2 = p.router->AllocatePayload("w1", src.size(), &progress2);
  ASSERT_NE(progress2, nullptr);
  OutMessage m2(Op::RESPONSE);
  ASSERT_OK(m2.AddPayload(out2, DType::kF32, src.size() / 4));
  m2.set_streamable(true);
  Status refused = p.router->Send(std::move(m2), "w2");
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("written after the send"), std::string::npos) << refused.ToString();

  // Without streams on the channel the application gets no progress word: it writes
  // the payload whole before sending, as before.
  Pair q = MakePair(true, false);
  uint64_t* none = reinterpret_cast<uint64_t*>(1);
  Buffer plain = q.router->AllocatePayload("w1", src.size(), &none);
  EXPECT_EQ(none, nullptr);
}

}  // namespace
}  // namespace tessera::wire
