// The per-thread message state (wire/message_state.h) and frame cache (wire/alloc.h):
// headers encoded in place, states reused clean, messages handed between threads, and the
// one-pass decode of data-plane headers still bounded against hostile payload lists.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "wire/alloc.h"
#include "wire/codec.h"
#include "wire/message.h"

namespace tessera::wire {
namespace {

using testing::Bytes;
using testing::Pattern;

OutMessage Push(uint64_t request_id, size_t floats) {
  OutMessage m(Op::PUSH);
  m.SetJobId(7).SetRequestId(request_id).SetStep(static_cast<int64_t>(request_id));
  auto d = m.header().getBody().initData();
  d.setParamId(3);
  d.setBegin(0);
  d.setEnd(floats);
  Bytes values = Pattern(floats * 4, static_cast<unsigned>(request_id));
  EXPECT_OK(m.AddPayload(Buffer::CopyOf(values), DType::kF32, floats));
  return m;
}

Result<InMessage> DecodeIn(std::string routing_id, std::span<const std::byte> header,
                           const std::vector<Bytes>& payloads) {
  std::vector<Buffer> frames;
  for (const Bytes& p : payloads) frames.push_back(Buffer::CopyOf(p));
  return Decode(std::move(routing_id), Buffer::CopyOf(header), std::move(frames), {});
}

// The in-place frame is the Cap'n Proto stream framing of the whole header (a reader of
// the standard format takes it, with nothing after it), for a data-plane header in the
// first segment and for one that outgrew it.
TEST(MessageState, HeaderEncodedInPlaceIsTheStreamFraming) {
  OutMessage small = Push(11, 8);
  const std::span<const std::byte> a = small.EncodedHeader();
  ASSERT_EQ(a.size() % 8, 0u);
  ::capnp::FlatArrayMessageReader r(
      kj::ArrayPtr<const ::capnp::word>(reinterpret_cast<const ::capnp::word*>(a.data()), a.size() / 8));
  EXPECT_EQ(r.getEnd(), reinterpret_cast<const ::capnp::word*>(a.data() + a.size()));
  EXPECT_EQ(r.getRoot<Header>().getRequestId(), 11u);
  EXPECT_EQ(r.getRoot<Header>().getPayloads()[0].getByteLength(), 32u);
  EXPECT_EQ(small.EncodeHeader(), Bytes(a.begin(), a.end()));

  OutMessage big(Op::ERROR);
  auto e = big.header().getBody().initError();
  e.setCode(3);
  const std::string text(6000, 'x');  // far past the 64-word first segment
  e.setMessage(text);
  e.setInReplyTo(Op::PUSH);
  const std::span<const std::byte> b = big.EncodedHeader();
  Result<InMessage> in = DecodeIn("", b, {});
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(std::string(in->header().getBody().getError().getMessage().cStr()), text);
}

// A state from the cache starts clean: nothing of the previous message (fields, payloads,
// routing id, a grown builder) shows through.
TEST(MessageState, ReusedStatesCarryNothingOver) {
  for (int round = 0; round < 3; ++round) {
    {
      OutMessage dirty(Op::ERROR);
      dirty.SetJobId(99).SetRequestId(98).SetStep(97);
      dirty.header().getBody().initError().setMessage(std::string(3000, 'y'));
      ASSERT_OK(dirty.AddPayload(Buffer::Allocate(8), DType::kF32, 2));
      ASSERT_OK(dirty.AddPayload(Buffer::Allocate(8), DType::kF32, 2));
      Result<InMessage> in = DecodeIn("a-routing-id-longer-than-sso", dirty.EncodedHeader(), {Bytes(8), Bytes(8)});
      ASSERT_TRUE(in.ok()) << in.status().ToString();
      EXPECT_EQ(in->num_payloads(), 2u);
    }
    OutMessage clean(Op::HEARTBEAT);
    EXPECT_EQ(clean.num_payloads(), 0u);
    Result<InMessage> in = DecodeIn("", clean.EncodedHeader(), {});
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_EQ(in->job_id(), 0u);
    EXPECT_EQ(in->request_id(), 0u);
    EXPECT_EQ(in->step(), -1);
    EXPECT_EQ(in->op(), Op::HEARTBEAT);
    EXPECT_TRUE(in->header().getBody().isNone());
    EXPECT_EQ(in->num_payloads(), 0u);
    EXPECT_EQ(in->routing_id(), "");
    EXPECT_EQ(in->header().getPayloads().size(), 0u);
  }
}

// Messages built and decoded on one thread and read and dropped on another (a reply read
// by the loop and completed by a caller): each keeps its own bytes while the first
// thread goes on building, and every state ends in some thread's cache or freed (ASan,
// TSan run this).
TEST(MessageState, MessagesDroppedOnAnotherThreadStayWhole) {
  constexpr int kMessages = 2000;
  std::mutex mu;
  std::deque<std::pair<InMessage, OutMessage>> queue;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread consumer([&] {
    int seen = 0;
    while (seen < kMessages) {
      std::deque<std::pair<InMessage, OutMessage>> taken;
      {
        std::lock_guard<std::mutex> l(mu);
        if (queue.empty()) {
          if (done.load()) break;
          continue;
        }
        taken.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      auto& item = taken.front();
      const uint64_t id = item.first.request_id();
      const Bytes want = Pattern(16 * 4, static_cast<unsigned>(id));
      const auto got = item.first.payload(0);
      if (item.first.num_payloads() != 1 || item.first.payload_elements(0) != 16 ||
          std::memcmp(got.data(), want.data(), want.size()) != 0 || item.second.request_id() != id + 1 ||
          item.first.routing_id() != "w" + std::to_string(id)) {
        bad.fetch_add(1);
      }
      taken.clear();  // the pair's states join this thread's cache ...
      OutMessage own = Push(id, 4);  // ... and are taken again here
      std::vector<Bytes> own_payload{Bytes(own.payload(0).begin(), own.payload(0).end())};
      Result<InMessage> mine = DecodeIn("", own.EncodedHeader(), own_payload);
      if (!mine.ok() || mine->num_payloads() != 1 || mine->payload_elements(0) != 4 || !mine->routing_id().empty()) {
        bad.fetch_add(1);
      }
      ++seen;
    }
  });
  for (int i = 0; i < kMessages; ++i) {
    OutMessage out = Push(static_cast<uint64_t>(i), 16);
    std::vector<Bytes> payloads{Bytes(out.payload(0).begin(), out.payload(0).end())};
    Result<InMessage> in = DecodeIn("w" + std::to_string(i), out.EncodedHeader(), payloads);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    std::lock_guard<std::mutex> l(mu);
    queue.emplace_back(std::move(in).value(), Push(static_cast<uint64_t>(i) + 1, 2));
  }
  done.store(true);
  consumer.join();
  EXPECT_EQ(bad.load(), 0);
}

// The data-plane header is read in one pass without a traversal budget, so a payload
// list of 2^29 - 1 zero-sized elements (one tag word on the wire) must not be walked:
// refused as soon as its length disagrees with the frames, not after half a billion reads.
TEST(MessageState, HugeZeroSizedPayloadListIsRefusedWithoutWalkingIt) {
  OutMessage m = Push(5, 1);
  Bytes h = m.EncodeHeader();
  // The list's tag word: a struct "pointer" whose offset field is the element count (1)
  // and whose data size is PayloadDesc's.
  const uint64_t tag = (uint64_t{1} << 2) | (uint64_t{capnp::PayloadDesc::_capnpPrivate::dataWordSize} << 32);
  size_t at = h.size();
  for (size_t i = 8; i + 8 <= h.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, h.data() + i, 8);
    if (w == tag) at = i;
  }
  ASSERT_LT(at, h.size()) << "no payload list tag in the header";
  const uint64_t huge = ((uint64_t{1} << 29) - 1) << 2;  // that many elements of no words
  std::memcpy(h.data() + at, &huge, 8);
  const auto start = std::chrono::steady_clock::now();
  Result<InMessage> in = DecodeIn("", h, {Bytes(4)});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.status().code(), StatusCode::kCorruption) << in.status().ToString();
  EXPECT_NE(in.status().message().find("536870911 payloads"), std::string::npos) << in.status().ToString();
  EXPECT_LT(seconds, 0.5) << "the list was walked";
}

// FrameBuffer's blocks: the asked size, 16-byte aligned, each live one distinct (more than
// a thread caches), reused only once dropped, also when dropped on another thread.
TEST(MessageState, FrameBuffersStayDistinctWhileHeldAcrossThreads) {
  for (int round = 0; round < 3; ++round) {
    std::vector<Buffer> held;
    const size_t sizes[] = {1, 100, 4096, kSmallFrameBytes, kSmallFrameBytes + 1, 1 << 20};
    for (int i = 0; i < 3 * kSmallFramesPerThread; ++i) {
      const size_t n = sizes[static_cast<size_t>(i) % std::size(sizes)];
      Buffer b = FrameBuffer(n);
      ASSERT_EQ(b.size(), n);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 16, 0u);
      std::memset(b.data(), i & 0xff, n);
      held.push_back(std::move(b));
    }
    std::thread other([half = std::vector<Buffer>(held.begin(), held.begin() + kSmallFramesPerThread)]() mutable {
      half.clear();  // these blocks join the other thread's cache
    });
    other.join();
    for (int i = 0; i < 2 * kSmallFramesPerThread; ++i) {
      Buffer b = FrameBuffer(4096);
      std::memset(b.data(), 0xee, b.size());  // must not land in a held block
    }
    for (size_t i = kSmallFramesPerThread; i < held.size(); ++i) {
      const auto* p = held[i].as<unsigned char>();
      for (size_t k = 0; k < held[i].size(); k += 509) {
        ASSERT_EQ(p[k], static_cast<unsigned char>(i & 0xff)) << "block " << i << " byte " << k;
      }
    }
  }
}

}  // namespace
}  // namespace tessera::wire
