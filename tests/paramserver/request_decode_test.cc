// DecodeDataRequest on hostile messages, and every input payload_fuzzer found a bug with
// (tests/fuzz/regressions/payload-*) replayed through the same path. Under the
// ASan+UBSan CI pass a regression trips the sanitizer; everywhere the property checks
// of tests/fuzz/payload_fuzz_run.h still apply.
#include <gtest/gtest.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>

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
