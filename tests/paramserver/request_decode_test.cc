// DecodeDataRequest on hostile messages, and every input payload_fuzzer found a bug with
// (tests/fuzz/regressions/payload-*) replayed through the same path. Under the
// ASan+UBSan CI pass a regression trips the sanitizer; everywhere the property checks
// of tests/fuzz/payload_fuzz_run.h still apply.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/cluster/shard_map.h"
#include "tests/fuzz/payload_fuzz_run.h"
#include "tests/testutil/testutil.h"
#include "wire/message.h"

namespace tessera {
namespace {

wire::InMessage Decoded(wire::OutMessage&& m) {
  std::vector<Buffer> frames;
  for (const auto& p : m.payloads()) frames.push_back(Buffer::CopyOf(p.bytes));
  const std::vector<std::byte> header = m.EncodeHeader();
  auto in = wire::Decode("peer", Buffer::CopyOf(header), std::move(frames), {});
  EXPECT_TRUE(in.ok()) << in.status().ToString();
  return std::move(in).value();
}

wire::OutMessage Pull(wire::Role role, int32_t rank) {
  wire::OutMessage m(wire::Op::PULL);
  m.SetSender(role, rank);
  auto d = m.header().getBody().initData();
  d.setParamId(0);
  d.setKind(wire::capnp::ParamKind::DENSE);
  d.setBegin(0);
  d.setEnd(4);
  return m;
}

TEST(RequestDecode, ExtremeSenderRanksBecomeAnInvalidWorkerNotOverflow) {
  for (int32_t rank : {INT32_MIN, INT32_MIN + 1, -1, 0, 2, INT32_MAX}) {
    auto r = paramserver::DecodeDataRequest(Decoded(Pull(wire::Role::WORKER, rank)), 2);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const int64_t want = int64_t{rank} - 3;
    EXPECT_EQ(r->req.worker, want >= 0 ? static_cast<int>(want) : -1) << "rank " << rank;
  }
}

TEST(RequestDecode, OnlyWorkersAndPushesNeedF32Values) {
  auto r = paramserver::DecodeDataRequest(Decoded(Pull(wire::Role::SERVER, 1)), 2);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  wire::OutMessage push(wire::Op::PUSH);
  push.SetSender(wire::Role::WORKER, 3);
  auto d = push.header().getBody().initData();
  d.setParamId(0);
  d.setKind(wire::capnp::ParamKind::DENSE);
  d.setBegin(0);
  d.setEnd(2);
  ASSERT_OK(push.AddPayload(Buffer::Allocate(16), DType::kF64, 2));
  r = paramserver::DecodeDataRequest(Decoded(std::move(push)), 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be f32, got f64"), std::string::npos) << r.status().ToString();
}

TEST(RequestDecode, WantDigestIsCarriedAndAnUnknownValueRefused) {
  for (uint8_t want : {0, 1, 2, 3, 255}) {
    wire::OutMessage m = Pull(wire::Role::WORKER, 3);
    m.header().getBody().getData().setWantDigest(want);
    auto r = paramserver::DecodeDataRequest(Decoded(std::move(m)), 2);
    if (want <= 2) {
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->want_digest, want);
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << int{want};
    }
  }
}

// A top-k push: [begin, end) = [2, 10), entries at offsets 1 and 6.
wire::OutMessage TopKPush(std::vector<int32_t> offsets, std::vector<float> values, uint64_t num_keys) {
  wire::OutMessage m(wire::Op::PUSH);
  m.SetSender(wire::Role::WORKER, 3);
  auto d = m.header().getBody().initData();
  d.setParamId(0);
  d.setKind(wire::capnp::ParamKind::DENSE);
  d.setBegin(2);
  d.setEnd(10);
  d.setNumKeys(num_keys);
  Buffer ob = Buffer::Allocate(offsets.size() * 4), vb = Buffer::Allocate(values.size() * 4);
  if (!offsets.empty()) std::memcpy(ob.data(), offsets.data(), offsets.size() * 4);
  if (!values.empty()) std::memcpy(vb.data(), values.data(), values.size() * 4);
  EXPECT_TRUE(m.AddPayload(std::move(ob), DType::kI32, offsets.size()).ok());
  EXPECT_TRUE(m.AddPayload(std::move(vb), DType::kF32, values.size()).ok());
  return m;
}

ShardMap Map(int64_t numel) {
  ParamSpec p;
  p.name = "w";
  p.shape = {numel};
  auto map = ShardMap::Build({}, {{1, "tcp://127.0.0.1:1"}}, {p});
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  return std::move(map).value();
}

TEST(RequestDecode, TopKPushExpandsToItsDenseGradient) {
  const wire::InMessage msg = Decoded(TopKPush({1, 6}, {0.5f, -2.0f}, 2));  // the request points into it
  auto r = paramserver::DecodeDataRequest(msg, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->topk);
  std::vector<float> storage;
  ASSERT_OK(paramserver::ExpandTopKPush(Map(10), &*r, &storage));
  EXPECT_EQ(std::vector<float>(r->values.begin(), r->values.end()),
            (std::vector<float>{0, 0.5f, 0, 0, 0, 0, -2.0f, 0}));
  // No entry in this server's piece: still a push (bsp counts it), of zeros.
  const wire::InMessage none = Decoded(TopKPush({}, {}, 0));
  auto empty = paramserver::DecodeDataRequest(none, 2);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  ASSERT_OK(paramserver::ExpandTopKPush(Map(10), &*empty, &storage));
  EXPECT_EQ(std::vector<float>(empty->values.begin(), empty->values.end()), std::vector<float>(8, 0.0f));
}

TEST(RequestDecode, HostileTopKPushesAreRefusedNamingWhy) {
  struct Case {
    std::vector<int32_t> offsets;
    std::vector<float> values;
    uint64_t num_keys;
    const char* why;
  };
  const Case cases[] = {
      {{1, 6}, {0.5f}, 2, "a top-k push needs numKeys (2) i32 offsets and as many values"},  // codec
      {{6, 1}, {1, 2}, 2, "top-k offset 1 (entry 1) is outside [0, 8) or not above the one before"},
      {{3, 3}, {1, 2}, 2, "top-k offset 3 (entry 1)"},
      {{1, 8}, {1, 2}, 2, "top-k offset 8 (entry 1) is outside [0, 8)"},
      {{-1}, {1}, 1, "top-k offset -1 (entry 0)"},
  };
  for (const Case& c : cases) {
    wire::OutMessage m = TopKPush(c.offsets, c.values, c.num_keys);
    std::vector<Buffer> frames;
    for (const auto& p : m.payloads()) frames.push_back(Buffer::CopyOf(p.bytes));
    auto in = wire::Decode("peer", Buffer::CopyOf(m.EncodeHeader()), std::move(frames), {});
    Status st = in.status();
    if (in.ok()) st = paramserver::DecodeDataRequest(*in, 2).status();
    ASSERT_FALSE(st.ok()) << c.why;
    EXPECT_NE(st.message().find(c.why), std::string::npos) << st.ToString();
  }
  // A range past the parameter's end is refused before anything is allocated.
  const wire::InMessage far = Decoded(TopKPush({1}, {1}, 1));
  auto r = paramserver::DecodeDataRequest(far, 2);
  ASSERT_TRUE(r.ok());
  std::vector<float> storage;
  Status st = paramserver::ExpandTopKPush(Map(6), &*r, &storage);
  EXPECT_NE(st.message().find("past the end of 'w' (6 elements)"), std::string::npos) << st.ToString();
  EXPECT_TRUE(storage.empty());
}

TEST(RequestDecode, FuzzerRegressionsReplay) {
  const auto dir = std::filesystem::path(testing::SourceDir()) / "tests/fuzz/regressions";
  int replayed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("payload-", 0) != 0) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(e.path().string());
    fuzz::RunPayloadInput(bytes.data(), bytes.size());
    ++replayed;
  }
  EXPECT_GE(replayed, 1);
}

}  // namespace
}  // namespace tessera
